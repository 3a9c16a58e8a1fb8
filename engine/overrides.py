"""`--set KEY=VALUE` overrides: dotted keys with list indexes, values parsed as YAML, applied to a preset."""

from __future__ import annotations

import re
from typing import Any

from torchtui.engine.config import ExperimentConfig
from torchtui.engine.schema import ConfigError, excerpt, load_yaml_text

_KEY_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")
# A list item given as a bare number is shorthand for one key (see LayerConfig/ConvConfig.from_shorthand).
SHORTHAND_KEYS = {("model", "layers"): "units", ("model", "conv"): "channels"}


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """Split `train.lr=0.01` or `model.layers[1].activation=gelu` into a key path (names and list
    indexes) and a value parsed as YAML (`[64, 64]` is a list)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    path: list[str | int] = []
    for part in key.split(".") if sep and key else [""]:
        match = _KEY_PART.match(part)
        if not match:
            raise ConfigError([f"--set {excerpt(text)}: expected KEY=VALUE with a dotted key, e.g. train.lr=0.01 "
                               "or model.layers[0].units=32"])
        path.append(match.group(1))
        path += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    value = load_yaml_text(raw, f"--set {key}") if raw.strip() else ""
    return path, value


def _path_text(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of a preset mapping with each `KEY=VALUE` override applied (validated later).

    An index into a list the preset leaves out starts from the default list (`model.layers[0].units=8`
    edits the default layers); a bare-number item (`64`) is expanded before a key inside it is set.
    """
    out = _deepcopy_plain(data or {})
    defaults = ExperimentConfig().to_dict()
    for text in overrides:
        path, value = parse_override(text)
        node, default = out, defaults
        for i, step in enumerate(path[:-1]):
            nxt = path[i + 1]
            default = default.get(step) if isinstance(default, dict) and isinstance(step, str) else (
                default[step] if isinstance(default, list) and isinstance(step, int) and step < len(default) else None)
            child = _child(node, step, path[: i + 1], text)
            if child is None:
                if isinstance(nxt, int) and not isinstance(default, list):
                    raise ConfigError([f"--set {_path_text(path)}: '{_path_text(path[: i + 1])}' is not a list"])
                child = _deepcopy_plain(default) if isinstance(nxt, int) else {}
                node[step] = child
            shorthand = SHORTHAND_KEYS.get(tuple(path[: i])) if isinstance(step, int) else None
            if shorthand and isinstance(child, (int, float)) and not isinstance(child, bool):
                child = node[step] = {shorthand: child}
            if not isinstance(child, (dict, list)) or isinstance(child, list) != isinstance(nxt, int):
                kind = "a list" if isinstance(child, list) else "a section" if isinstance(child, dict) else "a value"
                raise ConfigError([f"--set {_path_text(path)}: '{_path_text(path[: i + 1])}' is {kind}, "
                                   f"not {'a list' if isinstance(nxt, int) else 'a section'}"])
            node = child
        _child(node, path[-1], path, text)  # checks a final index is in range
        node[path[-1]] = value
    return out


def _child(node: dict | list, step: str | int, path: list, text: str) -> Any:
    if isinstance(node, list):
        if step >= len(node):
            raise ConfigError([f"--set {_path_text(path)}: index {step} is past the end "
                               f"({_path_text(path[:-1])} has {len(node)} items)"])
        return node[step]
    return node.get(step)


def _deepcopy_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy_plain(v) for v in value]
    return value
