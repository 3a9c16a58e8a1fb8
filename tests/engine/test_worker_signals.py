"""The spawn worker (WorkerHost) under signals and parent loss: it saves last.pt, ends cleanly, stays quiet."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from torchtui.engine import protocol as p
from torchtui.engine.host import WorkerHost

from .helpers import of, tiny

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LONG = 100_000  # epochs: a run that only ends when it is told to


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate` until it is true; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def worker_exit_code(host, timeout: float = 30) -> int:
    """Wait for the worker to end and return its exit code.

    WorkerHost's reader thread reaps the worker (process.join) as soon as the pipe closes; a second
    thread joining at the same time can lose the waitpid() race and see exitcode None / is_alive() True
    for a live-looking dead process. So let the reader finish first, then ask."""
    wait_until(lambda: not host._reader.is_alive(), timeout, "the worker to close its pipe")
    host.process.join(timeout)
    wait_until(lambda: host.process.exitcode is not None, timeout, "the worker process to exit")
    return host.process.exitcode


@pytest.fixture
def host(tmp_path):
    h = WorkerHost(str(tmp_path / "runs"))
    try:
        h.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=60)
        yield h
    finally:
        h.close()


def start_long_run(host) -> Path:
    """Start a run that would go on for ages; return its folder once steps are arriving."""
    host.send(p.Start(config=tiny(epochs=LONG)))
    started = host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=60)
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step, timeout=60)
    return Path(started.run_dir)


def last_step(events) -> int:
    return max((s for e in of(events, p.StepStats) for s in e.step), default=0)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_stop_signal_saves_last_pt_and_exits_0(host, signame):
    sig = getattr(signal, signame, None)
    if sig is None:
        pytest.skip(f"no {signame} here")
    run_dir = start_long_run(host)
    os.kill(host.process.pid, sig)
    seen = []
    done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60, seen=seen)
    assert done.state == p.STOPPED
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["state"] == p.STOPPED
    assert worker_exit_code(host) == 0
    assert not of(seen + host.drain(), p.Error)  # the reader reports an unexpected exit as Error + FAILED


def test_sigterm_while_idle_exits_0(host):
    os.kill(host.process.pid, signal.SIGTERM)
    assert worker_exit_code(host) == 0
    assert not of(host.drain(), p.Error)


def test_sigint_is_ignored(host):
    seen = []
    run_dir = start_long_run(host)
    os.kill(host.process.pid, signal.SIGINT)  # the parent owns the keyboard: Ctrl-C is not for the worker
    # A round trip through the worker's command loop after the signal, then more training steps.
    host.send(p.CheckpointNow())
    saved = host.wait_for(lambda e: isinstance(e, p.CheckpointSaved) and e.kind == "manual", timeout=60, seen=seen)
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step and e.step[-1] > saved.step + 1,
                  timeout=60, seen=seen)
    assert host.process.is_alive()
    assert not [e for e in seen if isinstance(e, (p.RunFinished, p.Error))]
    host.send(p.Stop())
    done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60, seen=seen)
    assert done.state == p.STOPPED and done.summary["steps"] >= last_step(seen) - 1
    assert (run_dir / "checkpoints" / "last.pt").is_file()


def test_sigint_during_worker_startup_is_ignored(tmp_path):
    h = WorkerHost(str(tmp_path / "runs"))
    try:
        os.kill(h.process.pid, signal.SIGINT)  # what Ctrl-C right after launch does to the whole group
        first = h.wait_for(lambda e: isinstance(e, p.EngineReady)
                           or (isinstance(e, p.StateChanged) and e.state == p.FAILED), timeout=60)
        assert isinstance(first, p.EngineReady), first
    finally:
        h.close()


# Closing the Connection under the reader thread, which is blocked in recv() on it, makes that thread die
# with a TypeError (its handle became None mid-read); harmless here, the worker side is what is tested.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_parent_pipe_closed_saves_and_exits(host):
    run_dir = start_long_run(host)
    host._conn.close()  # as if the client process went away
    wait_until(lambda: not host.process.is_alive(), timeout=60, what="the worker to exit after losing its parent")
    assert host.process.exitcode == 0
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == p.STOPPED and summary["steps"] > 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_close_leaves_no_worker_behind_even_when_it_hangs(tmp_path):
    h = WorkerHost(str(tmp_path / "runs"))
    try:
        h.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=60)
        os.kill(h.process.pid, signal.SIGSTOP)  # a hung worker: it cannot answer Shutdown or SIGTERM
        started = time.monotonic()
        h.close(timeout=1)
        assert time.monotonic() - started < 10
        assert not h.process.is_alive(), "close() returned with the worker still running"
    finally:
        if h.process.is_alive():
            os.kill(h.process.pid, signal.SIGKILL)
            h.process.join(10)


# ------------------------------------------------------------------ a real client process


CLIENT = textwrap.dedent('''
    """A client that hosts a WorkerHost; imported again by the spawn worker as __mp_main__."""
    import atexit
    import sys

    from torchtui.engine import protocol as p
    from torchtui.engine.host import WorkerHost

    if __name__ == "__mp_main__":  # only in the worker: written after it redirected its output
        atexit.register(lambda: (print("WORKER-STDOUT-MARK", flush=True),
                                 print("WORKER-STDERR-MARK", file=sys.stderr, flush=True)))

    def config(epochs):
        return {"name": "client", "data": {"source": "moons", "n_samples": 256},
                "model": {"layers": [16]}, "train": {"batch_size": 32, "epochs": epochs},
                "device": {"device": "cpu"}}

    if __name__ == "__main__":
        mode, runs_dir = sys.argv[1], sys.argv[2]
        host = WorkerHost(runs_dir)
        host.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=60)
        if mode == "short":
            host.send(p.Start(config=config(2)))
            done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60)
            host.close()
            print("CLIENT", done.state, host.log_path, host.process.exitcode, flush=True)
        else:
            host.send(p.Start(config=config(100000)))
            started = host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=60)
            host.wait_for(lambda e: isinstance(e, p.StepStats), timeout=60)
            print("READY", host.process.pid, started.run_dir, flush=True)
            sys.stdin.read()  # until killed
''')


def _client(tmp_path, mode: str) -> subprocess.Popen:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    return subprocess.Popen([sys.executable, str(script), mode, str(tmp_path / "runs")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ), cwd=tmp_path)


def _gone(pid: int) -> bool:
    """True once `pid` has exited (reaped, or a zombie nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_worker_writes_nothing_to_the_terminal(tmp_path):
    proc = _client(tmp_path, "short")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "MARK" not in out + err
    assert out.startswith("CLIENT finished "), out
    assert err == "", err
    _, _, log_path, exitcode = out.split()
    assert exitcode == "0"
    assert Path(log_path) == tmp_path / "runs" / "engine-worker.log"  # the default: next to the runs
    log = Path(log_path).read_text()
    assert "WORKER-STDOUT-MARK" in log and "WORKER-STDERR-MARK" in log


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_client_killed_worker_saves_and_exits(tmp_path):
    proc = _client(tmp_path, "long")
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        try:
            line = lines.get(timeout=90)
        except queue.Empty:
            pytest.fail("the client never reported a running worker")
        assert line.startswith("READY"), (line, proc.stderr.read() if proc.poll() is not None else "")
        _, pid, run_dir = line.split()
        pid, run_dir = int(pid), Path(run_dir)
        proc.kill()  # SIGKILL: no atexit, no close(); only the pipe tells the worker
        proc.wait(30)
        try:
            wait_until(lambda: _gone(pid), timeout=60, what="the orphaned worker to exit")
        finally:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    wait_until(lambda: (run_dir / "summary.json").is_file(), timeout=10, what="summary.json")
    assert json.loads((run_dir / "summary.json").read_text())["state"] == p.STOPPED
