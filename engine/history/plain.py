"""A RunHistory as plain values (dicts, lists, str, numbers), and back: what p.History carries and history.json
holds. Never pickle: a run folder's file is read back, and loading it must not be able to run code.

Series levels (array('d')) travel as base64 of their little-endian float64 bytes; the protocol's events inside
a history (its RunStarted, latest StepStats, Predictions, the confusion's EvalResult, live changes) as their
class name and fields, rebuilt only as one of protocol.EVENTS.
"""

from __future__ import annotations

import base64
import sys
from array import array

from torchtui.engine import protocol as p
from torchtui.engine.history.series import Series

EVENT_TYPES = {cls.__name__: cls for cls in p.EVENTS}


def encode(value):
    if isinstance(value, Series):
        return {"__series__": {"cap": value.cap, "count": value._count, "last": value._last,
                               "levels": [None if level is None else [_b64(a) for a in level]
                                          for level in value._levels],
                               # a copy: the server's sender thread pickles this while its dispatcher appends
                               "pending": list(value._pending)}}
    if EVENT_TYPES.get(type(value).__name__) is type(value):
        return {"__event__": type(value).__name__, "fields": {k: encode(v) for k, v in vars(value).items()}}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value):
    if isinstance(value, dict):
        if "__series__" in value:
            return _series(value["__series__"])
        if "__event__" in value:
            cls = EVENT_TYPES[value["__event__"]]  # KeyError for anything else: the caller refuses the whole
            return cls(**{k: decode(v) for k, v in value["fields"].items()})
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def _series(data: dict) -> Series:
    series = Series(int(data["cap"]))
    series._count = int(data["count"])
    series._last = tuple(data["last"]) if data["last"] is not None else None
    series._levels = [None if level is None else tuple(_array(text) for text in level) for level in data["levels"]]
    series._pending = [None if b is None else tuple(float(v) for v in b) for b in data["pending"]]
    if len(series._levels) != len(series._pending) or any(
            level is not None and len({len(a) for a in level}) != 1 for level in series._levels):
        raise ValueError("a series whose levels do not line up")
    return series


def _b64(values: array) -> str:
    if sys.byteorder != "little":
        values = array("d", values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def _array(text: str) -> array:
    values = array("d")
    values.frombytes(base64.b64decode(text, validate=True))
    if sys.byteorder != "little":
        values.byteswap()
    return values
