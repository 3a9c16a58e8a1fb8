"""Run servers: runs that outlive their client, several clients at once, the private socket folder, faults."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from torchtui.cli import main as cli
from torchtui.engine import live
from torchtui.engine import protocol as p
from torchtui.engine.host import ServerHost
from torchtui.engine.runs import steps_after

from .helpers import tiny
from .test_worker_signals import wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix-domain sockets")

LONG = 100_000  # epochs: a run that only ends when it is told to


def metrics_lines(run_dir: str) -> int:
    path = Path(run_dir) / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def start_run(tmp_path, **train) -> tuple[ServerHost, p.RunStarted]:
    host = ServerHost.start(str(tmp_path / "runs"))
    host.send(p.Start(config=tiny(epochs=LONG, **train), runs_dir=str(tmp_path / "runs")))
    return host, host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=120)


def test_the_socket_folder_key_and_socket_are_private(runtime, tmp_path):
    host, started = start_run(tmp_path)
    try:
        (info,) = live.servers()
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
        assert stat.S_IMODE(os.stat(info.socket).st_mode) == 0o600
        assert stat.S_IMODE((runtime / "authkey").stat().st_mode) == 0o600
        assert info.run_id == started.run_id and info.pid == host.info.pid
    finally:
        host.close()
    wait_until(lambda: not live.servers(), 30, "the server to end")
    assert sorted(p.name for p in runtime.iterdir()) == ["authkey"]


def test_a_folder_others_can_enter_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "open"
    (folder / "torchtui").mkdir(parents=True)
    os.chmod(folder / "torchtui", 0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    with pytest.raises(live.LiveRunError, match="has mode 755: others may enter it: chmod 700"):
        live.runtime_dir()


def test_a_dead_servers_files_are_cleaned_up(runtime):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)
    info = live.ServerInfo(pid=pid, socket=str(live.socket_path(pid)), run_id="20990101-000000-gone")
    Path(info.socket).write_text("")
    info.write()
    assert live.servers() == []
    assert not Path(info.socket).exists() and not info.path.exists()
    assert cli.main(["stop", "20990101"]) == cli.EXIT_USAGE


def test_a_detached_run_goes_on_two_clients_see_each_other_and_stop_ends_it(runtime, tmp_path, capsys):
    host, started = start_run(tmp_path)
    host.detach()  # the app's d, or a dropped connection: the run goes on
    lines = metrics_lines(started.run_dir)
    wait_until(lambda: metrics_lines(started.run_dir) > lines + 50, 60, "the run to keep training")
    listed: list = []

    def ps_lists_it() -> bool:  # the server rewrites its status file at least once a second
        assert cli.main(["ps", "--json"]) == 0
        listed[:] = json.loads(capsys.readouterr().out.splitlines()[-1])["runs"]
        return len(listed) == 1 and listed[0]["clients"] == 0

    wait_until(ps_lists_it, 10, "ps to list the detached run")
    (row,) = listed
    assert row["run_id"] == started.run_id and row["state"] == p.RUNNING and row["clients"] == 0

    a, b = ServerHost.attach(started.run_id[:12]), ServerHost.attach()
    try:
        from torchtui.engine.history import RunHistory

        drawn = RunHistory()
        first = _follow(b, drawn, lambda e: isinstance(e, p.RunStarted), timeout=30)
        _follow(b, drawn, lambda e: isinstance(e, p.History), timeout=30)  # the run so far, in one message
        so_far = len(drawn.train_loss)
        live_step = _follow(b, drawn, lambda e: isinstance(e, p.StepStats), timeout=30)
        xs, _ = drawn.train_loss.downsample(10 ** 6)  # every step (a few thousand at most here)
        assert first.run_id == started.run_id and so_far > 0 and live_step.step[0] == so_far + 1
        assert xs == list(range(1, len(xs) + 1))  # whole, once
        a.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=30)
        a.send(p.SetHparams(lr_scale=2.0))
        change = b.wait_for(lambda e: isinstance(e, p.HparamsChanged), timeout=30)
        assert change.changes["lr"][1] == pytest.approx(2 * change.changes["lr"][0])
    finally:
        a.detach()
        b.detach()
    assert cli.main(["stop", started.run_id]) == 0
    wait_until(lambda: not live.servers(), 60, "the server to end after its run")
    summary = json.loads((Path(started.run_dir) / "summary.json").read_text())
    assert summary["state"] == p.STOPPED and (Path(started.run_dir) / "checkpoints" / "last.pt").exists()


def test_a_killed_server_is_reported_and_resume_continues(runtime, tmp_path):
    host, started = start_run(tmp_path, checkpoint_every=0.0)
    try:
        wait_until(lambda: (Path(started.run_dir) / "checkpoints" / "last.pt").exists(), 60, "a checkpoint")
        os.kill(host.info.pid, signal.SIGKILL)
        gone = host.wait_for(lambda e: isinstance(e, p.Error), timeout=30)
        assert "is gone" in gone.message and f"torchtui resume {started.run_dir}" in gone.message
    finally:
        host.detach()
    assert live.servers() == []  # its socket and JSON file are cleaned up by the next look
    import torch

    done = torch.load(Path(started.run_dir) / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    resumed = subprocess.run([sys.executable, "-m", "torchtui.cli", "resume", started.run_dir, "--epochs",
                              str(done + 1), "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["epochs"] == done + 1


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/python3").exists(),
                    reason="needs root (to run a client as nobody) and a system python3")
def test_another_user_cannot_connect_or_stop(tmp_path, monkeypatch):
    # A runtime folder whose parent anyone may enter: only torchtui's own 0700 folder keeps nobody out.
    base = Path(tempfile.mkdtemp(prefix="torchtui-xdg-", dir="/tmp"))
    os.chmod(base, 0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    host, started = start_run(tmp_path)
    try:
        (info,) = live.servers()
        probe = textwrap.dedent(f"""
            import os
            from multiprocessing.connection import Client
            for what, attempt in (("list", lambda: os.listdir({str(base / "torchtui")!r})),
                                  ("connect", lambda: Client({info.socket!r}, family="AF_UNIX", authkey=b"guess"))):
                try:
                    attempt()
                    print(what, "allowed")
                except PermissionError as err:
                    print(what, "denied:", err.strerror)
        """)
        try:
            out = subprocess.run(["/usr/bin/python3", "-I", "-c", probe], capture_output=True, text=True, timeout=60,
                                 user="nobody", cwd="/", env={"PATH": "/usr/bin:/bin"})
        except (PermissionError, KeyError, OSError) as err:
            pytest.skip(f"cannot run a process as nobody here: {err}")
        assert out.stdout.split("\n")[:2] == ["list denied: Permission denied", "connect denied: Permission denied"], \
            out.stdout + out.stderr
        assert live.servers()[0].state == p.RUNNING  # nothing reached it
    finally:
        host.close()
        wait_until(lambda: not live.servers(), 30, "the server to end")
        shutil.rmtree(base, ignore_errors=True)


def _charts(history) -> dict:
    """What the charts and the status bar draw from a run's history: each series at two widths, and its
    markers, live changes and latest values."""
    from torchtui.engine.history.series import Series

    out = {}
    for name, value in sorted(vars(history).items()):
        group = value if isinstance(value, dict) else {"": value}
        for key, series in group.items():
            if isinstance(series, Series):
                out[f"{name}.{key}"] = repr((len(series), series.last, series.downsample(60), series.midline(60),
                                             series.downsample(1500)))
    out["markers"] = history.markers
    out["changes"] = [(c.step, c.changes) for c in history.changes]
    out["lr_now"], out["dead_relu"] = history.lr_now, history.dead_relu
    return out


def _follow(host, history, until, timeout: float = 120):
    """Apply each event to `history` as a client does, until one matches `until` (returned)."""
    def take(event) -> bool:
        history.apply(event)
        return until(event)
    return host.wait_for(take, timeout=timeout)


def test_a_client_that_attaches_draws_what_one_that_watched_the_whole_run_draws(runtime, tmp_path):
    """The server sends its history in one message (p.History): a client attaching to a paused run of 5,000+
    steps, and one that saw the run resume, draw the same charts as the client that watched every event."""
    from torchtui.engine.history import RunHistory

    watched, host = RunHistory(), ServerHost.start(str(tmp_path / "runs"))
    try:
        host.send(p.Start(config=tiny(epochs=LONG, stats_every=3), runs_dir=str(tmp_path / "runs")))
        _follow(host, watched, lambda e: isinstance(e, p.StepStats) and e.step and e.step[-1] >= 2_000)
        host.send(p.SetHparams(lr_scale=0.5, grad_clip=1.0))
        _follow(host, watched, lambda e: isinstance(e, p.StepStats) and e.step and e.step[-1] >= 5_000)
        host.send(p.Pause())
        _follow(host, watched, lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED)
        late = ServerHost.attach()
        try:
            attached, seen = RunHistory(), []
            _follow(late, attached, lambda e: isinstance(e, p.History), timeout=60)
            seen = late.drain()
        finally:
            late.detach()
        host.send(p.ListDevices(request_id=7))  # its answer comes after every event before it
        _follow(host, watched, lambda e: isinstance(e, p.DevicesListed))
        assert not [e for e in seen if isinstance(e, p.StepStats)]  # nothing drawn twice
        assert len(watched.train_loss) > 4_096  # the series' finest level is gone: the pyramid is compared
        assert _charts(attached) == _charts(watched)
        assert attached.predictions == watched.predictions and attached.state == p.PAUSED

        for saved in (True, False):  # resumed from the history the server saved at the end, then from the rows
            host.send(p.Stop())
            _follow(host, watched, lambda e: isinstance(e, p.RunFinished))
            before, predictions = _charts(watched), watched.predictions
            run_dir = Path(watched.started.run_dir)
            assert (run_dir / "history.json").is_file()
            if not saved:
                (run_dir / "history.json").unlink()
            host.send(p.Start(config=watched.started.config, resume=str(run_dir)))
            _follow(host, watched, lambda e: isinstance(e, p.History))
            assert watched.started.start_step == len(watched.train_loss)  # resumed at its last step
            assert _charts(watched) == before and watched.summary == {}  # the same charts either way
            # The saved history keeps the last predictions; metrics.jsonl has none (the next evaluation brings them).
            assert watched.predictions == (predictions if saved else None) and predictions is not None
    finally:
        host.close()


def test_steps_after_keeps_only_new_steps():
    event = p.StepStats("r", step=[5, 6, 7], epoch=0.7, loss=[1, 2, 3], lr=[0.1] * 3, acc_steps=[6, 7], acc=[0.5, 0.6],
                        layer_steps=[6], grad_norm=[1.0], layer_grad_norm=[[1.0]], update_ratio=[[0.1]],
                        samples_per_s=1.0, eta_s=None, progress=0.1)
    tail = steps_after(event, 6)
    assert tail.step == [7] and tail.loss == [3] and tail.acc_steps == [7] and tail.layer_steps == []
    assert steps_after(event, 7) is None and steps_after(event, 4) is event


def test_a_runs_history_replays_from_its_metrics_file(tmp_path):
    """What an attaching client draws: every step once, each evaluation, live changes with old and new."""
    from torchtui.engine.host import InProcessHost
    from torchtui.engine.runs import replay_events

    with InProcessHost(str(tmp_path / "runs")) as host:
        host.send(p.Start(config=tiny(epochs=4, stats_every=3, eval_budget=0)))
        started = host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=60)
        host.send(p.SetHparams(lr_scale=2.0))
        host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60)
    with open(Path(started.run_dir) / "metrics.jsonl", "a") as fh:
        fh.write('{"type": "step", "step": 99')  # a torn last line: the run was writing it
    events, last = replay_events(started)
    steps = [s for e in events if isinstance(e, p.StepStats) for s in e.step]
    assert steps == list(range(1, started.total_steps + 1)) and last == started.total_steps
    assert len([e for e in events if isinstance(e, p.EvalResult) and e.split == "val"]) == 4
    (change,) = [e for e in events if isinstance(e, p.HparamsChanged)]
    old, new = change.changes["lr"]
    assert new == pytest.approx(2 * old) and old == pytest.approx(0.01)
    sampled = [s for e in events if isinstance(e, p.StepStats) for s in e.layer_steps]
    assert sampled == [s for s in steps if s % 3 == 0]


def test_attach_to_a_run_that_ended_says_so_and_how_to_continue(runtime, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "runs" / "20990101-000000-moons"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"state": "finished", "epochs": 30}))
    monkeypatch.setenv("TORCHTUI_RUNS_DIR", str(tmp_path / "runs"))
    assert cli.main(["attach", "20990101"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "has finished" in err and f"torchtui resume {folder} --epochs N" in err and "past 30" in err
    assert cli.main(["attach", "nothing-like-it"]) == cli.EXIT_USAGE
    assert "no live runs" in capsys.readouterr().err
