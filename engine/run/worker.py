"""The engine's worker process: hosts an Engine and relays the protocol over a pipe; its output goes to a log."""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable

from torchtui.engine import protocol as p


def worker_main(conn, runs_dir: str | None, threads: int, log_path: str | None) -> None:
    """Entry point of the worker process: host an Engine and relay the protocol over `conn`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns the keyboard
    redirect_output(log_path)
    import torch

    torch.set_num_threads(threads)
    from torchtui.engine.run.engine import Engine

    lock = threading.Lock()
    stopping = threading.Event()

    def emit(event) -> None:
        with lock:
            try:
                conn.send(event)
            except (BrokenPipeError, OSError):
                stopping.set()  # parent gone: nobody to report to

    def on_signal(signum, _frame):
        stopping.set()

    # Before the engine starts: its EngineReady tells the parent it may signal us from then on.
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, on_signal)
    engine = Engine(emit, runs_dir).start()
    relay_warnings(lambda text: emit(p.Log(engine.run.run_id if engine.run else None, "warning", text)))
    while not stopping.is_set() and engine.thread.is_alive():
        try:
            if conn.poll(0.2):
                engine.send(conn.recv())
        except (EOFError, OSError):
            break  # the parent went away: stop the run (saving last.pt) and exit, never orphaned
    engine.send(p.Shutdown())
    engine.join(timeout=60)
    conn.close()


def relay_warnings(send: Callable[[str], None]) -> None:
    """Python warnings become Log events (and still reach the log file)."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        send(f"{category.__name__}: {message} ({os.path.basename(filename)}:{lineno})")
        original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def redirect_output(log_path: str | None) -> None:
    """The UI owns the terminal: the worker's stdout and stderr go to a log file (or nowhere)."""
    target = log_path or os.devnull
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
