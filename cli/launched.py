"""`torchtui train` as one process of a torchrun or SLURM job: rank 0 shows the run and serves it on its node.

Every process trains its rank (engine/run/launched.py). Rank 0 prints the progress line as a run in this
process does, and serves the run over its Unix socket (a RunServer without a process of its own), so
`torchtui ps`, `attach` and `stop` on its node reach the run, and through rank 0 every rank. Ctrl-C, SIGTERM
or a hang-up reaching rank 0 stop the run at the next sync point (last.pt saved); the other ranks leave
those signals to rank 0, so that no rank ends alone while the others wait for it in a collective.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import sys

from torchtui.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED, UsageError
from torchtui.engine.host import EngineHost


class _RankHost(EngineHost):
    """Rank 0's engine, seen as a host: its events (also served to the socket's clients), its inbox."""

    def __init__(self, events: queue.Queue, engine):
        super().__init__()
        self.events, self.engine = events, engine

    def send(self, command) -> None:
        self.engine.send(command)

    def close(self, timeout: float = 10.0) -> None:
        return None


def train(start, launch, json_mode: bool, detach: bool) -> int:
    """Train `start` as this process's rank of the job; returns the exit code (rank 0: the run's outcome)."""
    from torchtui.engine.config import from_dict
    from torchtui.engine.run import launched

    config = from_dict(start.config)
    try:
        if launch.rank != 0:
            launched.follower_signals()
            return _follower(start, launch, config)
        return _leader(start, launch, config, json_mode, detach)
    except launched.LaunchError as err:
        raise UsageError(str(err)) from None


def _follower(start, launch, config) -> int:
    from torchtui.engine.run import launched
    from torchtui.engine.run.engine import Engine

    here = launched.join(launch, config)
    engine = Engine(lambda event: None, start.runs_dir)  # only rank 0 reports
    thread, result = launched.in_thread(launched.train, engine, start, here)
    thread.join()
    failure = result[0] if result else ("the rank's thread ended without a result", "")
    if failure is not None:
        print(f"torchtui: error: rank {launch.rank}: {failure[0]}", file=sys.stderr, flush=True)
        os._exit(EXIT_RUN_FAILED)  # the launcher then ends the other ranks, which may wait for this one
    return EXIT_OK


def _leader(start, launch, config, json_mode: bool, detach: bool) -> int:
    from torchtui.cli.progress import Progress
    from torchtui.engine import protocol as p
    from torchtui.engine.run import launched
    from torchtui.engine.run.server import RunServer
    from torchtui.engine.runs import default_runs_dir, dumps

    here = launched.join(launch, config)
    runs_dir = os.path.abspath(start.runs_dir or default_runs_dir())  # `ps` and `attach` read it from elsewhere
    start = dataclasses.replace(start, runs_dir=runs_dir)
    events: queue.Queue = queue.Queue()
    server = RunServer(runs_dir, also=events.put)
    server.open()
    host = _RankHost(events, server.engine)
    progress = Progress(open(os.devnull, "w") if detach else sys.stdout, json_mode=json_mode and not detach)
    interrupts: list = []

    def on_signal(signum, frame):
        interrupts.append(signum)
        if signum == signal.SIGINT and len(interrupts) > 1:
            os._exit(EXIT_INTERRUPTED)  # a second Ctrl-C: now (the launcher ends the others)
        if not detach:
            progress.note("stopping every rank at the next sync point and saving last.pt (Ctrl-C again to quit now)")
        host.send(p.Stop())

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and not (detach and sig != signal.SIGTERM):
            signal.signal(sig, on_signal)
        elif sig is not None:
            signal.signal(sig, signal.SIG_IGN)  # detached: the terminal's Ctrl-C and hang-up do not stop it
    thread, result = launched.in_thread(launched.train, server.engine, start, here)
    if detach:
        _say_detached(host, server, progress)
    try:
        summary = progress.follow(host)
    finally:
        thread.join()
        server.close()
    failure = result[0] if result else None
    if summary is None:
        raise UsageError(progress.refused.strip() or (failure[0] if failure else "the run did not start"))
    if json_mode:
        print(dumps(summary), flush=True)
    if failure is not None:
        sys.stdout.flush()
        os._exit(EXIT_RUN_FAILED)
    if summary["state"] == p.FINISHED:
        return EXIT_OK
    if summary["state"] == p.STOPPED:
        return EXIT_INTERRUPTED if interrupts and not detach else EXIT_OK
    return EXIT_RUN_FAILED


def _say_detached(host, server, progress) -> None:
    """--detach under a launcher: say where the run is and how to reach it, then print nothing more."""
    from torchtui.engine import protocol as p

    seen: list = []
    event = host.wait_for(lambda e: isinstance(e, (p.RunStarted, p.Error)), timeout=600, seen=seen)
    for early in seen:
        progress.handle(early)  # what the follow that comes next would have seen (a refusal's words)
    if isinstance(event, p.RunStarted):
        print(f"{event.run_id} running (rank 0, pid {server.info.pid}) -> {event.run_dir}", flush=True)
        print(f"watch and steer it on this node: torchtui attach {event.run_id}   list: torchtui ps   stop: "
              f"torchtui stop {event.run_id}", flush=True)
