"""Fixtures the engine's test files share."""

import os
import signal

import pytest

from torchtui.engine import live


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A private XDG_RUNTIME_DIR for this test's servers (they inherit it), and a check that none is left."""
    folder = tmp_path / "xdg"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder / "torchtui"
    for info in live.servers():
        os.kill(info.pid, signal.SIGKILL)
