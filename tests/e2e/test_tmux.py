"""torchtui in a real terminal (tmux 160x48): train and quit, signals, and a run that outlives its terminal."""

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


# A private tmux server per test: never touches the user's sessions, and a server the previous test killed
# (kill-server returns before it is gone) cannot take the next test's new session down with it.
SOCKET = f"torchtui-test-{os.getpid()}"


@pytest.fixture(autouse=True)
def own_tmux_server(request):
    global SOCKET
    SOCKET = f"torchtui-test-{os.getpid()}-{request.node.name[:40]}"
    yield
    tmux("kill-server")


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


# Loaded by the app's python (PYTHONPATH): notes whether Textual closed the app's widgets on the way out.
TEARDOWN_PROBE = """
import os
import textual.app

_close_all = textual.app.App._close_all


async def _close_all_noted(self):
    with open(os.environ["TORCHTUI_TEST_TEARDOWN"], "a") as notes:
        notes.write("Textual closed the widgets\\n")
    return await _close_all(self)


textual.app.App._close_all = _close_all_noted
"""


def test_train_moons_in_tmux(tmp_path):
    """Train, q, stop: the run is saved, the farewell printed, exit 0. Issue 26 item 4: once the terminal is
    restored the process ends, without Textual closing the ~1,090 widgets one by one (0.4 s of a 0.9 s quit)."""
    session = f"torchtui-test-{os.getpid()}"
    runs, done, probe = tmp_path / "runs", tmp_path / "exit.txt", tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(TEARDOWN_PROBE)
    teardown = tmp_path / "teardown.txt"
    command = (f"cd {tmp_path} && {private_env(tmp_path)} TORCHTUI_RUNS_DIR={runs} XDG_CONFIG_HOME={tmp_path / 'xdg'} "
               f"PYTHONPATH={probe} TORCHTUI_TEST_TEARDOWN={teardown} "
               f"{TORCHTUI} moons --set train.epochs=200; echo $? > {done}; sleep 60")
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", command)
    try:
        wait_for_screen(session, r"engine ready")
        tmux("send-keys", "-t", session, "Space")
        wait_for_screen(session, r"epoch ([2-9]|\d\d+)\.\d\d/200")
        tmux("send-keys", "-t", session, "q")
        wait_for_screen(session, r"Stop it")
        tmux("send-keys", "-t", session, "y")
        assert wait_for_file(done).strip() == "0"
        wait_for_screen(session, r"continue it: torchtui resume ")  # the farewell, on the restored terminal
    finally:
        tmux("kill-server")
    assert not teardown.exists()
    (run_dir,) = runs.glob("*-moons")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "eval" for r in rows) >= 2
    assert (run_dir / "checkpoints" / "last.pt").exists()
    assert json.loads((run_dir / "summary.json").read_text())["state"] == "stopped"


def private_env(tmp_path) -> str:
    """XDG_RUNTIME_DIR=… for a command: this test's run servers listen in a folder of its own."""
    folder = tmp_path / "runtime"
    folder.mkdir(mode=0o700, exist_ok=True)
    return f"XDG_RUNTIME_DIR={folder}"


def cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**ENV, "XDG_RUNTIME_DIR": private_env(tmp_path).partition("=")[2]}
    return subprocess.run([TORCHTUI, *args], capture_output=True, text=True, timeout=120, env=env)


def training_app(tmp_path, session: str, epochs: int = 500) -> tuple[Path, int]:
    """`torchtui moons` exec'd in a tmux pane, trained past its first epoch: (runs folder, the app's pid)."""
    runs = tmp_path / "runs"
    command = (f"cd {tmp_path} && {private_env(tmp_path)} TORCHTUI_RUNS_DIR={runs} "
               f"XDG_CONFIG_HOME={tmp_path / 'xdg'} exec {TORCHTUI} moons --set train.epochs={epochs}")
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", command)
    wait_for_screen(session, r"engine ready")
    tmux("send-keys", "-t", session, "Space")
    wait_for_screen(session, rf"epoch ([1-9]|\d\d+)\.\d\d/{epochs}")
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




