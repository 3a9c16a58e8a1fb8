"""`torchtui attach [RUN]`: open the app on a live run (the newest when none is named), its history drawn."""

from __future__ import annotations

import sys

from torchtui.cli.app import open_app
from torchtui.cli.common import UsageError

HELP = "open the app on a live run (the newest when omitted; a prefix of the run id is enough)"


def add_arguments(parser) -> None:
    parser.add_argument("run", nargs="?", help="run id, a prefix of one, or a server pid (see `torchtui ps`)")


def run(args) -> int:
    from torchtui.engine import live

    try:
        info = live.find(args.run)
    except live.LiveRunError as err:
        raise UsageError(f"torchtui attach: {ended_run(args.run) or err}") from None
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("attach opens the app, which needs a terminal (see `torchtui ps` for a plain list)")

    def load():
        """The run's setup, read once the first frame is on screen (its own RunStarted brings it anyway)."""
        from torchtui.engine import presets
        from torchtui.engine.config import from_dict

        if info.run_dir:
            try:
                return from_dict(presets.read_yaml(f"{info.run_dir}/config.yaml")), {}, ()
            except Exception:  # noqa: BLE001 - the run's own RunStarted brings its config anyway
                pass
        return presets.load("moons"), {}, ()

    def connect():
        from torchtui.engine.host import ServerHost

        host = ServerHost(info)  # the server sends the run's History now
        # What the charts draw with, loaded while the main thread loads Textual (plotext imports nothing of
        # Textual's, so neither import waits on the other's locks).
        import plotext  # noqa: F401

        from torchtui.engine import history  # noqa: F401 - and what the History is applied to
        return host

    from torchtui.tui.bridge import EngineBridge

    bridge = EngineBridge(connect, attaching=True)
    bridge.start_soon()  # the run's History comes while the app loads
    from torchtui.tui.app import TorchTUI

    return open_app(TorchTUI(load, bridge), bridge)


def ended_run(ref: str | None) -> str:
    """What to say when `ref` names a run folder under the runs folder whose server is gone, else ""."""
    import json

    from torchtui.engine.runs import default_runs_dir

    if not ref:
        return ""
    for folder in sorted(default_runs_dir().glob(f"{ref}*")):
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
        state = summary.get("state", "ended")
        return (f"run {folder.name} has {state if state != 'ended' else 'no live server'} (its files: {folder}); "
                f"continue it with `torchtui resume {folder} --epochs N` (N past {summary.get('epochs', '?')})")
    return ""
