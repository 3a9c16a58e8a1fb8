"""`torchtui rewind RUN` on a live run's server (issue 27): --list, then a rewind with lr ÷2; refusals in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from torchtui.cli import main as cli
from torchtui.cli.common import EXIT_OK
from torchtui.engine import protocol as p

from .test_live import start_run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix-domain sockets")


def test_rewind_lists_snapshots_and_branches_a_live_run(runtime, tmp_path, capsys):
    host, started = start_run(tmp_path, snapshot_every=0.05)
    try:
        host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] > 50, timeout=60)
        assert cli.main(["rewind", started.run_id[:12], "--list", "--json"]) == EXIT_OK
        listed = json.loads(capsys.readouterr().out)
        assert listed["run_id"] == started.run_id and listed["snapshots"][0]["step"] == 0
        assert cli.main(["rewind", started.run_id, "--step", "0", "--lr-scale", "0.5", "--json"]) == EXIT_OK
        answer = json.loads(capsys.readouterr().out)
        branch = host.wait_for(lambda e: isinstance(e, p.RunStarted) and e.run_id == answer["branch"], timeout=30)
        assert (answer["parent"], answer["step"], answer["changes"]) == (started.run_id, 0, {"lr_scale": 0.5})
        assert branch.start_step == 0
        origin = json.loads(Path(answer["branch_dir"], "origin.json").read_text())
        assert origin["branch_of"]["run_id"] == started.run_id
        assert cli.main(["rewind", answer["branch"], "--step", "0", "--weight-decay", "-1"]) == cli.EXIT_USAGE
        assert "train.weight_decay" in capsys.readouterr().err  # refused by the engine, named, the run goes on
    finally:
        host.close()
