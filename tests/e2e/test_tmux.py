"""torchtui in a real terminal (tmux 160x48): start moons, see epoch 2, quit with confirmation."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
TORCHTUI = str(Path(sys.executable).with_name("torchtui"))


SOCKET = f"torchtui-test-{os.getpid()}"  # a private tmux server: never touches the user's sessions


# Something under pytest exports COLUMNS=80 LINES=24; shutil.get_terminal_size (and so Textual) would
# believe them over the real 160x48 pane, so the tmux server must not inherit them.
ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True, check=False,
                          env=ENV).stdout


def wait_for_screen(session: str, pattern: str, timeout: float = 60.0) -> re.Match:
    """Poll the pane's text until `pattern` matches (deadline, no blind sleeps)."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        match = re.search(pattern, screen)
        if match:
            return match
        time.sleep(0.1)  # polling interval, not a wait for an outcome
    size = tmux("display", "-p", "-t", session, "#{window_width}x#{window_height}")
    raise AssertionError(f"{pattern!r} never appeared ({size.strip()}); last screen:\n{screen}")


def wait_for_file(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} never written")


def test_train_moons_in_tmux(tmp_path):
    session = f"torchtui-test-{os.getpid()}"
    runs = tmp_path / "runs"
    done = tmp_path / "exit.txt"
    command = (f"cd {tmp_path} && TORCHTUI_RUNS_DIR={runs} XDG_CONFIG_HOME={tmp_path / 'xdg'} "
               f"{TORCHTUI} moons --set train.epochs=200; echo $? > {done}")
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", command)
    try:
        wait_for_screen(session, r"engine ready")
        tmux("send-keys", "-t", session, "Space")
        wait_for_screen(session, r"epoch ([2-9]|\d\d+)\.\d\d/200")
        tmux("send-keys", "-t", session, "q")
        wait_for_screen(session, r"Stop it")
        tmux("send-keys", "-t", session, "y")
        assert wait_for_file(done).strip() == "0"
    finally:
        tmux("kill-server")
    (run_dir,) = runs.glob("*-moons")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "eval" for r in rows) >= 2
    assert (run_dir / "checkpoints" / "last.pt").exists()
    assert json.loads((run_dir / "summary.json").read_text())["state"] == "stopped"


def training_app(tmp_path, session: str) -> tuple[Path, int]:
    """`torchtui moons` exec'd in a tmux pane, trained past its first epoch: (runs folder, the app's pid)."""
    runs = tmp_path / "runs"
    command = (f"cd {tmp_path} && TORCHTUI_RUNS_DIR={runs} XDG_CONFIG_HOME={tmp_path / 'xdg'} "
               f"exec {TORCHTUI} moons --set train.epochs=500")
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", command)
    wait_for_screen(session, r"engine ready")
    tmux("send-keys", "-t", session, "Space")
    wait_for_screen(session, r"epoch ([1-9]|\d\d+)\.\d\d/500")
    return runs, int(tmux("display", "-p", "-t", session, "#{pane_pid}").strip())


def test_sigterm_to_the_app_stops_the_run_and_saves(tmp_path):
    session = f"torchtui-term-{os.getpid()}"
    try:
        runs, pid = training_app(tmp_path, session)
        os.kill(pid, 15)
        (run_dir,) = runs.glob("*-moons")
        summary = json.loads(wait_for_file(run_dir / "summary.json"))
        assert summary["state"] == "stopped"
        assert (run_dir / "checkpoints" / "last.pt").exists()
    finally:
        tmux("kill-server")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_closing_the_terminal_stops_the_run_saves_and_exits(tmp_path):
    """The SSH connection drops: the pty goes away and SIGHUP arrives. Nothing may be left running."""
    session = f"torchtui-hup-{os.getpid()}"
    try:
        runs, pid = training_app(tmp_path, session)
        processes = [pid, *_children(pid)]
        tmux("kill-session", "-t", session)  # closes the pty and sends SIGHUP, as sshd does
        deadline = time.monotonic() + 45
        while any(_alive(p) for p in processes) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling interval
        left = [p for p in processes if _alive(p)]
        for p in left:
            os.kill(p, 9)
        assert not left, f"still running after the terminal closed: {left}"
    finally:
        tmux("kill-server")
    (run_dir,) = runs.glob("*-moons")
    assert json.loads(wait_for_file(run_dir / "summary.json"))["state"] == "stopped"
    assert (run_dir / "checkpoints" / "last.pt").exists()
