"""Loading the user's own code (`path/to/file.py:name`) with errors that name the field, file and line."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any

from torchtui.engine.errors import UserError


class UserCodeError(UserError, ValueError):
    """The user's file, name or call failed; the message names the config field and file:line."""


def split_ref(ref: str) -> tuple[str, str]:
    """`path/to/file.py:name` → (path, name); the last colon separates them (Windows drives keep theirs)."""
    file, _, name = ref.rpartition(":")
    return file.strip(), name.strip()


def where(err: BaseException, path: Path | None = None) -> str:
    """`file:line` of the deepest traceback frame in `path` (the user's file), else of the deepest frame."""
    frames = traceback.extract_tb(err.__traceback__)
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}"
    if path is not None:
        mine = [f for f in frames if Path(f.filename).resolve() == path.resolve()]
        if mine:
            return f"{mine[-1].filename}:{mine[-1].lineno}"
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


# Modules whose pip package has another name.
PIP_NAMES = {"sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "pillow", "yaml": "pyyaml",
             "skimage": "scikit-image"}


def import_problem(err: ImportError, path: Path, ref: str, field: str, kind: str) -> str:
    """A failed import in the user's file: which module, from which line, and the two ways out."""
    file, name = split_ref(ref)
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == path]
    line = f"line {frames[-1].lineno} ({(frames[-1].line or '').strip()})" if frames else where(err, path)
    missing = err.name or ""
    top = missing.split(".")[0]
    if isinstance(err, ModuleNotFoundError) and top:
        if importlib.util.find_spec(top) is None:
            need = f"needs the module '{missing}', which is neither installed here nor a file beside {path.name}"
            fix = f"install it (pip install {PIP_NAMES.get(top, top)})"
        else:
            need = f"needs the module '{missing}', which the installed '{top}' does not have"
            fix = f"install a version of {top} that has it"
    else:
        need = f"raised {type(err).__name__}: {err}"
        fix = "fix that import"
    return (f"{field}: importing {file} failed at {line}: it {need}, so the whole file fails to import. Either "
            f"{fix}, or, if {kind} {name} does not need it, copy {kind} {name} alone (with what it uses) into a "
            f"file of its own and set {field} to that file")


def load_object(ref: str, field: str, kind: str = "object") -> tuple[Any, Path]:
    """Import the file named by `ref` and return (the named object, the file's path); `kind` (class,
    function) words the advice when one of the file's imports fails.

    The module is imported afresh on every call, so edits to the file are picked up by the next run.
    """
    file, name = split_ref(ref)
    path = Path(file).expanduser()
    if not path.is_file():
        raise UserCodeError(f"{field}: no such file '{file}'" + (" (it is a folder)" if path.is_dir() else ""))
    path = path.resolve()
    module_name = "torchtui_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserCodeError(f"{field}: '{file}' is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # DataLoader workers and pickling find classes by module name
    sys.path.insert(0, str(path.parent))  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise UserCodeError(f"{field}: {where(err)}: invalid syntax ({err.msg})") from None
    except ImportError as err:
        raise UserCodeError(import_problem(err, path, ref, field, kind)) from err
    except Exception as err:  # noqa: BLE001 - anything the user's module does at import time
        raise UserCodeError(f"{field}: importing {file} failed at {where(err, path)}: "
                            f"{type(err).__name__}: {err}") from err
    finally:
        try:
            sys.path.remove(str(path.parent))
        except ValueError:
            pass
    if not hasattr(module, name):
        names = [n for n, v in vars(module).items()
                 if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module_name]
        found = f"it defines: {', '.join(names)}" if names else "it defines no functions or classes"
        raise UserCodeError(f"{field}: {file} has no '{name}' ({found})")
    return getattr(module, name), path


def call(obj: Any, path: Path, field: str, what: str, **kwargs) -> Any:
    """Call the user's function or class; an exception becomes one line naming file:line."""
    try:
        return obj(**kwargs)
    except Exception as err:  # noqa: BLE001 - user code may raise anything
        raise UserCodeError(f"{field}: {what} raised {type(err).__name__} at {where(err, path)}: {err}") from err
