"""Every built-in preset reaches the target its description promises, on this CPU."""

import pytest

from torchtui.engine import presets, protocol as p
from torchtui.engine.checkpoint import load_checkpoint
from torchtui.engine.host import InProcessHost

from .helpers import run_to_end

# name -> (val metric, minimum); `line` is checked on its learned parameters below.
TARGETS = {"moons": ("accuracy", 0.97), "circles": ("accuracy", 0.95), "xor": ("accuracy", 0.95),
           "blobs": ("accuracy", 0.95), "spiral": ("accuracy", 0.95)}


def test_every_builtin_has_a_target():
    assert {i.name for i in presets.list_presets() if i.builtin} == set(TARGETS) | {"line"}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_preset_reaches_target(name, tmp_path):
    metric, minimum = TARGETS[name]
    with InProcessHost(str(tmp_path)) as host:
        _, done = run_to_end(host, presets.load(name).to_dict(), timeout=120)
    assert done.state == p.FINISHED
    assert done.summary["val"][metric] >= minimum, done.summary


def test_line_learns_weight_and_bias(tmp_path):
    with InProcessHost(str(tmp_path)) as host:
        _, done = run_to_end(host, presets.load("line").to_dict(), timeout=120)
    state = load_checkpoint(tmp_path / done.summary["run_id"] / "checkpoints" / "last.pt")["model"]
    assert abs(state["head.weight"].item() - 0.7) < 0.02
    assert abs(state["head.bias"].item() - 0.3) < 0.02
