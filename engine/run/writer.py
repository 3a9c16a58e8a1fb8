"""The run's file writes (metrics.jsonl rows, checkpoints) on a thread of their own, in order.

Writing and fsyncing a checkpoint stalls the training thread for as long as the disk takes (hundreds of
milliseconds for a large model); appending each flush's rows costs a write per flush. Here the training
thread only hands over what to write (bytes already serialised, rows already formatted) and goes on; the
outcomes come back through `results()`, which the training thread reads at its next flush and turns into
events (CheckpointSaved, or an Error for a full disk), so events are only ever emitted from that thread.
`drain()` waits for everything handed over: the run calls it before it reports its end.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class Writer:
    """One daemon thread running jobs in the order given; each job's return value (or exception) is kept."""

    def __init__(self, name: str = "torchtui-writer"):
        self._jobs: queue.Queue = queue.Queue()
        self._done: list[tuple[Any, Any]] = []  # (tag, result or exception)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, tag: Any, job: Callable[[], Any]) -> None:
        """Run `job()` after everything submitted before it; `tag` comes back with its outcome."""
        self._jobs.put((tag, job))

    def results(self) -> list[tuple[Any, Any]]:
        """The outcomes of the jobs finished since the last call: (tag, return value or the exception)."""
        with self._lock:
            done, self._done = self._done, []
        return done

    def drain(self) -> list[tuple[Any, Any]]:
        """Wait for every job submitted so far, then return the outcomes not yet read."""
        self._jobs.join()
        return self.results()

    def close(self) -> list[tuple[Any, Any]]:
        """Drain, then end the thread."""
        done = self.drain()
        self._jobs.put(None)
        self._thread.join(timeout=10)
        return done

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            try:
                if item is None:
                    return
                tag, job = item
                try:
                    outcome = job()
                except Exception as err:  # noqa: BLE001 - an OSError (full disk) or a serialisation bug: reported
                    outcome = err
                with self._lock:
                    self._done.append((tag, outcome))
            finally:
                self._jobs.task_done()
