"""The user's own data: path/to/file.py:function returning (train, val[, test]) datasets or (X, y) pairs."""

from __future__ import annotations

from typing import Any

from torchtui.engine.config import DataConfig
from torchtui.engine.errors import DataError
from torchtui.engine.usercode import UserCodeError, call, load_object


def read_code(cfg: DataConfig) -> tuple[Any, Any, Any]:
    """Call path/to/file.py:function(**kwargs); it returns (train, val[, test]) datasets or (X, y) pairs."""
    try:
        fn, path = load_object(cfg.path, "data.path", "function")
        result = call(fn, path, "data.path", f"{cfg.path}()", **cfg.kwargs)
    except UserCodeError as err:
        raise DataError(str(err)) from err.__cause__
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
        raise DataError(f"data.path: {cfg.path}() must return (train, val) or (train, val, test) datasets, "
                        f"got {type(result).__name__}" + (f" of {len(result)}" if isinstance(result, (tuple, list))
                                                          else ""))
    parts = list(result) + [None] * (3 - len(result))
    for name, part in zip(("train", "val", "test"), parts):
        if part is not None and not (hasattr(part, "__len__") and hasattr(part, "__getitem__")):
            raise DataError(f"data.path: {cfg.path}() returned a {type(part).__name__} as its {name} part; "
                            "expected a map-style Dataset (with __len__ and __getitem__) or an (X, y) pair")
    if len(parts[0]) == 0:
        raise DataError(f"data.path: {cfg.path}() returned an empty train dataset")
    return tuple(parts)


def read(cfg: DataConfig) -> tuple[tuple[Any, Any, Any], list[str]]:
    return read_code(cfg), []
