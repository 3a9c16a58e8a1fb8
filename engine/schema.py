"""Turns plain dicts (from YAML or `--set`) into config dataclasses, with errors that name path and fix."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import math
import reprlib
import types
import typing
from typing import Any

from torchtui.engine.errors import UserError

MAX_LIST_ITEMS = 10_000
MAX_FREE_NODES = 10_000  # values in a free-form mapping (kwargs), counting what YAML aliases repeat


class ConfigError(UserError, ValueError):
    """One or more invalid config values; each problem reads `path: what is wrong (the fix)`."""

    def __init__(self, problems: list[str], details: str = ""):
        self.problems = list(problems)
        self.details = details  # a traceback from the user's code, when one explains the problem
        super().__init__(self.problems[0] if len(self.problems) == 1 else "\n".join(self.problems))

    @property
    def first_line(self) -> str:
        """The first problem, plus how many more there are: fits a status bar or an exit message."""
        more = len(self.problems) - 1
        return self.problems[0] + (f" (and {more} more)" if more > 0 else "")


def suggest(word: str, choices) -> str:
    """A `(did you mean 'x'?)` hint, or a list of the choices when nothing is close."""
    choices = [str(c) for c in choices]
    word = str(word)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6) if len(word) <= 100 else []
    if close:
        return f"did you mean '{close[0]}'?"
    return "choose one of: " + ", ".join(choices)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under each field), read from the class source."""
    try:
        tree = ast.parse(inspect.getsource(cls).lstrip())
    except (OSError, TypeError, SyntaxError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# An excerpt of any value for a message: a few items, a few levels, a few dozen characters. A value from
# YAML aliases can be exponentially large, and repr() of it whole took gigabytes.
_EXCERPT = reprlib.Repr()
_EXCERPT.maxlevel, _EXCERPT.maxlist, _EXCERPT.maxtuple, _EXCERPT.maxdict = 3, 4, 4, 4
_EXCERPT.maxstring, _EXCERPT.maxother, _EXCERPT.maxlong = 60, 60, 40
FLOAT32_MAX = 3.4028234663852886e38


def excerpt(value: Any) -> str:
    """A short repr of `value` (at most ~80 characters, however large or deep the value)."""
    text = _EXCERPT.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(value: Any) -> str:
    return excerpt(value)


def load_yaml_text(text: str, where: str, max_chars: int = 100_000) -> Any:
    """A YAML value from text the user typed (--set, a pane's field), under the limits preset files have:
    size, nesting, values after alias expansion, digits. Problems are a ConfigError starting with `where`."""
    import yaml

    if len(text) > max_chars:
        raise ConfigError([f"{where}: {len(text):,} characters is far too long for a value (limit {max_chars:,})"])
    if "\x00" in text:
        raise ConfigError([f"{where}: the value holds a NUL byte"])
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        reason = str(err).splitlines()[0]
        raise ConfigError([f"{where}: {excerpt(text)} is not valid YAML ({reason[:100]})"]) from None
    except RecursionError:
        raise ConfigError([f"{where}: the value is nested too deep"]) from None
    except ValueError as err:  # int('9' * 5000): Python's limit on digits
        raise ConfigError([f"{where}: a number with too many digits ({str(err)[:60]}…)"]) from None
    if too_many_values(value):
        raise ConfigError([f"{where}: more than {MAX_VALUES:,} values once YAML aliases are expanded"])
    return value


MAX_VALUES = 100_000


def too_many_values(data) -> bool:
    """Whether the data, with aliases expanded, holds more than MAX_VALUES values (stops counting there)."""
    stack, count = [data], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coerce(value: Any, hint: Any, path: str, problems: list[str], sign: str = "") -> Any:
    """Convert a YAML value to the annotated type, recording a problem (and returning None) if it can't.

    `sign` ("positive " or "non-negative ") only words the message: ranges are checked by the class."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(value, inner, path, problems, sign)
    if dataclasses.is_dataclass(hint):
        return parse_dataclass(hint, value, path, problems)
    if origin is dict:
        return _coerce_mapping(value, path, problems)
    if origin is list:
        (inner,) = args
        if not isinstance(value, (list, tuple)):
            problems.append(f"{path}: must be a list, got {_describe(value)}")
            return None
        if len(value) > MAX_LIST_ITEMS:  # before looking at each item: that alone could take minutes
            problems.append(f"{path}: at most {MAX_LIST_ITEMS:,} items, got {len(value):,}")
            return None
        return [coerce(v, inner, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"{path}: must be true or false, got {_describe(value)}")
        return None
    if hint is int:
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problems.append(f"{path}: must be a {sign}whole number, got {_describe(value)}")
        return None
    if hint is float:
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" as a string; accept what float() accepts.
                value = float(value.strip())
            except ValueError:
                pass
        if _is_number(value) and math.isfinite(value) and abs(value) <= FLOAT32_MAX:
            return float(value)
        if _is_number(value) and math.isfinite(value):  # it would overflow the run's tensors
            problems.append(f"{path}: {excerpt(value)} does not fit in float32 (at most 3.4e38 in size)")
            return None
        problems.append(f"{path}: must be a {sign or 'finite '}number, got {_describe(value)}")
        return None
    if hint is str:
        if isinstance(value, str):
            return value
        if _is_number(value):
            return str(value)
        problems.append(f"{path}: must be text, got {_describe(value)}")
        return None
    raise TypeError(f"unsupported config type {hint!r} at {path}")


def _coerce_mapping(value: Any, path: str, problems: list[str]) -> dict | None:
    """Free-form keyword arguments (e.g. for a user's module): text keys, plain YAML values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path}: must be a mapping of names to values, got {_describe(value)}")
        return None
    bad = [k for k in value if not isinstance(k, str) or not k.isidentifier()]
    if bad:
        problems.append(f"{path}: keys must be Python argument names, got {_describe(bad[0])}")
        return None
    budget = [MAX_FREE_NODES]
    try:
        return {k: _plain_copy(v, budget) for k, v in value.items()}
    except TypeError as err:
        problems.append(f"{path}: {err} (use numbers, text, true/false, lists or mappings)")
        return None
    except (OverflowError, RecursionError):
        problems.append(f"{path}: more than {MAX_FREE_NODES:,} values or nested too deep (YAML aliases count "
                        "each time they are used); keep keyword arguments small")
        return None


def _plain_copy(value: Any, budget: list[int], depth: int = 0) -> Any:
    """A copy made of None, bool, numbers, text, lists and text-keyed dicts only (no dates, bytes, tags).

    `budget` counts values down: YAML aliases can make a small file expand exponentially."""
    budget[0] -= 1
    if budget[0] < 0 or depth > 50:
        raise OverflowError
    if isinstance(value, dict):
        return {str(k): _plain_copy(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_copy(v, budget, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__} values are not allowed")


def parse_dataclass(cls: type, data: Any, path: str, problems: list[str]) -> Any:
    """Build `cls` from a mapping: unknown keys and bad values become problems; missing keys take defaults."""
    if data is None:
        data = {}
    if hasattr(cls, "from_shorthand"):
        data = cls.from_shorthand(data)
    if not isinstance(data, dict):
        problems.append(f"{path or 'config'}: must be a mapping of keys to values, got {_describe(data)}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in names:
            problems.append(f"{where}: unknown key ({suggest(key, names)})")
            continue
        before = len(problems)
        sign = ("positive " if key in getattr(cls, "POSITIVE", ()) else
                "non-negative " if key in getattr(cls, "NON_NEGATIVE", ()) else "")
        if value is False and "off" in getattr(cls, "CHOICES", {}).get(key, ()):
            value = "off"  # YAML 1.1 reads an unquoted off (no, false) as False: `guard: off` means the word
        converted = coerce(value, hints[key], where, problems, sign)
        if len(problems) == before:
            kwargs[key] = converted
    obj = cls(**kwargs)
    problems.extend(_sign_problems(obj, path))
    if hasattr(obj, "check"):
        for field_name, message in obj.check():
            problems.append(f"{path}.{field_name}: {message}" if path else f"{field_name}: {message}")
    return obj


def _sign_problems(obj: Any, path: str) -> list[str]:
    """Problems with the fields a class lists in CHOICES, POSITIVE and NON_NEGATIVE."""
    out = []
    prefix = f"{path}." if path else ""
    for name, choices in getattr(obj, "CHOICES", {}).items():
        value = getattr(obj, name)
        if value not in choices:
            out.append(f"{prefix}{name}: unknown {excerpt(value)} ({suggest(value, choices)})")
    for name in getattr(obj, "POSITIVE", ()):
        value = getattr(obj, name)
        if value <= 0:
            kind = "whole number" if isinstance(value, int) else "number"
            out.append(f"{prefix}{name}: must be a positive {kind}, got {value!r}")
    for name in getattr(obj, "NON_NEGATIVE", ()):
        value = getattr(obj, name)
        if value < 0:
            out.append(f"{prefix}{name}: must be zero or more, got {value!r}")
    for name, limit in getattr(obj, "MAXIMUM", {}).items():
        value = getattr(obj, name)
        if isinstance(value, list) and len(value) > limit:
            out.append(f"{prefix}{name}: at most {limit:,} items, got {len(value):,}")
        elif not isinstance(value, list) and value > limit:
            # Far past anything trainable here: it would only exhaust memory or never finish.
            out.append(f"{prefix}{name}: at most {limit:,}, got {_short(value)}")
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}…({len(text)} digits)"


def to_plain(obj: Any) -> Any:
    """Dataclasses → dicts in field order (lists and scalars as they are), ready for yaml.safe_dump."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj
