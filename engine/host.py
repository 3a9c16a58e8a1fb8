"""Engine hosts, the client side: the engine thread in this process, a spawn worker process behind a pipe, or
a run server of its own session behind a Unix socket (ServerHost: the app, `attach`, `train --detach`).

All give clients the same small interface (`send`, `get`, `drain`, `wait_for`, `close`). This module imports
no torch, so a UI process can talk to an engine without ever loading torch itself.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Client
from pathlib import Path

from torchtui.engine import live
from torchtui.engine import protocol as p
from torchtui.engine.run.device_config import default_threads
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
        if threads is None:
            threads = default_threads()
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


class ServerHost(EngineHost):
    """The engine in a run server of its own session, over a Unix-domain socket (engine/run/server.py).

    `start()` launches a server (the app, `train --detach`); `attach()` connects to a running one. The
    server outlives this client: `detach()` leaves it running, `close()` stops its run and ends it. On
    attaching to a run, or when a run resumes, the server sends the run so far in one p.History after its
    RunStarted, then live events.
    """

    CONNECT_S = 120.0  # the server imports torch before it answers

    def __init__(self, info: live.ServerInfo, process: subprocess.Popen | None = None, log_path: str = ""):
        super().__init__()
        self.info, self.process, self.log_path = info, process, log_path
        self._conn = None
        self._pending: list = []          # commands sent before the connection is up
        self._send_lock = threading.Lock()
        self._leaving = False             # detach() or close(): the end of the stream is expected
        self._reader = threading.Thread(target=self._read, name="torchtui-events", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, runs_dir: str | None = None, threads: int | None = None, log_path: str | None = None):
        """Launch a run server in a new session and connect to it in the background (returns at once)."""
        live.runtime_dir()  # a socket folder that cannot be used is refused here, before a server is spawned
        # Absolute: clients elsewhere read the run folders the server names.
        runs_dir = os.path.abspath(runs_dir or default_runs_dir())
        log_path = log_path or os.path.join(runs_dir, "run-server.log")
        command = [sys.executable, "-m", "torchtui.engine.run.server", "--threads",
                   str(threads or default_threads()), "--log", log_path, "--runs-dir", runs_dir]
        process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
        return cls(live.ServerInfo(pid=process.pid, socket=str(live.socket_path(process.pid))), process, log_path)

    @classmethod
    def attach(cls, ref: str | None = None):
        """Connect to the live run `ref` names (see live.find); raises LiveRunError when there is none."""
        return cls(live.find(ref))

    # ------------------------------------------------------------------ the connection

    def _connect(self):
        deadline = time.monotonic() + self.CONNECT_S
        while time.monotonic() < deadline and not self._leaving:
            if self.process is not None and self.process.poll() is not None:
                raise ConnectionError(f"the run server exited as it started (code {self.process.returncode}; "
                                      f"see {self.log_path})")
            if Path(self.info.socket).exists():
                return Client(self.info.socket, family="AF_UNIX", authkey=live.authkey())
            time.sleep(0.05)  # the server binds its socket within a few hundred ms of starting
        raise ConnectionError(f"the run server (pid {self.info.pid}) did not answer within {self.CONNECT_S:.0f} s")

    def _read(self) -> None:
        try:
            conn = self._connect()
        except (OSError, ConnectionError, live.LiveRunError, EOFError) as err:
            if not self._leaving:
                self._gone(f"{err}")
            return
        except Exception as err:  # noqa: BLE001 - AuthenticationError: a key that does not match
            self._gone(f"the run server refused this client ({type(err).__name__}: {err})")
            return
        with self._send_lock:
            self._conn = conn
            for command in self._pending:
                conn.send(command)
            self._pending.clear()
        while True:
            try:
                event = conn.recv()
            except (EOFError, OSError, TypeError):
                break
            self._receive(event)
        if self.process is not None:
            self.process.poll()  # reap it if it ended
        if not self._leaving:
            where = f"; `torchtui resume {self.info.run_dir}` continues the run" if self.info.run_dir else ""
            self._gone(f"the run server (pid {self.info.pid}) is gone{where}")

    def _receive(self, event) -> None:
        if isinstance(event, p.RunStarted):
            self.info.run_id, self.info.run_dir = event.run_id, event.run_dir
        self.events.put(event)

    def _gone(self, message: str) -> None:
        self.events.put(p.Error(None, message))
        self.events.put(p.StateChanged(None, p.FAILED, message))

    def send(self, command) -> None:
        with self._send_lock:
            if self._conn is None:
                self._pending.append(command)
                return
            try:
                self._conn.send(command)
            except (BrokenPipeError, OSError):
                self.events.put(p.Error(None, "the run server is gone; see `torchtui ps`"))

    # ------------------------------------------------------------------ ending

    def detach(self) -> None:
        """Leave the server running (its run goes on); this client stops listening."""
        self._leaving = True
        with self._send_lock:
            if self._conn is not None:
                _hang_up(self._conn)
            elif self.process is not None and self.process.poll() is None:
                self.process.terminate()  # started here and left before it answered: it has nothing to run
        self._reader.join(5)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the server's run (saving last.pt) and end the server; escalate if it does not go."""
        self._leaving = True
        self.send(p.Shutdown())
        self._reader.join(timeout)
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 2)):
            if not self._server_alive():
                break
            try:
                os.kill(self.info.pid, sig)  # SIGTERM is graceful in the server (saves last.pt); SIGKILL is not
            except ProcessLookupError:
                break
            self._wait_server(wait)
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()

    def _server_alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return live.alive(self.info.pid)

    def _wait_server(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._server_alive() and time.monotonic() < deadline:
            time.sleep(0.05)


def _hang_up(conn) -> None:
    """Close a connection so that a thread blocked in its recv() returns (EOF) at once: close() alone does not
    wake it (the app's quit sat out the reader's 5 s join: issue 26). shutdown() acts on the socket itself,
    so a duplicate of its descriptor does it; the reader then closes nothing twice."""
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as dup:
            dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # closed already, or the server hung up first: the reader has its EOF
    conn.close()
