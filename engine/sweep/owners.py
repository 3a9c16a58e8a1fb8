"""Which sweep processes on this machine are alive: each holds a lock on a file of its own while it runs.

A sweep killed with -9 leaves its running trials in the study. Their heartbeats go stale only after a grace
period; a run of the same command started at once would meanwhile train again a trial whose run had already
finished (Optuna fails a stale trial and retries its params). The kernel drops a dead process's flock however
it died, so a free lock on a trial's owner file says at once that nobody will record that trial.

A trial names its owner as `host:/path/of/its/owner/file`: processes sharing a study through `--storage` may
each work in a sweep folder of their own (two on one machine, as the tests run two "machines"), and the
name alone (looked for in this folder) took a live process of another folder for dead: its running trial
was failed and trained again by the other, and its own process then crashed telling Optuna the result.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from torchtui.engine.files import held

OWNERS = ".owners"  # in the sweep folder: one file per live sweep process on this folder
OWNER = "torchtui:owner"  # a trial's system attribute: the owner (Owners.tag) of the sweep process training it


class Owners:
    """The owner files of one sweep folder; `mine` names this process's while it holds it (else None)."""

    def __init__(self, folder: Path, lock_path: Path):
        self.folder, self.lock_path = Path(folder), lock_path
        self.mine: str | None = None
        self._fd: int | None = None

    def take(self) -> None:
        """Hold the lock on a file named for this host and process (a folder that takes none: the heartbeat
        alone tells)."""
        name = f"{socket.gethostname()}-{os.getpid()}"
        with held(self.lock_path):  # made and locked in one turn: clear_dead never sees it unlocked
            try:
                self.folder.mkdir(exist_ok=True)
                fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # a dead process of this pid may have left the file: it is free
            except OSError:
                os.close(fd)
                return
        self.mine, self._fd = name, fd

    def give_up(self) -> None:
        if self._fd is None:
            return
        (self.folder / self.mine).unlink(missing_ok=True)
        os.close(self._fd)  # closing the last descriptor releases the lock
        self.mine = self._fd = None

    @property
    def tag(self) -> str | None:
        """What a trial records as its owner: this machine and the owner file's absolute path."""
        return f"{socket.gethostname()}:{(self.folder / self.mine).resolve()}" if self.mine else None

    def gone(self, owner) -> bool:
        """Whether the sweep process that owned a trial has died: its owner file on this machine is no longer
        locked (or gone). A process on another machine is judged by its heartbeat alone."""
        if not isinstance(owner, str):
            return False
        host, sep, path = owner.partition(":")
        if not sep:  # written before owners were tags: the name of a file in this folder
            if not owner.startswith(f"{socket.gethostname()}-") or "/" in owner:
                return False
            path = str(self.folder / owner)
        elif host != socket.gethostname() or not path.startswith("/"):
            return False
        # None (no file): its process ended, and removed the file, without recording the trial.
        return _free(Path(path)) is not False

    def clear_dead(self) -> None:
        """Remove the owner files of this machine's sweep processes that died (their lock is free)."""
        with held(self.lock_path):
            for path in self.folder.glob(f"{socket.gethostname()}-*"):
                _free(path, remove=True)


def _free(path: Path, remove: bool = False) -> bool | None:
    """Whether nobody holds the flock on `path` (None: there is no such file). False also where the lock
    cannot be asked for (a file system without flock: the heartbeat tells). With `remove`, a free file is
    removed while this process holds its lock. This process's own file is locked on another descriptor,
    so it is never free here."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held (BlockingIOError)
        return False
    else:
        if remove:
            path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)
