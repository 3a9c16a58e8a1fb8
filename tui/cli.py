"""The `torchtui` command: the app (bare `torchtui [PRESET]`), headless train/resume, presets and summary."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from torchtui.engine import presets
from torchtui.engine.runs import dumps
from torchtui.engine.config import from_dict
from torchtui.engine.overrides import apply_overrides
from torchtui.engine.schema import ConfigError

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad arguments or config: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors also exit 2 with one line
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="torchtui", description="Train PyTorch models from a terminal. "
                    "`torchtui [PRESET]` opens the app; the commands below run without it.")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    def run_options(cmd):
        cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config value, e.g. --set train.lr=0.01 (repeatable)")
        cmd.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (same as --set device.device=...)")
        cmd.add_argument("--epochs", type=int, help="number of epochs (same as --set train.epochs=N)")

    train = sub.add_parser("train", help="train a preset or YAML file headless")
    train.add_argument("preset", help="preset name or path to a YAML file")
    run_options(train)
    train.add_argument("--runs-dir", help="where run folders go (default: $TORCHTUI_RUNS_DIR or ./runs)")
    train.add_argument("--json", action="store_true", help="print one JSON summary as the last line of stdout")

    resume = sub.add_parser("resume", help="continue a stopped or killed run from its last.pt")
    resume.add_argument("run_dir", help="the run folder (runs/<time>-<name>)")
    resume.add_argument("--epochs", type=int, help="train up to this many epochs in total")
    resume.add_argument("--json", action="store_true", help="print one JSON summary as the last line of stdout")

    pre = sub.add_parser("presets", help="list presets, or show one")
    pre.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    pre.add_argument("name", nargs="?", help="preset to show")

    summary = sub.add_parser("summary", help="print the model summary of a preset")
    summary.add_argument("preset", help="preset name or path to a YAML file")
    run_options(summary)
    return parser


SUBCOMMANDS = ("train", "resume", "presets", "summary")


def build_app_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="torchtui", description="Open the app on a preset (default: moons). "
                    f"Other commands: {', '.join(SUBCOMMANDS)} (torchtui COMMAND -h).")
    parser.add_argument("preset", nargs="?", default="moons", help="preset name or path to a YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=0.01 (repeatable)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--runs-dir", help="where run folders go (default: $TORCHTUI_RUNS_DIR or ./runs)")
    return parser


def cmd_app(args) -> int:
    """Open the Textual app; the engine runs in a worker process that imports torch while the UI paints."""
    from torchtui.engine.config import from_dict as build

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the app needs a terminal; for scripts use `torchtui train PRESET` "
                         "(see torchtui -h)")
    config = build(load_config(args))
    from .app import TorchTUI
    from .bridge import EngineBridge, prepare_spawn
    from torchtui.engine.host import WorkerHost

    prepare_spawn()
    # Spawned once the app has painted: the worker's torch import would otherwise take CPU from it.
    bridge = EngineBridge(lambda: WorkerHost(args.runs_dir))
    try:
        TorchTUI(config, bridge, runs_dir=args.runs_dir).run()
    finally:
        bridge.close()
    return EXIT_OK


def load_config(args) -> dict:
    """The validated config (as a plain dict) from a preset plus --set, --device and --epochs."""
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device.device={args.device}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    path, data, line_of = presets.load_located(args.preset, overrides)
    try:
        return from_dict(data).to_dict()
    except ConfigError as err:
        raise presets.located(err, path, line_of) from None


def cmd_presets(args) -> int:
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


def cmd_summary(args) -> int:
    from torchtui.engine import protocol as p
    from torchtui.engine.requests import describe_model

    reply = describe_model(p.DescribeModel(config=load_config(args)))
    if reply.error:
        raise ConfigError([reply.error])
    print(reply.text)
    return EXIT_OK


def cmd_train(args, resume: str | None = None) -> int:
    from torchtui.engine import protocol as p
    from torchtui.engine.host import InProcessHost

    from .progress import Progress

    if resume:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise UsageError(f"torchtui resume: {run_dir} is not a run folder (no config.yaml)")
        config = {}
        if args.epochs is not None:
            data = apply_overrides(presets.read_yaml(run_dir / "config.yaml"), [f"train.epochs={args.epochs}"])
            config = from_dict(data).to_dict()
        start = p.Start(config=config, resume=str(run_dir))
        runs_dir = None
    else:
        start = p.Start(config=load_config(args), runs_dir=args.runs_dir)
        runs_dir = args.runs_dir
    progress = Progress(sys.stdout, json_mode=args.json)
    host = InProcessHost(runs_dir)
    interrupts = []

    def on_interrupt(signum, frame):
        interrupts.append(signum)
        if len(interrupts) > 1:
            raise SystemExit(EXIT_INTERRUPTED)  # a second Ctrl-C exits at once
        progress.note("stopping after this step and saving last.pt (Ctrl-C again to quit now)")
        host.send(p.Stop())

    old = {s: signal.signal(s, on_interrupt) for s in _stop_signals()}
    try:
        host.send(start)
        summary = progress.follow(host)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        host.close()
    if summary is None:
        return EXIT_USAGE  # the run never started: the config was rejected (already printed)
    if args.json:
        print(dumps(summary))
    if summary["state"] == p.FINISHED:
        return EXIT_OK
    if summary["state"] == p.STOPPED:
        return EXIT_INTERRUPTED if interrupts else EXIT_OK
    return EXIT_RUN_FAILED


def _stop_signals():
    return [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
            return cmd_app(build_app_parser().parse_args(argv))
        args = parser.parse_args(argv)
        if args.command == "presets":
            return cmd_presets(args)
        if args.command == "summary":
            return cmd_summary(args)
        if args.command == "resume":
            return cmd_train(args, resume=args.run_dir)
        return cmd_train(args)
    except (UsageError, ConfigError) as err:
        message = err.first_line if isinstance(err, ConfigError) else str(err)
        print(f"torchtui: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except FileExistsError as err:
        print(f"torchtui: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
