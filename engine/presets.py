"""Presets: find by path, user folder or built-in name; load through yaml.safe_load; save atomically."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from torchtui.engine.files import atomic_write_text, not_a_file
from torchtui.engine.schema import MAX_VALUES, ConfigError, excerpt, suggest, too_many_values

if TYPE_CHECKING:  # yaml and the config are imported when a preset is read: the app paints before it reads one
    from torchtui.engine.config import ExperimentConfig

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


_WARNED: set = set()


def _named(folder: Path) -> dict[str, Path]:
    try:
        if not folder.is_dir():
            return {}
        return {f.stem: f for f in sorted(folder.glob("*.yaml"))}
    except OSError as err:  # an unreadable user folder: the built-ins still work; say so once
        if str(folder) not in _WARNED:
            _WARNED.add(str(folder))
            print(f"torchtui: warning: cannot read the presets in {folder} ({err.strerror or err}); "
                  "showing the built-in ones", file=sys.stderr)
        return {}


def find(ref: str) -> tuple[Path, bool]:
    """(path, is_builtin) for a file path, else a user preset name, else a built-in name."""
    path = Path(ref).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in ref or path.is_file():
        if path.is_file():
            return path, False
        raise ConfigError([f"preset: {not_a_file(path, excerpt(ref))}"])
    user, builtin = _named(user_dir()), _named(builtin_dir())
    if ref in user:
        return user[ref], False
    if ref in builtin:
        return builtin[ref], True
    names = sorted(set(user) | set(builtin))
    raise ConfigError([f"preset: no preset named '{ref}' ({suggest(ref, names)})"])


def read_yaml(path: Path) -> dict:
    """A preset file's mapping; any problem (size, syntax, shape) is a ConfigError naming the file."""
    return read_yaml_lines(path)[0]


def read_yaml_lines(path: Path) -> tuple[dict, Callable[[str], int | None]]:
    """The mapping, and a function giving the file line of a dotted path (`train.lr`, `model.layers[1]`)."""
    import yaml
    try:
        size = path.stat().st_size
        if size > MAX_PRESET_BYTES:
            raise ConfigError([f"{path}: {size:,} bytes is far too large for a preset (limit {MAX_PRESET_BYTES:,})"])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not a text file (presets are UTF-8 YAML)"]) from None
    except OSError as err:
        raise ConfigError([f"{path}: cannot read ({err.strerror})"]) from None
    if "\x00" in text:
        raise ConfigError([f"{path}: not a text file (it holds NUL bytes; presets are UTF-8 YAML)"])
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{mark.line + 1}:" if mark else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError([f"{path}:{where} invalid YAML ({what})"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: invalid YAML (nested too deep)"]) from None
    except ValueError as err:  # int('9' * 5000): Python's limit on digits
        raise ConfigError([f"{path}: a number with too many digits ({str(err)[:60]}…)"]) from None
    finally:
        loader.dispose()
    if data is None:
        return {}, lambda _: None
    if not isinstance(data, dict):
        line = f"{node.start_mark.line + 1}:" if node is not None else ""
        raise ConfigError([f"{path}:{line} a preset must be a mapping of sections (data, model, train, device), "
                           f"got {type(data).__name__}"])
    if too_many_values(data):
        raise ConfigError([f"{path}: more than {MAX_VALUES:,} values once YAML aliases are expanded; "
                           "a preset needs a few dozen"])
    twice = _duplicate_key(node)
    if twice:  # YAML would silently keep the last one
        dotted, first, second = twice
        raise ConfigError([f"{path}:{second}: {dotted}: appears twice (lines {first} and {second}); keep one"])
    return data, lambda dotted: _line_of(node, dotted)


def _duplicate_key(root) -> tuple[str, int, int] | None:
    """(dotted key, first line, second line) of the first key given twice in one mapping, else None."""
    import yaml
    stack, seen = [(root, "")], set()
    while stack:
        node, prefix = stack.pop()
        if id(node) in seen:  # an alias: already checked
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key, value in node.value:
                name = str(getattr(key, "value", ""))
                dotted = f"{prefix}.{name}" if prefix else name
                if name in lines:
                    return dotted, lines[name], key.start_mark.line + 1
                lines[name] = key.start_mark.line + 1
                stack.append((value, dotted))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{prefix}[{i}]") for i, item in enumerate(node.value))
    return None




def _line_of(node, dotted: str) -> int | None:
    """The 1-based line where the value (or key) at `dotted` sits in the composed YAML, else None."""
    import yaml
    if dotted.startswith("sweep.params.") and isinstance(node, yaml.MappingNode):
        # Sweep params are keyed by dotted field names themselves (`train.lr:`).
        params = _line_of_node(node, ["sweep", "params"])
        field = dotted[len("sweep.params."):]
        if isinstance(params, yaml.MappingNode):
            for k, _ in params.value:
                if getattr(k, "value", None) == field:
                    return k.start_mark.line + 1
    line = None
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", dotted):
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and part.startswith("["):
            index = int(part[1:-1])
            if index >= len(node.value):
                return line
            node = node.value[index]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _line_of_node(node, keys: list[str]):
    import yaml
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
    return node


