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
    from torchtui.engine.runs import default_runs_dir

    config = from_dict(start.config)
    # Absolute: `ps` and `attach` read the run folder from elsewhere
    start = dataclasses.replace(start, runs_dir=os.path.abspath(start.runs_dir or default_runs_dir()))
    ready = None
    if detach:
        ready = _detach(launch, start.runs_dir)
        if isinstance(ready, int):  # the launcher's process: the rank goes on in the background
            return ready
    try:
        if launch.rank != 0:
            launched.follower_signals()
            return _follower(start, launch, config, ready)
        return _leader(start, launch, config, json_mode, ready)
    except launched.LaunchError as err:
        if ready is not None:
            ready.say(f"torchtui: error: {err}")
        raise UsageError(str(err)) from None


class _Ready:
    """The detached rank's word to the process the launcher started (which returns once it has it)."""

    def __init__(self, fd: int):
        self.fd = fd

    def say(self, text: str) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, text.encode() + b"\n")
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = -1

    def on_event(self, event) -> None:
        from torchtui.engine import protocol as p

        if isinstance(event, p.RunStarted):  # every rank has joined and built its model: the job stands alone
            self.say("ok")


def _detach(launch, runs_dir: str):
    """--detach under a launcher: the rank goes on in a child of its own session (output to a log in the runs
    folder), and this process, the one the launcher watches, exits 0 once the run has started (rank 0 first
    says where it is), so that torchrun or srun return. Forked before torch is imported (one thread here)."""
    from torchtui.engine.run.worker import redirect_output

    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            said = pipe.read().decode(errors="replace").strip()
        if not said.startswith("ok"):
            print(said or f"torchtui: error: rank {launch.rank} ended before its run started (see "
                  f"{_log(runs_dir, launch.rank)})", file=sys.stderr, flush=True)
            return EXIT_RUN_FAILED
        if said != "ok":
            print(said[2:].strip(), flush=True)
        return EXIT_OK
    os.close(read)
    os.setsid()  # neither the terminal's hang-up nor the launcher's signals to its workers reach it
    os.makedirs(runs_dir, exist_ok=True)
    redirect_output(_log(runs_dir, launch.rank))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return _Ready(write)


def _log(runs_dir: str, rank: int) -> str:
    return os.path.join(runs_dir, f"launched-rank{rank}.log")


def _follower(start, launch, config, ready: _Ready | None) -> int:
    from torchtui.engine.run import launched
    from torchtui.engine.run.engine import Engine

    here = launched.join(launch, config)
    engine = Engine(ready.on_event if ready else lambda event: None, start.runs_dir)  # only rank 0 reports
    thread, result = launched.in_thread(launched.train, engine, start, here)
    thread.join()
    failure = result[0] if result else ("the rank's thread ended without a result", "")
    if failure is not None:
        print(f"torchtui: error: rank {launch.rank}: {failure[0]}", file=sys.stderr, flush=True)
        if ready is not None:
            ready.say(f"torchtui: error: rank {launch.rank}: {failure[0]}")
        os._exit(EXIT_RUN_FAILED)  # the launcher then ends the other ranks, which may wait for this one
    return EXIT_OK


def _leader(start, launch, config, json_mode: bool, ready: _Ready | None) -> int:
    from torchtui.cli.progress import Progress
    from torchtui.engine import protocol as p
    from torchtui.engine.run import launched
    from torchtui.engine.run.server import RunServer
    from torchtui.engine.runs import dumps

    detach = ready is not None
    here = launched.join(launch, config)
    events: queue.Queue = queue.Queue()
    server = RunServer(start.runs_dir, also=events.put)
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
        _say_detached(host, server, progress, ready)
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


def _say_detached(host, server, progress, ready: _Ready) -> None:
    """--detach under a launcher: tell the launcher's process where the run is and how to reach it (it prints
    that and returns), or why it did not start."""
    from torchtui.engine import protocol as p

    seen: list = []
    event = host.wait_for(lambda e: isinstance(e, (p.RunStarted, p.Error)), timeout=600, seen=seen)
    for early in seen:
        progress.handle(early)  # what the follow that comes next would have seen (a refusal's words)
    if isinstance(event, p.RunStarted):
        ready.say(f"ok {event.run_id} running in the background (rank 0, pid {server.info.pid}) -> {event.run_dir}"
                  f"\nwatch and steer it on this node: torchtui attach {event.run_id}   list: torchtui ps   stop: "
                  f"torchtui stop {event.run_id}")
    else:
        ready.say(f"torchtui: error: {event.message}")
