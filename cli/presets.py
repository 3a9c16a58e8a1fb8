"""`torchtui presets [list|show NAME]`: the presets there are (built-in and user), or one preset's YAML."""

from __future__ import annotations

from torchtui.cli.common import EXIT_OK, UsageError
from torchtui.engine import presets

HELP = "list presets, or show one"


def add_arguments(parser) -> None:
    parser.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    parser.add_argument("name", nargs="?", help="preset to show")


def run(args) -> int:
    if args.action == "show":
        if not args.name:
            raise UsageError("torchtui presets show: name a preset (see `torchtui presets`)")
        path, _ = presets.find(args.name)
        print(f"# {path}")
        print(path.read_text(encoding="utf-8"), end="")
        return EXIT_OK
    infos = presets.list_presets()
    width = max((len(i.name) for i in infos), default=4)
    for info in infos:
        where = "built-in" if info.builtin else "user"
        print(f"{info.name:<{width}}  {where:<8}  {info.description}")
    return EXIT_OK
