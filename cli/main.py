"""The `torchtui` entry point: bare `torchtui [PRESET]` opens the app, `torchtui COMMAND` runs one headless.

Each command is a module in this package with `HELP`, `add_arguments(parser)` and `run(args) -> int`;
COMMANDS lists them in the order `torchtui -h` shows.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from torchtui.cli.common import EXIT_USAGE, Parser, UsageError
from torchtui.engine.schema import ConfigError

COMMANDS = ("train", "resume", "runs", "sweep", "ps", "attach", "stop", "presets", "summary")


def command(name: str):
    return importlib.import_module(f"torchtui.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="torchtui", description="Train PyTorch models from a terminal. "
                    "`torchtui [PRESET]` opens the app; the commands below run without it.")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for name in COMMANDS:
        module = command(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    return parser


def build_app_parser() -> argparse.ArgumentParser:
    app = command("app")
    parser = Parser(prog="torchtui", description=f"{app.HELP}. "
                    f"Other commands: {', '.join(COMMANDS)} (torchtui COMMAND -h).")
    app.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
            return command("app").run(build_app_parser().parse_args(argv))
        args = build_parser().parse_args(argv)
        return command(args.command).run(args)
    except (UsageError, ConfigError) as err:
        message = err.first_line if isinstance(err, ConfigError) else str(err)
        print(f"torchtui: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except FileExistsError as err:
        print(f"torchtui: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
