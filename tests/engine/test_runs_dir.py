"""Where runs go when no folder is named: the working directory's runs/ when it has one, else one folder in the
user's data dir, so `torchtui runs` lists a run wherever it was started ($TORCHTUI_RUNS_DIR and --runs-dir win)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torchtui.cli.main import main
from torchtui.engine.runs import default_runs_dir


def test_runs_started_anywhere_are_listed_anywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TORCHTUI_RUNS_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    somewhere, elsewhere = tmp_path / "project", tmp_path / "other"
    somewhere.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(somewhere)
    assert main(["train", "moons", "--set", "data.n_samples=100", "--epochs", "1", "--device", "cpu"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    home = tmp_path / "data" / "torchtui" / "runs"
    assert f"-> {home}/" in first, first  # the first line says where the run folder is
    assert not (somewhere / "runs").exists()
    monkeypatch.chdir(elsewhere)
    assert main(["runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert listed["runs_dir"] == str(home) and len(listed["runs"]) == 1


def test_a_working_directory_with_runs_keeps_them_there(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHTUI_RUNS_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert default_runs_dir() == tmp_path / "runs"
    monkeypatch.setenv("TORCHTUI_RUNS_DIR", str(tmp_path / "mine"))
    assert default_runs_dir() == tmp_path / "mine"


def test_without_xdg_data_home_runs_go_under_local_share(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TORCHTUI_RUNS_DIR")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert default_runs_dir() == tmp_path / "home" / ".local" / "share" / "torchtui" / "runs"
    assert main(["runs"]) == 0
    assert capsys.readouterr().out == f"no runs in {tmp_path}/home/.local/share/torchtui/runs\n"


def test_the_runs_dir_option_says_where_runs_go(capsys):
    with pytest.raises(SystemExit):
        main(["train", "-h"])
    text = " ".join(capsys.readouterr().out.split())
    assert "./runs if it exists, else $XDG_DATA_HOME/torchtui/runs" in text


def test_no_test_writes_to_the_real_data_dir():
    import os

    assert Path(os.environ["XDG_DATA_HOME"]).parts[-1] == "xdg-data"  # tests/conftest.py points it into tmp


def test_runs_in_a_folder_with_its_own_runs_names_the_users_folder_too(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TORCHTUI_RUNS_DIR")
    mine = tmp_path / "data" / "torchtui" / "runs"
    (mine / "20261207-105634-moons").mkdir(parents=True)
    (mine / "20261207-105634-moons" / "config.yaml").write_text("schema: 1\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert main(["runs"]) == 0
    assert capsys.readouterr().out == (f"no runs in {tmp_path}/runs\n"
                                       f"also: 1 run folder in {mine} (torchtui runs --runs-dir {mine})\n")
