"""Atomic file writes (temp file in the same folder, fsync, rename): readers never see half a file."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide runs and presets from the rest of a team
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of atomic_write_bytes (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def not_a_file(path: Path, shown: str) -> str:
    """Why `path` is no file to read: missing, a folder, a device or pipe, a symlink loop, unreadable."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return f"no such file {shown}" if not path.is_symlink() else f"{shown} is a broken symlink"
    except RuntimeError:
        return f"{shown} is a symlink loop"
    except OSError as err:
        if err.errno == 40:  # ELOOP
            return f"{shown} is a symlink loop"
        return f"cannot read {shown} ({err.strerror})"
    if stat.S_ISDIR(info.st_mode):
        return f"{shown} is a folder, not a file"
    if not stat.S_ISREG(info.st_mode):
        return f"{shown} is not a regular file (a device, pipe or socket)"
    return f"cannot read {shown}"


@contextlib.contextmanager
def held(lock_path: Path):
    """An exclusive flock on `lock_path` (made if missing) for the with block: processes on one machine, or
    sharing the folder, take turns (a sweep's study is made once, a grid point is claimed once)."""
    import fcntl

    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
