"""The `torchtui` entry point: bare `torchtui [PRESET]` opens the app, `torchtui COMMAND` runs one headless.

Each command is a module in this package with `HELP`, `add_arguments(parser)` and `run(args) -> int`;
COMMANDS lists them in the order `torchtui -h` shows.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from torchtui.cli import output
from torchtui.cli.common import EXIT_INTERRUPTED, EXIT_RUN_FAILED, EXIT_USAGE, Parser, UsageError
from torchtui.engine.errors import UserError

COMMANDS = ("train", "resume", "runs", "sweep", "lr-find", "export", "predict", "ps", "attach", "stop", "rewind",
            "presets", "summary")


def command(name: str):
    return importlib.import_module(f"torchtui.cli.{name.replace('-', '_')}")  # lr-find is lr_find.py


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `only` that one (its arguments parse the same: each command's
    module, and what it imports, is loaded only when that command runs; `torchtui -h` lists them all)."""
    parser = Parser(prog="torchtui", description="Train PyTorch models from a terminal. "
                    "`torchtui [PRESET]` opens the app; the commands below run without it.")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for name in (only,) if only else COMMANDS:
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
    streams = output.guard()  # a closed or broken stdout/stderr never stops a run (cli/output.py)
    try:
        return dispatch(argv)
    finally:
        output.restore(streams)


def dispatch(argv: list[str]) -> int:
    json_mode = "--json" in argv
    try:
        if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
            misspelt(argv[0] if argv else "")
            return command("app").run(build_app_parser().parse_args(argv))
        args = build_parser(argv[0] if argv[0] in COMMANDS else None).parse_args(argv)
        return command(args.command).run(args)
    except (UserError, FileExistsError) as err:  # what the user or the machine caused: one line, exit 2
        from torchtui.engine.schema import ConfigError  # not at start-up: attach's first frame does without it

        # A ConfigError's first problem (and how many more); others whole: a data error lists its bad cells.
        message = err.first_line if isinstance(err, ConfigError) else str(err)
        print(f"torchtui: error: {message}", file=sys.stderr)
        if json_mode:  # a script reading the last stdout line learns why nothing ran
            from torchtui.engine.runs import dumps

            print(dumps({"state": "rejected", "error": message}))
        return EXIT_USAGE
    except KeyboardInterrupt:  # a command without a Ctrl-C handler of its own: one line, not a traceback
        print("torchtui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the last resort: one line, the traceback in a log
        return internal_error(err)


def misspelt(word: str) -> None:
    """Refuse `torchtui trian moons` as a misspelt command, not as the preset `trian` with a stray argument."""
    import difflib

    from torchtui.engine import presets
    from torchtui.engine.schema import ConfigError

    if not word or word.startswith("-"):
        return
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.7)
    if not close:
        return
    try:
        presets.find(word)  # a preset (or file) of that name: the app opens it
    except ConfigError:
        raise UsageError(f"unknown command '{word}' — did you mean '{close[0]}'?") from None


def internal_error(err: BaseException) -> int:
    """An exception nothing else caught: one line on stderr, the traceback appended to errors.log."""
    import os
    import time
    import traceback
    from pathlib import Path

    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    log = Path(base) / "torchtui" / "errors.log"
    where = "no log could be written"
    try:
        if log.is_absolute():  # no HOME and no passwd entry: expanduser gives "~", not a folder of the user's
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a", encoding="utf-8", errors="replace") as fh:
                fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} torchtui {' '.join(sys.argv[1:])[:500]}\n")
                fh.write("".join(traceback.format_exception(err)))
            where = f"details in {log}"
    except Exception:  # noqa: BLE001 - the handler of last resort must still print its line
        pass
    message = str(err).splitlines()[0][:200] if str(err) else ""
    print(f"torchtui: internal error: {type(err).__name__}: {message} ({where})", file=sys.stderr)
    return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
