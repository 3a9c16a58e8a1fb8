"""`torchtui [PRESET]`: open the Textual app on a preset; the engine runs in a run server of its own session."""

from __future__ import annotations

import os
import sys

from torchtui.cli.common import EXIT_OK, OPTION_FIELDS, UsageError, add_run_options, add_runs_dir, overrides_of

HELP = "Open the app on a preset (default: moons)"


def add_arguments(parser) -> None:
    parser.add_argument("preset", nargs="?", default="moons", help="preset name or path to a YAML file")
    add_run_options(parser)
    add_runs_dir(parser)


def run(args) -> int:
    """Open the Textual app; its run server imports torch while the UI paints."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the app needs a terminal; for scripts use `torchtui train PRESET` "
                         "(see torchtui -h)")
    from torchtui.engine import live, presets

    live.runtime_dir()  # the run server's socket folder: a bad one is one line now, not a traceback in the app
    presets.find(args.preset)  # a preset that does not exist: one line now, before the screen is taken
    overrides = overrides_of(args)

    def load():
        """The preset, read once the app's first frame is on screen (yaml, the config and its checks are most
        of what start-up imports); a bad one ends the app and is printed as one line (exit 2)."""
        from torchtui.tui.controllers.presets import steerable

        config, sweep_section, _, _ = presets.load_with_sweep(args.preset, overrides, OPTION_FIELDS)
        given = any(o.startswith("train.epochs=") for o in overrides)  # --epochs N or --set train.epochs=N
        config, note = steerable(config, args.preset, epochs_given=given)
        # preset_ref is recorded in each run's origin.json; a sweep preset: S runs its sweep
        return config, {"preset_ref": args.preset, "sweep_section": sweep_section}, (note,) if note else ()

    from torchtui.tui.app import TorchTUI
    from torchtui.tui.bridge import EngineBridge

    def start_server():
        from torchtui.engine.host import ServerHost  # after the first paint, like the server itself

        return ServerHost.start(args.runs_dir)

    # The engine runs in a server of its own session, so a run outlives this terminal when the app detaches
    # (d, or a dropped connection). Started once the app has painted: its torch import would take CPU first.
    bridge = EngineBridge(start_server)
    app = TorchTUI(load, bridge, runs_dir=args.runs_dir)
    return open_app(app, bridge)


def open_app(app, bridge) -> int:
    """Run the app; let go of the engine after it; print what the app left to say (where a detached run is)."""
    from torchtui.tui.driver import quit_fast_driver

    def finish() -> None:
        """A clean exit restored the terminal: the rest of this process's life is teardown nobody needs."""
        try:
            bridge.close()
            if app.farewell:
                print(app.farewell, file=sys.__stdout__)
            sys.__stdout__.flush()
            sys.__stderr__.flush()
        finally:
            os._exit(EXIT_OK)

    app.driver_class = quit_fast_driver(finish) or app.driver_class
    try:
        app.run()
    finally:
        bridge.close()
    if app.load_error is not None:
        raise app.load_error
    if app.farewell:
        print(app.farewell)
    return EXIT_OK
