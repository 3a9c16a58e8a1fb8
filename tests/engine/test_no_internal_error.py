"""What a user or their machine causes is never an `internal error` (issue 32): each condition is made for
real (folders, files, pipes, a pty, a killed process) and the CLI runs as a process.

- the socket folder pre-made as a link, a file, another user's folder, or open to others; an unusable
  XDG_RUNTIME_DIR: one line, exit 2, the fix named;
- a sweep's storage damaged, a folder, an unknown URL, a missing folder or driver, an unreachable server,
  an empty study beside trial runs: one line, exit 2, the study file left as it was;
- output that goes away (a pipe closed early, stdout or both streams closed): the run goes on and the
  command exits as the run does; TERM=dumb gets plain lines;
- the last-resort handler prints its line where HOME cannot be written;
- `ps --json` names run folders by absolute path; a writer killed and not yet reaped (a zombie) or a
  `.lock` naming a live but unrelated pid is not `running`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .test_cli import CLI, last_json, one_line_error

QUICK = ["--set", "data.n_samples=200", "--device", "cpu"]


def cli(*args: str, cwd=None, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env or dict(os.environ), stdin=subprocess.DEVNULL)


def no_internal_error(result: subprocess.CompletedProcess) -> None:
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling interval, not a wait for an outcome


# ------------------------------------------------------------------ 1. the socket folder

def _link(folder: Path) -> None:
    target = folder.parent / "elsewhere"
    target.mkdir(mode=0o700)
    (folder / "torchtui").symlink_to(target)


def _file(folder: Path) -> None:
    (folder / "torchtui").write_text("squatted\n")


def _other_owner(folder: Path) -> None:
    (folder / "torchtui").mkdir(mode=0o700)
    os.chown(folder / "torchtui", 54321, 54321)


def _mode(mode: int):
    def make(folder: Path) -> None:
        (folder / "torchtui").mkdir()
        os.chmod(folder / "torchtui", mode)
    return make


SOCKET_FOLDERS = {
    "a symlink": (_link, "is a symlink"),
    "a regular file": (_file, "is not a folder: remove it"),
    "another user's folder": (_other_owner, "belongs to another user (uid 54321)"),
    "mode 0777": (_mode(0o777), "has mode 777: others may enter it: chmod 700"),
    "mode 0755": (_mode(0o755), "has mode 755"),
    "mode 0710": (_mode(0o710), "has mode 710"),
    "mode 1777": (_mode(0o1777), "has mode 1777"),
}


@pytest.mark.parametrize("case", sorted(SOCKET_FOLDERS))
def test_a_socket_folder_that_is_not_private_is_refused_in_one_line(case, tmp_path):
    make, expected = SOCKET_FOLDERS[case]
    if case == "another user's folder" and os.geteuid() != 0:
        pytest.skip("making a folder of another owner needs root")
    base = tmp_path / "xdg"
    base.mkdir(mode=0o700)
    make(base)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(base))
    for args in (["train", "moons", *QUICK, "--detach"], ["ps", "--json"]):
        result = cli(*args, env=env)
        line = one_line_error(result)
        assert line.startswith(f"torchtui: error: {base / 'torchtui'}") and expected in line, line
        if "--json" in args:
            assert last_json(result.stdout)["state"] == "rejected"
    if case in ("a symlink", "a regular file", "another user's folder"):
        assert "XDG_RUNTIME_DIR" in line  # the way out when someone else holds the name
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.parametrize("case", ["missing", "a file"])
def test_an_unusable_xdg_runtime_dir_is_named_in_one_line(case, tmp_path):
    base = tmp_path / "no-such-folder"
    if case == "a file":
        base.write_text("")
    result = cli("train", "moons", *QUICK, "--detach", env=dict(os.environ, XDG_RUNTIME_DIR=str(base)))
    line = one_line_error(result)
    assert f"check XDG_RUNTIME_DIR={base}, or unset it" in line, line
    assert not base.is_dir()  # the session's folder is not ours to make


# ------------------------------------------------------------------ 2. sweep storage

SWEEP = {"schema": 1, "name": "s", "data": {"source": "moons", "n_samples": 100},
         "model": {"layers": [4]}, "device": {"device": "cpu"},
         "train": {"loss": "cross_entropy", "lr": 0.01, "batch_size": 32, "epochs": 1},
         "sweep": {"method": "grid", "metric": "accuracy", "params": {"train.lr": [0.01]}}}


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    """A tiny finished sweep: its folder holds a real study.db and one trial run."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    done = cli("sweep", str(root / "sweep.yaml"), "--runs-dir", str(root / "runs"), "--name", "ok", timeout=300)
    assert done.returncode == 0, done.stderr
    return root / "runs" / "sweep-ok"


