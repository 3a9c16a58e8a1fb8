"""Every built-in preset reaches the target its description promises, on this CPU."""

import numpy as np
import pytest
import torch

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost
from torchtui.engine.run.checkpoint import load_checkpoint

from .helpers import run_to_end
from .test_datafiles import write_idx

# name -> (val metric, "min" or "max" bound, bound); `line` and `mnist-mlp` are checked below.
TARGETS = {
    "moons": ("accuracy", "min", 0.97), "circles": ("accuracy", "min", 0.95), "xor": ("accuracy", "min", 0.95),
    "blobs": ("accuracy", "min", 0.95), "spiral": ("accuracy", "min", 0.95),
    "digits-mlp": ("accuracy", "min", 0.95), "digits-cnn": ("accuracy", "min", 0.97),
    "sine-lstm": ("mse", "max", 0.015), "csv-iris": ("accuracy", "min", 0.9),
    "custom-module": ("accuracy", "min", 0.95),
    "text-sentiment": ("accuracy", "min", 0.9),  # a free-text CSV column, BPE tokens, a transformer encoder
}
NEEDS_SKLEARN = ("digits-mlp", "digits-cnn")


def test_every_builtin_has_a_target():
    assert {i.name for i in presets.list_presets() if i.builtin} == set(TARGETS) | {"line", "mnist-mlp", "char-lm"}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_preset_reaches_target(name, tmp_path):
    if name in NEEDS_SKLEARN:
        pytest.importorskip("sklearn")
    metric, kind, bound = TARGETS[name]
    with InProcessHost(str(tmp_path)) as host:
        _, done = run_to_end(host, presets.load(name, ["device.device=cpu"]).to_dict(), timeout=240)
    assert done.state == p.FINISHED
    value = done.summary["val"][metric]
    assert (value >= bound if kind == "min" else value <= bound), done.summary


def test_char_lm_gets_clearly_below_the_unigram_baseline(tmp_path):
    """char-lm's whole run takes minutes (README: val loss 1.78 against the baseline's 3.09 nats); its first epoch
    already gets 0.5 nats below the entropy of the train characters, which no model blind to the context can."""
    from torchtui.engine.run.token_metrics import unigram_entropy

    with InProcessHost(str(tmp_path)) as host:
        events, done = run_to_end(host, presets.load("char-lm", ["device.device=cpu", "train.epochs=1"]).to_dict(),
                                  timeout=240)
    assert done is not None and done.state == p.FINISHED, events[-3:]
    said = [e.message for e in events if isinstance(e, p.Log) and "unigram baseline" in e.message]
    baseline = float(said[0].split("beat: ")[1].split(" nats")[0])
    from torchtui.engine.data.splits import load_data

    splits = load_data(presets.load("char-lm").data)
    assert abs(unigram_entropy(splits.train, splits.n_classes) - baseline) < 1e-3
    assert done.summary["val"]["loss"] < baseline - 0.5, (done.summary["val"], baseline)
    samples = [e for e in events if isinstance(e, p.Predictions) and e.kind == "text"]
    assert samples and samples[-1].prompt == "def " and len(samples[-1].text) == 200


def test_line_learns_weight_and_bias(tmp_path):
    with InProcessHost(str(tmp_path)) as host:
        _, done = run_to_end(host, presets.load("line").to_dict(), timeout=120)
    state = load_checkpoint(tmp_path / done.summary["run_id"] / "checkpoints" / "last.pt")["model"]
    assert abs(state["head.weight"].item() - 0.7) < 0.02
    assert abs(state["head.bias"].item() - 0.3) < 0.02


def digits_as_mnist(folder):
    """scikit-learn's digits written as MNIST IDX files: 28×28 uint8 (8×8 upscaled), 1,500 train, 297 t10k."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.nn.functional.interpolate(torch.tensor(digits.images, dtype=torch.float32)[:, None],
                                             size=(28, 28), mode="bilinear")[:, 0]
    pixels = (images / 16 * 255).clamp(0, 255).round().to(torch.uint8).numpy()
    labels = digits.target.astype(np.uint8)
    folder.mkdir(parents=True)
    for part, sl in (("train", slice(0, 1500)), ("t10k", slice(1500, None))):
        write_idx(folder / f"{part}-images-idx3-ubyte.gz", pixels[sl], gz=True)
        write_idx(folder / f"{part}-labels-idx1-ubyte.gz", labels[sl], gz=True)


def test_mnist_mlp_is_the_docs_network_and_learns_from_idx_files(tmp_path):
    """mnist-mlp needs MNIST on disk; the same IDX reader and network are checked on digits written as IDX."""
    pytest.importorskip("sklearn")
    digits_as_mnist(tmp_path / "mnist")
    config = presets.load("mnist-mlp", [f"data.path={tmp_path / 'mnist'}", "train.epochs=15", "device.device=cpu"])
    with InProcessHost(str(tmp_path / "runs")) as host:
        events, done = run_to_end(host, config.to_dict(), timeout=240)
    started = next(e for e in events if isinstance(e, p.RunStarted))
    assert started.params == 101_770 and started.splits == {"train": 1350, "val": 150, "test": 297}
    assert done.state == p.FINISHED and done.summary["val"]["accuracy"] >= 0.95, done.summary
    assert done.summary["test"]["accuracy"] >= 0.85, done.summary  # the last 297 digits: other writers


def test_mnist_mlp_without_a_path_says_which_field(tmp_path):
    with InProcessHost(str(tmp_path / "runs")) as host:
        events, done = run_to_end(host, presets.load("mnist-mlp").to_dict())
    assert done is None
    assert next(e for e in events if isinstance(e, p.Error)).message.startswith(
        "data.path: source 'idx' reads a folder of MNIST-format IDX files")
