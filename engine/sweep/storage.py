"""Where a sweep's study lives, and what to tell the user when it cannot be used.

The default is `<sweep folder>/study.db` (SQLite); `--storage URL` names any database SQLAlchemy reaches
(PostgreSQL so several machines work on one sweep). A damaged file, a folder in its place, a URL no
dialect knows, a driver that is not installed or a server that does not answer is a StorageError: one
line saying what is wrong and what to do, never a traceback.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from torchtui.engine.errors import StorageError

# pip packages of the database drivers SQLAlchemy names (dialect.driver); a plain postgresql:// URL means
# psycopg 3 from SQLAlchemy 2.1 on, which the `postgres` extra installs.
DRIVER_PACKAGES = {"psycopg": "'torchtui[postgres]' (psycopg 3)", "psycopg2": "psycopg2-binary",
                   "pg8000": "pg8000", "asyncpg": "asyncpg", "mysqldb": "mysqlclient", "pymysql": "PyMySQL",
                   "mysqlconnector": "mysql-connector-python", "mariadbconnector": "mariadb"}


def safe_url(url: str) -> str:
    """The storage URL without a password (user:secret@host → user:***@host)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


class Storage:
    """A sweep's storage URL, with the words to name it in a message."""

    def __init__(self, url: str | None, folder: Path):
        self.folder = Path(folder)
        self.default = url is None
        self.url = url or f"sqlite:///{(self.folder / 'study.db').resolve()}"
        self.label = str(self.folder / "study.db") if self.default else f"--storage {safe_url(self.url)}"

    @property
    def afresh(self) -> str:
        """What to do with a study that cannot be read: the folder's trial runs are not lost."""
        if self.default:
            return f"move it away to start the sweep afresh (its finished trials' runs stay in {self.folder})"
        return "repair or drop that study, or give another --storage"

    def check_file(self, trial_runs: int) -> None:
        """Refuse, before SQLAlchemy opens it, an SQLite path that cannot be a study or would lose one."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.url)
        except ArgumentError as err:
            raise StorageError(f"{self.label}: not a database URL ({err}); use sqlite:///PATH or "
                               "postgresql://USER@HOST/DB") from None
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return
        path = Path(url.database)
        if path.is_dir():
            where = self.label if self.default else f"{self.label}: {path}"
            raise StorageError(f"{where} is a folder, not a study file: {self.afresh}")
        if not path.parent.is_dir():
            raise StorageError(f"{self.label}: the folder {path.parent} does not exist: create it, or give a path "
                               "in a folder that does")
        if path.is_file() and path.stat().st_size == 0 and trial_runs:
            raise StorageError(f"{self.label} is empty (0 bytes) but {self.folder} holds {trial_runs} trial "
                               f"run(s) of this sweep: its study was lost, and the same trials would train again; "
                               f"move the study file and those runs away to start afresh")

    @contextlib.contextmanager
    def errors(self):
        """Turn what SQLAlchemy and the drivers raise on opening a study into one StorageError line."""
        from sqlalchemy import exc

        try:
            yield
        except ImportError as err:
            raise StorageError(self._missing_driver(err)) from None
        except (exc.NoSuchModuleError, exc.ArgumentError) as err:
            raise StorageError(f"{self.label}: not a database URL SQLAlchemy knows ({_first(err)}); use "
                               "sqlite:///PATH or postgresql://USER@HOST/DB") from None
        except exc.OperationalError as err:
            why = _first(err.orig or err)
            if self.url.startswith("sqlite"):
                raise StorageError(f"{self.label}: cannot be opened ({why}): {self.afresh}") from None
            raise StorageError(f"{self.label}: cannot reach the database ({why}); check the host, port, user and "
                               "that the server runs") from None
        except exc.DatabaseError as err:
            raise StorageError(f"{self.label} is damaged ({_first(err.orig or err)}): {self.afresh}") from None
        except exc.SQLAlchemyError as err:
            raise StorageError(f"{self.label}: {_first(err)}") from None

    def _missing_driver(self, err: ImportError) -> str:
        from sqlalchemy.engine import make_url

        try:
            driver = make_url(self.url).get_dialect().driver
        except Exception:  # noqa: BLE001 - only to word the message; the import error says the rest
            driver = ""
        package = DRIVER_PACKAGES.get(driver)
        fix = f"pip install {package}" if package else "install the database driver its URL names"
        return f"{self.label}: the {driver or 'database'} driver is not installed: {fix}"


def _first(err: BaseException) -> str:
    """An exception's first line, without SQLAlchemy's "(Background on this error at …)" trailer."""
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
