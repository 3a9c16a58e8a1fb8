"""A throw-away PostgreSQL cluster for the tests that share a sweep's study through a real server.

Debian's `postgresql` package (.ci/run installs it) puts initdb and pg_ctl in /usr/lib/postgresql/N/bin. The
cluster lives in a fresh folder, listens on a Unix socket there only (no TCP port to collide with), trusts
local connections and is stopped and removed at the end. initdb refuses to run as root: as root the cluster
is made and run by the `postgres` user the package creates (or `nobody`), through runuser.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (or the one holding initdb on PATH), None if none is."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _user() -> str | None:
    """Whom to run the server as when we are root (None: ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists for initdb")


@contextlib.contextmanager
def cluster(database: str = "sweeps"):
    """Start a cluster, create `database`, yield its SQLAlchemy URL (psycopg 3 through the socket); stop it."""
    bin_dir = binaries()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL is not installed (initdb not found)")
    user = _user()
    home = Path(tempfile.mkdtemp(prefix="torchtui-pg-"))
    data = home / "data"
    as_user = ["runuser", "-u", user, "--"] if user else []
    if user:
        entry = pwd.getpwnam(user)
        os.chown(home, entry.pw_uid, entry.pw_gid)

    def run(*argv: str, timeout: float = 120) -> None:
        done = subprocess.run([*as_user, *argv], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {(done.stderr or done.stdout)[-2000:]}")

    role = user or pwd.getpwuid(os.geteuid()).pw_name
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", role, "--auth=trust", "-E", "UTF8", "--no-sync")
        # fsync off: a throw-away cluster needs no durability, and the shared test machine's disk is slow
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-w", "-t", "60",
            "-o", f"-k {home} -h '' -c fsync=off -c max_connections=100", "start")
        try:
            run(str(bin_dir / "createdb"), "-h", str(home), "-U", role, database)
            yield f"postgresql://{role}@/{database}?host={home}"
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)