def test_a_dropped_connection_leaves_the_run_training_and_attach_brings_it_back(tmp_path):
    """The SSH connection drops (the pty goes away, SIGHUP arrives): the app ends, its run goes on in its
    server; `ps` lists it, `attach` in a new terminal shows it with its earlier history, `stop` ends it."""
    session = f"torchtui-hup-{os.getpid()}"
    try:
        runs, pid = training_app(tmp_path, session, epochs=100_000)
        tmux("kill-session", "-t", session)  # closes the pty and sends SIGHUP, as sshd does
        deadline = time.monotonic() + 45
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling interval
        assert not _alive(pid), "the app did not end when its terminal went away"
        (run_dir,) = runs.glob("*-moons")
        metrics = run_dir / "metrics.jsonl"
        lines = len(metrics.read_text().splitlines())
        deadline = time.monotonic() + 60
        while len(metrics.read_text().splitlines()) < lines + 100 and time.monotonic() < deadline:
            time.sleep(0.1)  # polling interval
        assert len(metrics.read_text().splitlines()) >= lines + 100, "the run stopped training with its terminal"
        (row,) = json.loads(cli(tmp_path, "ps", "--json").stdout.splitlines()[-1])["runs"]
        assert row["state"] == "running" and row["run_dir"] == str(run_dir.resolve())
        before = row["step"]

        again = f"torchtui-attach-{os.getpid()}"
        tmux("new-session", "-d", "-s", again, "-x", "160", "-y", "48",
             f"{private_env(tmp_path)} exec {TORCHTUI} attach {row['run_id'][:15]}")
        wait_for_screen(again, rf"run {row['run_id']}")
        wait_for_screen(again, r"running .* step \d+/")
        screen = tmux("capture-pane", "-p", "-t", again).splitlines()
        ticks = [int(t.replace(",", "")) for i, line in enumerate(screen[:-1]) if "└" in line
                 for t in re.findall(r"\d{1,3}(?:,\d{3})+|\d+", screen[i + 1])]
        assert any(0 < t < before for t in ticks), f"no chart reaches back before step {before}:\n" + "\n".join(screen)
        stop = cli(tmp_path, "stop", row["run_id"])
        assert stop.returncode == 0, stop.stderr
        wait_for_screen(again, r"stopped")
        tmux("send-keys", "-t", again, "q")
        deadline = time.monotonic() + 45
        while (_alive(row["pid"]) or json.loads(cli(tmp_path, "ps", "--json").stdout.splitlines()[-1])["runs"]) \
                and time.monotonic() < deadline:
            time.sleep(0.2)  # polling interval
        assert not _alive(row["pid"]), "the run server is still running after stop and quit"
    finally:
        tmux("kill-server")
    assert json.loads(wait_for_file(run_dir / "summary.json"))["state"] == "stopped"
    assert (run_dir / "checkpoints" / "last.pt").exists()


def test_a_connection_dropped_as_the_app_starts_ends_it(tmp_path):
    """SIGHUP as soon as the first frame shows, while the setup is still being read (issue 31's start-up):
    the app ended only once built, and before that it stayed on with no terminal, at half a core."""
    session = f"torchtui-early-hup-{os.getpid()}"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24",
         f"cd {tmp_path} && {private_env(tmp_path)} exec {TORCHTUI} moons --runs-dir {tmp_path / 'runs'}")
    pid = int(tmux("display-message", "-p", "-t", session, "#{pane_pid}"))
    wait_for_screen(session, r"\? Help")
    tmux("kill-session", "-t", session)  # closes the pty and sends SIGHUP, as sshd does
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling interval
    assert not _alive(pid), "the app did not end when its terminal went away during start-up"
