"""Every error type of ours that the package raises is a UserError, and the CLI's handler of last resort maps
each of them to one line and exit 2 with its message: a new error type cannot slip into `internal error`.

The raise sites are found by reading the source (ast), so an error class added later is checked without
anyone listing it here.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from torchtui.cli import main as cli_main
from torchtui.engine.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"engine": "torchtui.engine", "cli": "torchtui.cli", "tui": "torchtui.tui"}


def modules():
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts[:-1])) if parts[-1] == "__init__" else ".".join((package, *parts))
            yield name, path


def own_exception_classes() -> dict[str, type]:
    """{qualified name: class} of every exception class defined in the package."""
    found = {}
    for name, path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.bases:
                cls = getattr(importlib.import_module(name), node.name, None)
                if isinstance(cls, type) and issubclass(cls, BaseException):
                    found[f"{name}.{node.name}"] = cls
    return found


def raised_names() -> dict[str, list[str]]:
    """{class name: ['file:line', …]} of every `raise Name(…)` / `raise module.Name(…)` in the package."""
    sites: dict[str, list[str]] = {}
    for _, path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
                if name:
                    sites.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return sites


OWN = own_exception_classes()
RAISED = {qual: cls for qual, cls in OWN.items() if cls.__name__ in raised_names()}


def test_the_package_raises_its_own_error_types():  # the walk finds what it should, or the rest proves nothing
    names = {cls.__name__ for cls in RAISED.values()}
    assert {"ConfigError", "DataError", "ModelError", "UsageError", "LiveRunError", "StorageError",
            "UserCodeError", "RunInUse"} <= names


@pytest.mark.parametrize("qual", sorted(RAISED))
def test_each_error_type_raised_is_a_user_error(qual):
    cls = RAISED[qual]
    assert issubclass(cls, UserError), (
        f"{qual} is raised at {raised_names()[cls.__name__][:3]} but is not a UserError: the CLI would call it "
        "an internal error (derive it from torchtui.engine.errors.UserError, or raise a built-in for our bugs)")


def instance(cls: type) -> BaseException:
    from torchtui.engine.schema import ConfigError

    text = f"{cls.__name__.lower()}: what is wrong (the fix)"
    return cls([text]) if issubclass(cls, ConfigError) else cls(text)


@pytest.mark.parametrize("qual", sorted(q for q, c in OWN.items() if issubclass(c, UserError)))
@pytest.mark.parametrize("json_mode", [False, True])
def test_the_last_resort_handler_gives_each_user_error_one_line_and_exit_2(qual, json_mode, monkeypatch, capsys):
    err = instance(OWN[qual])

    def run(args):
        raise err

    monkeypatch.setattr(cli_main.command("runs"), "run", run)
    code = cli_main.main(["runs", *(["--json"] if json_mode else [])])
    out, stderr = capsys.readouterr()
    message = f"{type(err).__name__.lower()}: what is wrong (the fix)"
    assert code == 2
    assert stderr == f"torchtui: error: {message}\n"
    if json_mode:
        assert out.splitlines()[-1] == f'{{"state": "rejected", "error": "{message}"}}'


def test_our_own_bugs_stay_internal_errors(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    def run(args):
        raise KeyError("a bug of ours")

    monkeypatch.setattr(cli_main.command("runs"), "run", run)
    assert cli_main.main(["runs"]) == 1
    assert "torchtui: internal error: KeyError" in capsys.readouterr().err
    assert "KeyError: 'a bug of ours'" in (tmp_path / "torchtui" / "errors.log").read_text()
