"""Trials that end as the sweep expects (interrupted, failed with a reason its table shows) without Optuna's
tracebacks.

Optuna logs every exception an objective raises as a warning with its traceback, then "Trial N failed with
value None." A trial the user interrupted or that diverged is no program error: its state and reason are in
the sweep's table and trial.json, so Optuna's two records for it are dropped (`torchtui sweep` + Ctrl-C
printed two full tracebacks).
"""

from __future__ import annotations

import logging
import re

from torchtui.engine.errors import UserError


class TrialEnded(UserError, RuntimeError):
    """A trial ended in a way the sweep reports itself (interrupted, diverged, failed to start, with the reason in
    its row): Optuna marks it failed. A RuntimeError, which the sweep's optimize() catches; a UserError, were it
    ever to reach the CLI."""


class QuietEndings(logging.Filter):
    """Drops Optuna's records of a TrialEnded: the traceback warning and the "failed with value" one after it."""

    FAILED = re.compile(r"Trial (\d+) failed with value ")

    def __init__(self):
        super().__init__()
        self.ended: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TrialEnded):
            match = re.match(r"Trial (\d+) ", record.getMessage())
            self.ended.add(match.group(1) if match else "")
            return False
        match = self.FAILED.match(record.getMessage())
        if match and match.group(1) in self.ended:
            self.ended.discard(match.group(1))
            return False
        return True


def install() -> None:
    """Add the filter to the logger Optuna's optimize loop writes to (once per process)."""
    logger = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, QuietEndings) for f in logger.filters):
        logger.addFilter(QuietEndings())