def _copy_sweep(finished: Path, folder: Path, study: bytes | None) -> None:
    shutil.copytree(finished, folder)  # the same sweep (sweep.yaml) and its trial run
    (folder / "study.db").unlink()
    if study is not None:
        (folder / "study.db").write_bytes(study)


def _study_bytes(finished: Path, case: str) -> bytes | None:
    good = (finished / "study.db").read_bytes()
    return {"cut in half": good[:len(good) // 2], "garbage inside": os.urandom(len(good)),
            "garbage at its header": b"garbage!" * 4 + good[32:], "empty beside its trial runs": b"",
            "a directory": None}[case]


@pytest.mark.parametrize("case", ["cut in half", "garbage inside", "garbage at its header", "a directory",
                                  "empty beside its trial runs"])
def test_a_damaged_study_db_says_so_and_is_left_as_it_was(case, finished_sweep, tmp_path):
    folder = tmp_path / "runs" / "sweep-copy"
    study = _study_bytes(finished_sweep, case)
    _copy_sweep(finished_sweep, folder, study)
    if study is None:
        (folder / "study.db").mkdir()
    preset = finished_sweep.parent.parent / "sweep.yaml"
    result = cli("sweep", str(preset), "--runs-dir", str(tmp_path / "runs"), "--name", "copy")
    line = one_line_error(result)
    expected = {"cut in half": "is damaged (database disk image is malformed)",
                "garbage inside": "is damaged (file is not a database)",
                "garbage at its header": "is damaged (file is not a database)",
                "a directory": "is a folder, not a study file",
                "empty beside its trial runs": "is empty (0 bytes) but"}[case]
    assert f"{folder / 'study.db'}" in line and expected in line, line
    assert "move" in line  # what to do
    if study is not None:
        assert (folder / "study.db").read_bytes() == study  # nothing rewritten
    assert not result.stdout  # refused before the sweep is announced


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


URLS = {
    "an unknown scheme": ("nonsense://", "not a database URL SQLAlchemy knows"),
    "not a URL": ("not a url", "not a database URL"),
    "a SQLite file in a missing folder": ("sqlite:///{tmp}/missing/folder/study.db",
                                          "the folder {tmp}/missing/folder does not exist"),
    "a MySQL driver not installed": ("mysql+pymysql://u@127.0.0.1:1/db",
                                     "the pymysql driver is not installed: pip install PyMySQL"),
    "psycopg2 not installed": ("postgresql+psycopg2://u@127.0.0.1:1/db",
                               "the psycopg2 driver is not installed: pip install psycopg2-binary"),
    "an unreachable PostgreSQL server": ("postgresql://u:secret@127.0.0.1:1/db",
                                         "postgresql://u:***@127.0.0.1:1/db: cannot reach the database"),
}


@pytest.mark.parametrize("case", sorted(URLS))
def test_a_storage_url_that_cannot_be_used_says_what_to_do(case, tmp_path):
    needs = {"a MySQL driver not installed": ("pymysql", False), "psycopg2 not installed": ("psycopg2", False),
             "an unreachable PostgreSQL server": ("psycopg", True)}.get(case)
    if needs and _importable(needs[0]) != needs[1]:
        pytest.skip(f"{needs[0]} is {'not ' if needs[1] else ''}installed here")
    url, expected = (s.format(tmp=tmp_path) for s in URLS[case])
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    result = cli("sweep", str(tmp_path / "sweep.yaml"), "--runs-dir", str(tmp_path / "runs"), "--storage", url,
                 "--json")
    line = one_line_error(result)
    assert expected in line, line
    assert "secret" not in line
    assert last_json(result.stdout)["state"] == "rejected"


# The CLI with psycopg unimportable, as where the postgres extra is not installed (the test extra installs it,
# so the test hides it: it was skipped wherever the suite runs).
WITHOUT_PSYCOPG = "import sys; sys.modules['psycopg'] = None; from torchtui.cli.main import main; sys.exit(main())"


def test_the_missing_driver_of_a_plain_postgresql_url_names_the_extra(tmp_path):
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    result = subprocess.run([sys.executable, "-c", WITHOUT_PSYCOPG, "sweep", str(tmp_path / "sweep.yaml"),
                             "--runs-dir", str(tmp_path / "runs"), "--storage", "postgresql://u@127.0.0.1:1/db"],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    line = one_line_error(result)
    assert "the psycopg driver is not installed: pip install 'torchtui[postgres]'" in line, line


# ------------------------------------------------------------------ 3. output that goes away

def run_summary(runs: Path) -> dict:
    (summary,) = runs.glob("*/summary.json")
    return json.loads(summary.read_text())


def test_train_into_a_pipe_closed_after_one_line_finishes_the_run(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen([*CLI, "train", "moons", *QUICK, "--epochs", "6", "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout.readline().startswith(b"run ")  # what `head -1` reads, then it goes away
    proc.stdout.close()
    code = proc.wait(timeout=120)
    stderr = proc.stderr.read().decode()
    assert code == 0 and "internal error" not in stderr, stderr
    summary = run_summary(runs)
    assert summary["state"] == "finished" and summary["epochs"] == 6


def test_presets_show_into_a_closed_pipe_exits_quietly():
    proc = subprocess.Popen([*CLI, "presets", "show", "moons"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    proc.stdout.close()  # the reader is gone before anything is written
    code = proc.wait(timeout=60)
    assert (code, proc.stderr.read()) == (0, b"")


@pytest.mark.parametrize("closed", [">&-", ">&- 2>&-"])
def test_train_with_its_output_closed_finishes_and_exits_0(closed, tmp_path):
    runs = tmp_path / "runs"
    command = " ".join([*CLI, "train", "moons", *QUICK, "--epochs", "2", "--runs-dir", str(runs), "--json"])
    result = subprocess.run(["bash", "-c", f"exec {command} {closed}"], capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    no_internal_error(result)
    assert run_summary(runs)["state"] == "finished"


def on_a_pty(args: list[str], term: str) -> bytes:
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, *args], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, TERM=term))
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, out.decode(errors="replace")[-2000:]
    return out


def test_a_dumb_terminal_gets_plain_lines(tmp_path):
    args = ["train", "moons", *QUICK, "--epochs", "2", "--runs-dir", str(tmp_path / "runs")]
    assert b"\x1b[2K" in on_a_pty(args, "xterm-256color")  # a terminal redraws the line in place
    plain = on_a_pty(args, "dumb")
    assert b"\x1b" not in plain and b"finished after 2 epochs" in plain


# ------------------------------------------------------------------ 4. the last-resort handler

def test_the_last_resort_handler_prints_its_line_where_home_cannot_be_written(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XDG_STATE_HOME"}
    env["HOME"] = "/proc/self"  # read-only for everyone, root included
    bug = ("import sys; from torchtui.cli import main as m; m.build_parser = lambda *a: 1 / 0; "
           "sys.exit(m.main(['runs']))")
    result = subprocess.run([sys.executable, "-c", bug], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["torchtui: internal error: ZeroDivisionError: division by zero "
                                          "(no log could be written)"]


# ------------------------------------------------------------------ 5. run listings

def test_ps_json_names_run_folders_by_absolute_path(runtime, tmp_path):
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    started = cli("train", "moons", *QUICK, "--epochs", "100000", "--detach", "--runs-dir", "runs",
                  cwd=tmp_path / "here")
    assert started.returncode == 0, started.stderr
    runs = wait_until(lambda: [r for r in json.loads(cli("ps", "--json", cwd=tmp_path / "elsewhere").stdout)["runs"]
                               if r["run_dir"]], 60, "the run to start")
    (run,) = runs
    assert Path(run["run_dir"]).is_absolute() and Path(run["run_dir"]).parent == tmp_path / "here" / "runs"
    assert cli("stop", run["run_id"]).returncode == 0


def listed_state(runs: Path) -> str:
    result = cli("runs", "--runs-dir", str(runs), "--json")
    assert result.returncode == 0, result.stderr
    (run,) = json.loads(result.stdout.splitlines()[-1])["runs"]
    return run["state"]


def test_a_killed_writer_not_yet_reaped_or_an_unrelated_pid_in_its_lock_is_not_running(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen([*CLI, "train", "moons", *QUICK, "--epochs", "100000", "--runs-dir", str(runs)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        metrics = wait_until(lambda: list(runs.glob("*/metrics.jsonl")), 120, "the run's first rows")
        wait_until(lambda: metrics[0].stat().st_size > 0, 60, "a row")
        assert listed_state(runs) == "running"
        os.kill(proc.pid, signal.SIGKILL)
        wait_until(lambda: Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 30,
                   "the writer to be a zombie")  # dead, not reaped: kill(pid, 0) still succeeds
        assert listed_state(runs) == "interrupted"
    finally:
        proc.kill()
        proc.wait()
    (metrics[0].parent / ".lock").write_text("1\n")  # pid 1 lives, and holds no lock on this run
    assert listed_state(runs) == "interrupted"
