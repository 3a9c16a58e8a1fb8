"""Presets: find by path, user folder or built-in name; load through yaml.safe_load; save atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from .files import atomic_write_text
from .config import ExperimentConfig, apply_overrides, from_dict
from .schema import ConfigError, suggest

MAX_PRESET_BYTES = 1_000_000  # a preset is a few hundred bytes; refuse to parse megabytes of junk


@dataclass(frozen=True)
class PresetInfo:
    """A preset's name, description, where it lives and whether it ships with torchtui."""
    name: str
    description: str
    path: Path
    builtin: bool


def user_dir() -> Path:
    """$XDG_CONFIG_HOME/torchtui/presets (default ~/.config/torchtui/presets)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "torchtui" / "presets"


def builtin_dir() -> Path:
    return Path(str(resources.files("torchtui.presets")))


def _named(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {f.stem: f for f in sorted(folder.glob("*.yaml"))}


def find(ref: str) -> tuple[Path, bool]:
    """(path, is_builtin) for a file path, else a user preset name, else a built-in name."""
    path = Path(ref).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in ref or path.is_file():
        if path.is_file():
            return path, False
        raise ConfigError([f"preset: no such file '{ref}'"])
    user, builtin = _named(user_dir()), _named(builtin_dir())
    if ref in user:
        return user[ref], False
    if ref in builtin:
        return builtin[ref], True
    names = sorted(set(user) | set(builtin))
    raise ConfigError([f"preset: no preset named '{ref}' ({suggest(ref, names)})"])


def read_yaml(path: Path) -> dict:
    """A preset file's mapping; any problem (size, syntax, shape) is a ConfigError naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_PRESET_BYTES:
            raise ConfigError([f"{path}: {size:,} bytes is far too large for a preset (limit {MAX_PRESET_BYTES:,})"])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not a text file (presets are UTF-8 YAML)"]) from None
    except OSError as err:
        raise ConfigError([f"{path}: cannot read ({err.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError([f"{path}:{where} invalid YAML ({what})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: a preset must be a mapping of sections (data, model, train, device)"])
    return data


# Fields that name files; a relative one in a preset file means relative to that file.
PATH_FIELDS = (("data", "path"), ("model", "module"), ("model", "pretrained"))


def resolve_paths(data: dict, base: Path) -> dict:
    """A copy of a preset mapping whose relative file paths are made absolute against `base` (its folder).

    So a preset and the CSV or module beside it can move together; `file.py:name` keeps its `:name`.
    """
    out = dict(data)
    for section, key in PATH_FIELDS:
        part = out.get(section)
        if not isinstance(part, dict) or not isinstance(part.get(key), str) or not part[key].strip():
            continue
        value = part[key]
        file, colon, name = value.rpartition(":") if _is_code_field(section, key, part) else (value, "", "")
        target = Path(file).expanduser()
        if not target.is_absolute():
            out[section] = {**part, key: str(base / target) + colon + name}
    return out


def _is_code_field(section: str, key: str, part: dict) -> bool:
    return (section, key) == ("model", "module") or (section == "data" and part.get("source") == "code")


def load_mapping(ref: str, overrides: list[str] | None = None) -> tuple[Path, dict]:
    """Find and read a preset, resolve its relative paths, apply `--set` overrides (not yet validated)."""
    path, _ = find(ref)
    return path, apply_overrides(resolve_paths(read_yaml(path), path.parent.resolve()), overrides or [])


def load(ref: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Find, read and validate a preset, applying `--set` overrides; errors name the file and field."""
    path, data = load_mapping(ref, overrides)
    try:
        return from_dict(data)
    except ConfigError as err:
        raise ConfigError([f"{path}: {line}" for line in err.problems]) from None


def list_presets() -> list[PresetInfo]:
    """Built-in then user presets, each with its one-line description (unreadable ones say so)."""
    out = []
    for folder, builtin in ((builtin_dir(), True), (user_dir(), False)):
        for name, path in _named(folder).items():
            try:
                description = str(read_yaml(path).get("description", ""))
            except ConfigError as err:
                description = f"(unreadable: {err.first_line})"
            out.append(PresetInfo(name, description, path, builtin))
    return out


def save(config: ExperimentConfig, name: str, overwrite: bool = False) -> Path:
    """Write `config` as the user preset `name` atomically; never a built-in, never an unasked overwrite."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ConfigError([f"preset name: '{name}' is not usable as a file name (letters, digits, - and _)"])
    if name in _named(builtin_dir()):
        raise ConfigError([f"preset name: '{name}' is a built-in preset; choose another name"])
    path = user_dir() / f"{name}.yaml"
    if path.exists() and not overwrite:
        raise FileExistsError(f"preset '{name}' already exists at {path}; pass overwrite=True to replace it")
    atomic_write_text(path, config.to_yaml())
    return path
