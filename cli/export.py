"""`torchtui export RUN_DIR|PRESET`: the experiment as one plain PyTorch script that needs no torchtui."""

from __future__ import annotations

import sys
from pathlib import Path

from torchtui.cli.common import EXIT_OK, UsageError, add_run_options, overrides_of

HELP = "write a run or preset as one standalone PyTorch training script (live changes replayed)"


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="RUN_DIR|PRESET",
                        help="a run folder (its config.yaml and recorded live changes), or a preset name or file")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="where to write the script (default: NAME.py in this folder; - for stdout)")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    add_run_options(parser)


def run(args) -> int:
    from torchtui.engine.export import export
    from torchtui.engine.files import atomic_write_text

    overrides = overrides_of(args)
    if overrides and Path(args.source).expanduser().is_dir():
        raise UsageError("export RUN_DIR: --set, --device and --epochs would change what the run did; export "
                         f"the run as it was, or export {Path(args.source) / 'config.yaml'} as a preset with them")
    result = export(args.source, overrides)
    if args.output == "-":
        sys.stdout.write(result.script)
        return EXIT_OK
    target = Path(args.output or result.name).expanduser()
    if target.is_dir():
        target = target / result.name
    if target.exists() and not args.force:
        raise UsageError(f"export: {target} exists (use --force to replace it, or -o another file)")
    if target.suffix != ".py":
        raise UsageError(f"export -o: {target} should end in .py (the weights are saved beside it with .pt)")
    atomic_write_text(target, result.script)
    replayed = f", {len(result.changes)} live change(s) replayed" if result.changes else ""
    print(f"wrote {target}{replayed}; run it with: python {target}")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK
