"""`torchtui train PRESET`: one run headless in this process, with a progress line and an optional JSON summary."""

from __future__ import annotations

import signal
import sys

from torchtui.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    UsageError,
    add_json,
    add_run_options,
    add_runs_dir,
    load_config,
)
from torchtui.engine.runs import dumps

HELP = "train a preset or YAML file headless"


def add_arguments(parser) -> None:
    parser.add_argument("preset", help="preset name or path to a YAML file")
    add_run_options(parser)
    add_runs_dir(parser)
    add_json(parser)
    parser.add_argument("--detach", action="store_true",
                        help="run in a server of its own that outlives this terminal; print its id and return")


def run(args) -> int:
    from torchtui.engine import protocol as p

    start = p.Start(config=load_config(args).to_dict(), runs_dir=args.runs_dir, origin={"preset": args.preset})
    launch = launched_job()
    if launch is not None:  # one process of a torchrun or SLURM job: every process trains one rank of the run
        from torchtui.cli.launched import train

        return train(start, launch, args.json, args.detach)
    if args.detach:
        return detach(start)
    return follow(start, args.runs_dir, args.json)


def launched_job():
    """This process's place in a torchrun or SLURM job (engine/run/launched.py), None when it runs alone."""
    from torchtui.engine.run.launched import LaunchError, launch_env

    try:
        return launch_env()
    except LaunchError as err:
        raise UsageError(str(err)) from None


def follow(start, runs_dir: str | None, json_mode: bool) -> int:
    """Send `start` to an engine in this process and show the run until it ends; returns the exit code."""
    from torchtui.cli.progress import Progress
    from torchtui.engine import protocol as p
    from torchtui.engine.host import InProcessHost

    progress = Progress(sys.stdout, json_mode=json_mode)
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
    if summary is None:  # the run never started: its data, model or setup was refused
        raise UsageError(progress.refused.strip() or "the engine did not start the run")
    if json_mode:
        print(dumps(summary))
    if summary["state"] == p.FINISHED:
        return EXIT_OK
    if summary["state"] == p.STOPPED:
        return EXIT_INTERRUPTED if interrupts else EXIT_OK
    return EXIT_RUN_FAILED


def _stop_signals():
    return [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]


def detach(start) -> int:
    """Start a run server, start the run in it, print how to reach it, and leave it running."""
    from torchtui.engine import protocol as p
    from torchtui.engine.host import ServerHost

    host = ServerHost.start(start.runs_dir)
    try:
        host.send(start)
        seen: list = []
        try:
            event = host.wait_for(lambda e: isinstance(e, (p.RunStarted, p.Error)), timeout=host.CONNECT_S, seen=seen)
        except TimeoutError:
            print(f"torchtui: error: the run server did not start the run (see {host.log_path})", file=sys.stderr)
            host.close()
            return EXIT_RUN_FAILED
        if isinstance(event, p.Error):
            host.close()
            raise UsageError(event.message)
        print(f"{event.run_id} running in the background (server pid {host.info.pid}) -> {event.run_dir}")
        print(f"watch and steer it: torchtui attach {event.run_id}   list: torchtui ps   stop: torchtui stop "
              f"{event.run_id}")
    finally:
        host.detach()
    return EXIT_OK
