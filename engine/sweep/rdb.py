"""Optuna's RDB storage made safe for several sweep processes on one study, on SQLite as on PostgreSQL.

Optuna takes a queued (WAITING) trial, fails a stale one and numbers a new one by reading a row and writing
it in one transaction. On PostgreSQL it reads that row with SELECT … FOR UPDATE: a second process waits for
the first one's commit and then sees its write (a trial already RUNNING is not taken again). SQLite ignores
FOR UPDATE, and Python's sqlite3 opens a transaction only at its first write, so two processes both read a
trial WAITING and both train it (4 processes popping 60 queued trials took 15 of them twice). Here every
SQLite transaction starts with BEGIN IMMEDIATE, which takes the database's write lock before the read:
the read and the write that follows it have no other writer between them (the others wait, up to the
connection's timeout). `enqueue_once` adds trials and a study attribute saying so in one transaction, so a
sweep's grid is queued once however many processes open the study at the same moment.
"""

from __future__ import annotations

import json
import random
import time

from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from sqlalchemy import event
from sqlalchemy import exc as sqlalchemy_exc


class SweepStorage(RDBStorage):
    def __init__(self, url: str, **kwargs):
        super().__init__(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            # SQLAlchemy's recipe for whole SQLite transactions: pysqlite emits no BEGIN of its own, we emit one.
            event.listen(self.engine, "connect", _no_implicit_begin)
            event.listen(self.engine, "begin", _begin_immediate)
            self.engine.dispose()  # the connections made while the tables were set up had neither hook

    def enqueue_once(self, study_id: int, key: str, value, trials) -> bool:
        """Add `trials` (FrozenTrials, WAITING) to the study unless its system attribute `key` is set, and set it
        in the same transaction: whichever process commits first queues them, the others find `key` and add
        nothing. The study's row is locked first (FOR UPDATE; SQLite: the write lock), as Optuna does to number
        a trial, so trials are numbered in turn. True when this call added them."""
        try:
            with _create_scoped_session(self.scoped_session) as session:
                study = models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
                if models.StudySystemAttributeModel.find_by_study_and_key(study, key, session) is not None:
                    return False
                session.add(models.StudySystemAttributeModel(study_id=study_id, key=key, value_json=json.dumps(value)))
                session.flush()  # a second writer of `key` fails here, on the unique (study, key), before any trial
                for trial in trials:
                    self._get_prepared_new_trial(study_id, trial, session)
        except sqlalchemy_exc.IntegrityError:
            return False  # another process set `key` between our read and our write (only without the lock)
        return True


def open_storage(url: str, attempts: int = 3, **kwargs) -> SweepStorage:
    """The storage, its tables made if the database has none. Two processes making them at once (two machines
    starting a sweep on a fresh PostgreSQL database, two sweep folders on one new SQLite file) race, and the
    loser fails (`UNIQUE constraint failed: alembic_version.version_num`, reported as a damaged study): it
    tries again and finds them made. A database that is really damaged fails every attempt."""
    for attempt in range(attempts):
        try:
            return SweepStorage(url, **kwargs)
        except sqlalchemy_exc.DatabaseError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random() * 0.3)  # apart, so the two do not meet again at once
    raise AssertionError("unreachable")


def _no_implicit_begin(dbapi_connection, connection_record) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
