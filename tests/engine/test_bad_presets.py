"""A corpus of malformed presets: each is exit 2 and one line naming the file, the line and the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchtui.cli import main as cli

CORPUS = Path(__file__).parent.parent / "bad_presets"
# file -> (line the message points at, or None where a file has no line to blame; what it must say)
EXPECTED = {
    "alias-bomb.yaml": (None, "more than 100,000 values once YAML aliases are expanded"),
    "binary-junk.yaml": (None, "not a text file"),
    "bool-as-text.yaml": (2, "data.shuffle: must be true or false, got 'yes'"),
    "cnn-without-conv.yaml": (5, "model.conv: a cnn needs at least one conv block"),
    "code-path-without-function.yaml": (3, "data.path: expected path/to/file.py:function"),
    "date-in-kwargs.yaml": (4, "model.kwargs: date values are not allowed"),
    "deep-nesting.yaml": (None, "invalid YAML (nested too deep)"),
    "dropout-of-one.yaml": (3, "model.layers[0].dropout: must be at least 0 and below 1, got 1.0"),
    "duplicate-key.yaml": (4, "train.lr: appears twice (lines 2 and 4)"),
    "epochs-too-big-for-yaml.yaml": (2, "train.epochs: must be a non-negative whole number, got '1e400'"),
    "flat-instead-of-nested.yaml": (1, "lr: unknown key"),
    "fraction-over-one.yaml": (2, "data.val_fraction: must be at least 0 and below 1, got 1.5"),
    "future-schema.yaml": (1, "schema: version 2 is not supported"),
    "huge-integer.yaml": (2, "data.n_samples: at most 10,000,000"),
    "huge-layer.yaml": (2, "model.layers[0].units: at most 1,000,000"),
    "infinite-lr.yaml": (2, "train.lr: must be a positive number, got inf"),
    "invalid-yaml.yaml": (3, "invalid YAML"),
    "latin-1.yaml": (None, "not a text file (presets are UTF-8 YAML)"),
    "layers-not-a-list.yaml": (2, "model.layers: must be a list, got 64"),
    "loss-does-not-fit.yaml": (4, "train.loss: 'mse' treats class labels as numbers"),
    "lr-as-text.yaml": (2, "train.lr: must be a positive number, got 'fast'"),
    "milestones-backwards.yaml": (3, "train.milestones: must be positive epochs in increasing order"),
    "nan-noise.yaml": (2, "data.noise: must be a non-negative number, got nan"),
    "negative-batch.yaml": (2, "train.batch_size: must be zero or more, got -64"),
    "negative-epochs.yaml": (2, "train.epochs: must be zero or more, got -5"),
    "negative-units.yaml": (4, "model.layers[1].units: must be a positive whole number, got -3"),
    "python-object-tag.yaml": (1, "invalid YAML (could not determine a constructor for the tag"),
    "python-tag-in-kwargs.yaml": (3, "invalid YAML (could not determine a constructor for the tag"),
    "section-in-a-field.yaml": (2, "train.optimizer: must be text"),
    "section-is-a-list.yaml": (1, "train: must be a mapping of keys to values"),
    "step-too-small.yaml": (3, "data.step: start 0 to end 1 by 1e-09 gives 1,000,000,000 points"),
    "tab-indent.yaml": (2, "invalid YAML"),
    "too-many-layers.yaml": (2, "model.layers: at most 10,000 items, got 20,000"),
    "top-level-list.yaml": (1, "a preset must be a mapping of sections"),
    "top-level-text.yaml": (1, "a preset must be a mapping of sections"),
    "unclosed-quote.yaml": (3, "invalid YAML"),
    "unknown-activation.yaml": (3, "model.layers[0].activation: unknown 'relux' (did you mean 'relu'?)"),
    "unknown-device.yaml": (2, "device.device: unknown 'gpu' (did you mean 'cuda'?)"),
    "unknown-key.yaml": (2, "train.learning_rate: unknown key"),
    "unknown-section.yaml": (2, "trian: unknown key (did you mean 'train'?)"),
}


def expected_message(name: str) -> tuple[str, str]:
    """(the start the one line must have, the words it must hold)."""
    line, needle = EXPECTED[name]
    path = CORPUS / name
    return f"torchtui: error: {path}:{line}:" if line else f"torchtui: error: {path}:", needle


def test_the_corpus_is_complete():
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("command", ["train", "summary"])
def test_bad_preset_is_exit_2_and_one_line(name, command, capsys):
    code = cli.main([command, str(CORPUS / name)])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    start, needle = expected_message(name)
    assert code == cli.EXIT_USAGE and out == ""
    assert len(lines) == 1 and lines[0].startswith(start) and needle in lines[0], err
    assert "Traceback" not in err


def test_a_50_mb_preset_is_refused_without_reading_it(tmp_path, capsys):
    big = tmp_path / "huge.yaml"
    with open(big, "wb") as fh:
        fh.truncate(50 * 2**20)  # sparse: 50 MB of NULs without writing them
    assert cli.main(["train", str(big)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err == f"torchtui: error: {big}: 52,428,800 bytes is far too large for a preset (limit 1,000,000)\n"


@pytest.mark.parametrize("name", ["python-object-tag.yaml", "alias-bomb.yaml", "binary-junk.yaml", "deep-nesting.yaml"])
def test_in_a_real_process_too(name):
    result = subprocess.run([sys.executable, "-m", "torchtui.cli", "train", str(CORPUS / name)],
                            capture_output=True, text=True, timeout=60, env=dict(os.environ))
    start, needle = expected_message(name)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(start) and needle in result.stderr and result.stderr.count("\n") == 1