# Fields that name files; a relative one in a preset file means relative to that file.
PATH_FIELDS = (("data", "path"), ("data", "tokenizer"), ("model", "module"), ("model", "pretrained"))
NOT_PATHS = {("data", "tokenizer"): ("char", "bytes", "bpe")}  # values of a path field that name no file


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
        if value.startswith("@") or value in NOT_PATHS.get((section, key), ()):  # @stdlib, tokenizer: char
            continue
        file, colon, name = value.rpartition(":") if _is_code_field(section, key, part) else ("", "", "")
        if not colon:  # no :name part (or not a code field): the whole value is the path
            file, name = value, ""
        target = Path(file).expanduser()
        if not target.is_absolute():
            out[section] = {**part, key: str(base / target) + colon + name}
    return out


def _is_code_field(section: str, key: str, part: dict) -> bool:
    return (section, key) == ("model", "module") or (section == "data" and part.get("source") == "code")


def load_located(ref: str, overrides: list[str] | None, labels: dict[str, str] | None = None
                 ) -> tuple[Path, dict, Callable[[str], int | str | None]]:
    """Find and read a preset, resolve its relative paths and apply `--set` overrides (not yet validated);
    with a function giving where a dotted path's value came from: its file line, or for a value given on
    the command line the option that gave it ("--set", or `labels`' name for it, e.g. "--epochs")."""
    from torchtui.engine.overrides import apply_overrides
    path, _ = find(ref)
    data, line_of = read_yaml_lines(path)
    data = apply_overrides(resolve_paths(data, path.parent.resolve()), overrides or [])
    given = {o.partition("=")[0].strip() for o in overrides or []}
    labels = labels or {}
    return path, data, lambda dotted: (labels.get(dotted, "--set") if dotted in given else line_of(dotted))


def load(ref: str, overrides: list[str] | None = None, labels: dict[str, str] | None = None) -> ExperimentConfig:
    """Find, read and validate a preset, applying `--set` overrides; errors name the file, line and field
    (or the option that gave the value).

    A sweep preset (one with a `sweep:` section) is refused: `torchtui sweep` runs it."""
    config, sweep, path, line_of = load_with_sweep(ref, overrides, labels)
    if sweep is not None:
        raise ConfigError([f"{path}:{line_of('sweep') if isinstance(line_of('sweep'), int) else ''}: "
                           "sweep: this preset is a sweep; run it with "
                           f"`torchtui sweep {ref}`, or remove the section to train its setup once"
                           .replace("::", ":")])
    return config


def load_with_sweep(ref: str, overrides: list[str] | None = None, labels: dict[str, str] | None = None
                    ) -> tuple[ExperimentConfig, dict | None, Path, Callable[[str], int | str | None]]:
    """(the validated setup, the raw `sweep:` section or None, the file, its line finder)."""
    from torchtui.engine.config import from_dict
    path, data, line_of = load_located(ref, overrides, labels)
    sweep = data.pop("sweep", None) if isinstance(data, dict) else None
    try:
        return from_dict(data), sweep, path, line_of
    except ConfigError as err:
        raise located(err, path, line_of) from None


def located(err: ConfigError, path: Path, line_of: Callable[[str], int | None]) -> ConfigError:
    """The problems prefixed with `file:line:` (or `file:` where the line is unknown, e.g. from --set)."""
    out = []
    for problem in err.problems:
        line = line_of(problem.split(": ", 1)[0].split(" ")[0])
        if line == "--set":  # the user's own value: no line of the file to point at
            out.append(f"--set {problem}")
        elif isinstance(line, str):  # an option such as --epochs
            out.append(f"{line}: {problem.split(': ', 1)[-1]}")
        else:
            out.append(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")
    return ConfigError(out, err.details)


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
    import yaml
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ConfigError([f"preset name: '{name}' is not usable as a file name (letters, digits, - and _)"])
    if name in _named(builtin_dir()):
        raise ConfigError([f"preset name: '{name}' is a built-in preset; choose another name"])
    path = user_dir() / f"{name}.yaml"
    if path.exists() and not overwrite:
        raise FileExistsError(f"preset '{name}' already exists at {path}; pass overwrite=True to replace it")
    atomic_write_text(path, yaml.safe_dump(minimal(config), sort_keys=False, allow_unicode=True))
    return path


def minimal(config: ExperimentConfig) -> dict:
    """The config as a preset holds it: schema, name and description, then only the fields that differ
    from the defaults (a list whole), so a saved preset reads as what was chosen, not a 180-line dump."""
    from torchtui.engine.config import ExperimentConfig

    def differing(value, default):
        if isinstance(value, dict) and isinstance(default, dict):
            out = {k: d for k, v in value.items() if (d := differing(v, default.get(k, _ABSENT))) is not _ABSENT}
            return out or _ABSENT
        return _ABSENT if value == default else value

    plain, defaults = config.to_dict(), ExperimentConfig().to_dict()
    head = {k: plain[k] for k in ("schema", "name", "description")}
    rest = {k: plain[k] for k in plain if k not in head}
    body = differing(rest, {k: defaults[k] for k in rest})
    return {**head, **(body if body is not _ABSENT else {})}


_ABSENT = object()
