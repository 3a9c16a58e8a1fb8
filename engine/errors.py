"""Errors the engine raises for problems a user can fix; each message names the config field at fault."""

from __future__ import annotations


class DataError(ValueError):
    """The data cannot be loaded; the message names the config field, or the row and column at fault."""


class ModelError(ValueError):
    """The model cannot be built as configured; the message names the field (and file:line for user code)."""
