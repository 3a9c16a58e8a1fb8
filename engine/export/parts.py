"""What each concern of an exported script contributes: its settings, its code and its imports."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from string import Template

from torchtui.engine.schema import ConfigError

MASK63 = (1 << 63) - 1  # torch generators take 63-bit seeds; the engine folds any int into them


@dataclass
class Part:
    """One section of the script: `settings` go to the config block at the top, `code` below it."""

    title: str
    code: str
    settings: list[tuple[str, object, str]] = field(default_factory=list)  # (name, value, comment)
    imports: set[str] = field(default_factory=set)  # whole lines: "import math", "from torch import nn"
    helpers: set[str] = field(default_factory=set)  # names in HELPERS the code calls (defined once, up front)


def fill(template: str, **values) -> str:
    """A dedented template with $names replaced (string.Template: no brace-doubling in the code)."""
    return Template(textwrap.dedent(template).strip("\n")).substitute(**values) + "\n"


def unsupported(field_name: str, value, fix: str) -> ConfigError:
    """The one error a config the exporter cannot replicate faithfully gets: field, value and the fix."""
    shown = repr(value) if not isinstance(value, str) else f"'{value}'"
    return ConfigError([f"{field_name}: export of {shown} is not supported yet ({fix})"])


def seed_expr(name: str, value: int, offset: str = "") -> str:
    """The expression seeding a generator: `name + offset`, folded to 63 bits only where that matters."""
    total = value + (int(offset, 0) if offset else 0)
    plain = f"{name} + {offset}" if offset else name
    return plain if 0 <= total <= MASK63 else f"({plain}) % 2**63"


# Functions more than one section may call; the script defines each it uses once, before the data.
HELPERS = {
    "load_from_file": ({"import importlib.util", "import sys", "from pathlib import Path"}, """
        def load_from_file(path, name):
            \"\"\"`name` from the Python file at `path`, imported by path (its folder joins sys.path for its imports).\"\"\"
            spec = importlib.util.spec_from_file_location(Path(path).stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            sys.path.insert(0, str(Path(path).parent))
            spec.loader.exec_module(module)
            return getattr(module, name)
        """),  # noqa: E501
}
