"""`torchtui [PRESET]`: open the Textual app on a preset; the engine runs in a worker process."""

from __future__ import annotations

import sys

from torchtui.cli.common import EXIT_OK, UsageError, add_run_options, add_runs_dir, load_config

HELP = "Open the app on a preset (default: moons)"


def add_arguments(parser) -> None:
    parser.add_argument("preset", nargs="?", default="moons", help="preset name or path to a YAML file")
    add_run_options(parser)
    add_runs_dir(parser)


def run(args) -> int:
    """Open the Textual app; the engine's worker process imports torch while the UI paints."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the app needs a terminal; for scripts use `torchtui train PRESET` "
                         "(see torchtui -h)")
    config = load_config(args)
    from torchtui.engine.host import WorkerHost
    from torchtui.tui.app import TorchTUI
    from torchtui.tui.bridge import EngineBridge, prepare_spawn

    prepare_spawn()
    # Spawned once the app has painted: the worker's torch import would otherwise take CPU from it.
    bridge = EngineBridge(lambda: WorkerHost(args.runs_dir))
    try:
        TorchTUI(config, bridge, runs_dir=args.runs_dir).run()
    finally:
        bridge.close()
    return EXIT_OK
