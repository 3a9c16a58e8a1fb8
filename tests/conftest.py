"""Shared fixtures: keep user presets and run folders inside each test's tmp_path."""

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """No test reads or writes the real ~/.config, ~/.local/share or ./runs."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # the token cache of text corpora
    monkeypatch.setenv("TORCHTUI_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path
