"""The errors torchtui raises for what a user or their machine caused, as opposed to its own bugs.

Every one derives from UserError: the CLI prints its message as one line and exits 2, the app shows it
beside the field or in the status bar. Anything else that escapes is a bug of ours (`internal error`, exit 1,
the traceback in errors.log). tests/test_user_errors.py checks each error class raised in the package.
"""

from __future__ import annotations


def reason_of(err: BaseException, limit: int = 200) -> str:
    """A library's error in a few words for a one-line message: its first line, cut at `limit`, or its type."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


class UserError(Exception):
    """Something the user can fix; the message names the field, file or setting at fault and the fix."""

    @property
    def first_line(self) -> str:
        return str(self).splitlines()[0] if str(self) else type(self).__name__


class DataError(UserError, ValueError):
    """The data cannot be loaded; the message names the config field, or the row and column at fault."""


class ModelError(UserError, ValueError):
    """The model cannot be built as configured; the message names the field (and file:line for user code)."""


class StorageError(UserError):
    """A sweep's study storage cannot be used (damaged, missing, no driver, unreachable); says what to do."""
