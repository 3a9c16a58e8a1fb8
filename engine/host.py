"""Engine hosts, the client side: the engine thread in this process, or a spawn worker process behind a pipe.

Both give clients the same small interface (`send`, `get`, `drain`, `wait_for`, `close`). This module
imports no torch, so a UI process can host the engine in a worker without ever loading torch itself.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from typing import Callable

from torchtui.engine import protocol as p
from torchtui.engine.run.worker import worker_main
from torchtui.engine.runs import default_runs_dir


class EngineHost:
    """Common client side: events arrive in a queue; helpers wait for them with a deadline."""

    def __init__(self):
        self.events: queue.Queue = queue.Queue()

    def send(self, command) -> None:
        raise NotImplementedError

    def get(self, timeout: float | None = None):
        """The next event, or None if none came within `timeout` seconds."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list:
        """Every event waiting now, without blocking."""
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def wait_for(self, predicate: Callable[[object], bool], timeout: float = 30.0, seen: list | None = None):
        """Events until one matches `predicate` (returned); every event is also appended to `seen`.

        Raises TimeoutError at the deadline, so a test never waits forever or sleeps blindly.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching engine event within {timeout} s")
            event = self.get(timeout=left)
            if event is None:
                continue
            if seen is not None:
                seen.append(event)
            if predicate(event):
                return event

    def close(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcessHost(EngineHost):
    """The engine thread in this process (the headless CLI and tests)."""

    def __init__(self, runs_dir: str | None = None):
        super().__init__()
        from torchtui.engine.run.engine import Engine

        self.engine = Engine(self.events.put, runs_dir).start()

    def send(self, command) -> None:
        self.engine.send(command)

    def close(self, timeout: float = 10.0) -> None:
        self.engine.send(p.Shutdown())
        self.engine.join(timeout)


class WorkerHost(EngineHost):
    """The engine thread in a spawn child process; commands and events cross a pipe.

    Training then never competes with the client's Python code for the GIL, torch stays out of the
    client process, and a crash in CUDA or user code cannot take the client down.
    """

    def __init__(self, runs_dir: str | None = None, threads: int | None = None, log_path: str | None = None):
        super().__init__()
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        if threads is None:  # leave a core to the client; two torch threads on two cores oversubscribe
            threads = max(1, (os.cpu_count() or 2) - 1)
        if log_path is None:
            log_path = os.path.join(runs_dir or default_runs_dir(), "engine-worker.log")
        self.log_path = log_path
        self.process = ctx.Process(target=worker_main, args=(child, runs_dir, threads, log_path),
                                   name="torchtui-engine", daemon=True)
        # The child ignores SIGINT only once worker_main runs; a Ctrl-C while it bootstraps would kill it.
        # Ignoring it around start() makes the child inherit SIG_IGN from the first instruction.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            self.process.start()
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)
        child.close()
        self.exit_code: int | None = None
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="torchtui-events", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                event = self._conn.recv()
            except (EOFError, OSError, TypeError):  # TypeError: close() shut the pipe under this recv()
                break
            self.events.put(event)
        # This thread is the only one that reaps the worker: two threads waiting on one pid race for
        # its exit status, and the loser sees a dead process as alive.
        self.process.join(timeout=30)
        code = self.exit_code = self.process.exitcode
        if code not in (0, None):
            self.events.put(p.Error(None, f"the engine worker exited unexpectedly (exit code {code})"))
            self.events.put(p.StateChanged(None, p.FAILED, f"engine worker exited with code {code}"))

    def send(self, command) -> None:
        with self._send_lock:
            try:
                self._conn.send(command)
            except (BrokenPipeError, OSError):
                self.events.put(p.Error(None, "the engine worker is gone; restart torchtui"))

    def close(self, timeout: float = 10.0) -> None:
        """Shut the worker down (saving last.pt of an active run); escalate if it does not go."""
        if self._reader.is_alive():
            self.send(p.Shutdown())
            self._reader.join(timeout)
        for escalate, wait in ((self.process.terminate, 5), (self.process.kill, 2)):
            if not self._reader.is_alive():
                break
            try:
                escalate()  # terminate is graceful in the worker (saves last.pt); kill is not
            except (ProcessLookupError, ValueError):
                break
            self._reader.join(wait)
        self._conn.close()
