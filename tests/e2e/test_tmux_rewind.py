"""Rewind in a real terminal (tmux 160x48, issue 27): train, press w, pick the newest snapshot, halve the lr, Enter;
the app follows the branch, and the Runs screen lists it under its parent and overlays the two."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from torchtui.engine import presets

from .terminal import Terminal
from .test_tmux_steering import rows, until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def test_rewind_with_lr_halved_branches_and_the_runs_screen_overlays_both(tmp_path):
    # moons, training until stopped, a snapshot every half second; the spike guard off: this test is about the
    # rewind, and a guard question popping up would take its keys.
    config = presets.load("moons").to_dict()
    config["train"].update(epochs=0, snapshot_every=0.5, guard="off")
    (tmp_path / "rewind.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    term = Terminal(tmp_path, "rewind")
    try:
        term.start("rewind.yaml")
        term.wait_for(r"engine ready")
        term.keys("Space")
        term.wait_for(r"step ([3-9]\d\d|[1-9],?\d{3})/∞", timeout=120)  # 300 steps: a few snapshots taken
        term.keys("w")
        term.wait_for(r"Enter rewind")  # listed, the newest under the cursor
        step = int(term.wait_for(r"^\s*█\s*([\d,]+)\s+\d\d:\d\d:\d\d", timeout=10).group(1).replace(",", ""))
        term.keys("-")
        term.wait_for(r"branch with: lr ÷2")
        term.keys("Enter")
        found = term.wait_for(r"branched (\S+) from (\S+) at step ([\d,]+) \(lr ÷2\)")
        branch, parent = found.group(1), found.group(2)
        assert int(found.group(3).replace(",", "")) == step
        term.wait_for(r"the branch's first step came")

        origin = json.loads((term.runs / branch / "origin.json").read_text())
        assert origin["branch_of"]["run_id"] == parent and origin["branch_of"]["step"] == step
        changes = until(lambda: rows(term.runs / branch, "hparams"), what="the branch's lr change recorded")
        assert changes[0]["lr"] == pytest.approx(0.0015)
        assert min(r["step"] for r in rows(term.runs / branch, "step")) == step + 1

        term.keys("b")
        term.wait_for(rf"└ {branch}")  # the branch listed under its parent
        term.keys("Space", "Down", "Space")  # the parent (first, the oldest), then its branch
        term.wait_for(r"train loss per step · 2 runs")
        screen = term.screen()
        assert f"⢕⢕ {parent[9:]}" in screen and f"⢕⢕ {branch[9:]}" in screen, screen  # both in the legend
        assert "Traceback" not in screen
    finally:
        term.close()
