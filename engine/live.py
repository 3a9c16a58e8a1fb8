"""Live runs: the private folder their servers listen in, the key that lets a client in, and who is running.

A run server listens on a Unix-domain socket in a folder only its user may enter ($XDG_RUNTIME_DIR/torchtui,
else /tmp/torchtui-$UID; mode 0700, the socket 0600). Clients prove they hold the user's key (0600 in the
same folder) through multiprocessing.connection's HMAC challenge. Beside each socket a small JSON file
says what the server runs; `servers()` lists them and removes the files of servers that died.
Nothing here listens on a network port.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from torchtui.engine.errors import UserError


class LiveRunError(UserError):
    """A live run cannot be found or reached; the message says why and what to do."""


def runtime_dir() -> Path:
    """The folder the sockets live in, created private; refused when someone else could read or own it."""
    base = os.environ.get("XDG_RUNTIME_DIR", "").strip()
    path = Path(base) / "torchtui" if base else Path(f"/tmp/torchtui-{os.getuid()}")
    elsewhere = ("or set XDG_RUNTIME_DIR to a folder only you can enter (e.g. mkdir -m 700 ~/.run; "
                 "export XDG_RUNTIME_DIR=~/.run)")
    try:
        with contextlib.suppress(FileExistsError):  # a file or a link there is judged below
            path.mkdir(mode=0o700)  # XDG_RUNTIME_DIR itself is the session's to make, not ours
        info = path.lstat()
    except OSError as err:
        what = f"XDG_RUNTIME_DIR={base}" if base else str(path)
        raise LiveRunError(f"cannot make {path} for run sockets ({err.strerror or err}): check {what}, "
                           f"{'or unset it' if base else elsewhere}") from None
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        problem, fix = f"is a symlink (to {os.readlink(path)}), not a folder", f"remove it, {elsewhere}"
    elif not stat.S_ISDIR(info.st_mode):
        problem, fix = "is not a folder", f"remove it, {elsewhere}"
    elif info.st_uid != os.getuid():
        problem = f"belongs to another user (uid {info.st_uid}), who could read or replace your run sockets"
        fix = f"ask them or root to remove it, {elsewhere}"
    elif mode & 0o077:
        problem, fix = f"has mode {mode:o}: others may enter it", f"chmod 700 {path}"
    else:
        return path
    raise LiveRunError(f"{path} {problem}: {fix}")


KEY_BYTES = 32  # multiprocessing.connection skips its HMAC challenge for an empty key: never accept a short one


def authkey() -> bytes:
    """This user's key for run servers (32 random bytes, made once, readable by the owner only). A key file
    that is shorter (empty, cut) is replaced by a new key, under a lock, and said on stderr."""
    path = runtime_dir() / "authkey"
    if not path.exists():
        _install_key(path, replace=False)
    info = path.lstat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise LiveRunError(f"{path} must belong to this user with mode 600 (it has {stat.S_IMODE(info.st_mode):o})")
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        import fcntl
        import sys

        with open(path.with_name(".authkey.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process replaces it; the others read what it wrote
            key = path.read_bytes()
            if len(key) < KEY_BYTES:
                _install_key(path, replace=True)
                print(f"torchtui: warning: {path} held a {len(key)}-byte key (at least {KEY_BYTES} are needed; an "
                      "empty one turns authentication off): made a new one; run servers started with the old "
                      "key cannot be reached any more", file=sys.stderr)
                key = path.read_bytes()
    return key


def _install_key(path: Path, replace: bool) -> None:
    """Write a new random key beside `path` and move it into place atomically (a link: exclusive, when the
    first key is made, so two first servers never end up with two keys; a rename when replacing one)."""
    temp = path.with_name(f".authkey-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)


@dataclass
class ServerInfo:
    """What a run server's JSON file says: its process and socket, and the run it serves (if any yet)."""
    pid: int
    socket: str
    started: float = field(default_factory=time.time)
    run_id: str = ""
    run_dir: str = ""
    name: str = ""
    state: str = "idle"
    device: str = ""
    step: int = 0
    epoch: float = 0.0
    total_steps: int = 0
    metric: str = ""        # the latest val metric, e.g. "accuracy 0.97"
    clients: int = 0
    ranks: list = field(default_factory=list)  # data parallel: p.RankStats.rows() of the latest flush
    slowest: str = ""       # data parallel: the rank the others wait for, e.g. "node2:5 (data wait)"

    @property
    def path(self) -> Path:
        return Path(self.socket).with_suffix(".json")

    def write(self) -> None:
        """Replace the file in one rename (no fsync: it describes a live process, and the run's thread waits)."""
        temp = self.path.with_name(f".{self.path.name}.tmp")
        temp.write_text(json.dumps(self.__dict__), encoding="utf-8")
        os.replace(temp, self.path)


def socket_path(pid: int) -> Path:
    return runtime_dir() / f"{pid}.sock"


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by the client that started it, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal said it exists
    return status.rpartition(")")[2].split()[:1] != ["Z"]


def servers() -> list[ServerInfo]:
    """Run servers of this user that are up, newest first; files left by dead ones are removed."""
    found = []
    for path in runtime_dir().glob("*.json"):
        try:
            info = ServerInfo(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue  # being written, or not ours to read
        if alive(info.pid) and Path(info.socket).exists():
            found.append(info)
            continue
        for stale in (path, Path(info.socket)):
            stale.unlink(missing_ok=True)
    return sorted(found, key=lambda i: i.started, reverse=True)


def find(ref: str | None) -> ServerInfo:
    """The live run `ref` names (a run id, a prefix of one, or a server pid), or the newest when None."""
    live = servers()
    if not live:
        raise LiveRunError("no live runs (start one with `torchtui train PRESET --detach` or from the app)")
    if not ref:
        return live[0]
    matches = [i for i in live if i.run_id.startswith(ref) or str(i.pid) == ref]
    if len(matches) > 1:
        raise LiveRunError(f"'{ref}' matches {len(matches)} live runs ({', '.join(i.run_id for i in matches)}): "
                           "give more of the run id")
    if not matches:
        raise LiveRunError(f"no live run '{ref}' (see `torchtui ps`)")
    return matches[0]
