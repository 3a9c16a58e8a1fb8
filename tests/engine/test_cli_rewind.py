"""`torchtui rewind RUN` on a live run's server (issue 27): --list, then a rewind with lr ÷2; refusals in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from torchtui.cli import main as cli
from torchtui.cli.common import EXIT_OK
from torchtui.engine import protocol as p
from torchtui.engine.history import RunHistory
from torchtui.engine.host import ServerHost

from .test_live import start_run
from .test_worker_signals import wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix-domain sockets")


def listing(run_id: str, capsys) -> dict:
    assert cli.main(["rewind", run_id[:12], "--list", "--json"]) == EXIT_OK
    return json.loads(capsys.readouterr().out)


def test_rewind_lists_snapshots_and_branches_a_live_run(runtime, tmp_path, capsys):
    host, started = start_run(tmp_path, snapshot_every=0.05)
    try:
        wait_until(lambda: len(listing(started.run_id, capsys)["snapshots"]) >= 2, 60, "a second snapshot")
        snaps = listing(started.run_id, capsys)["snapshots"]
        assert snaps[0]["step"] == 0 and all(s["run_id"] == started.run_id for s in snaps)
        step = snaps[-1]["step"]
        assert cli.main(["rewind", started.run_id, "--step", str(step), "--lr-scale", "0.5", "--json"]) == EXIT_OK
        answer = json.loads(capsys.readouterr().out)
        branch = host.wait_for(lambda e: isinstance(e, p.RunStarted) and e.run_id == answer["branch"], timeout=30)
        assert (answer["parent"], answer["step"], answer["changes"]) == (started.run_id, step, {"lr_scale": 0.5})
        assert branch.start_step == step
        origin = json.loads(Path(answer["branch_dir"], "origin.json").read_text())
        assert origin["branch_of"]["run_id"] == started.run_id
        # a client attaching now is sent the branch's history: its parent's curve up to the branch point
        late = ServerHost.attach(answer["branch"])
        history = late.wait_for(lambda e: isinstance(e, p.History), timeout=30)
        late.detach()
        assert RunHistory.from_plain(history.state).train_loss.last[0] >= step
        assert cli.main(["rewind", answer["branch"], "--step", "0", "--weight-decay", "-1"]) == cli.EXIT_USAGE
        assert "train.weight_decay" in capsys.readouterr().err  # refused by the engine, named, the run goes on
    finally:
        host.close()
