"""Output that may go away: `torchtui train … | head -1`, `>&-`, a terminal closed under a run.

A run's folder is its record, so a closed or broken stdout or stderr never stops a run nor becomes an
internal error: what cannot be written is dropped and the command exits as the run does.
"""

from __future__ import annotations

import os
import sys


def open_std_fds() -> None:
    """Point closed fds 0-2 at /dev/null, so no file opened later takes their number (and a child's output)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


class Tolerant:
    """A text stream whose writes stop quietly once the reader is gone (EPIPE, a closed file, no stream)."""

    def __init__(self, stream):
        self._stream = stream

    @property
    def gone(self) -> bool:
        return self._stream is None

    def write(self, text: str) -> int:
        if self._stream is not None:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):  # ValueError: I/O operation on closed file
                self._lose()
        return len(text)

    def flush(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._lose()

    def isatty(self) -> bool:
        try:
            return self._stream is not None and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name):  # encoding, fileno, buffer …: the stream's own
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)

    def _lose(self) -> None:
        """Drop the stream; its fd now leads to /dev/null, so the interpreter's flush at exit finds nothing."""
        stream, self._stream = self._stream, None
        try:
            fd = stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass


def guard() -> tuple:
    """Wrap sys.stdout and sys.stderr in Tolerant streams; returns the originals for `restore`."""
    open_std_fds()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Tolerant(sys.stdout), Tolerant(sys.stderr)
    return old


def restore(old: tuple) -> None:
    sys.stdout, sys.stderr = old


def live_terminal(out) -> bool:
    """Whether to redraw a line in place: a terminal that understands escapes (not TERM=dumb, not a pipe)."""
    return out.isatty() and os.environ.get("TERM") != "dumb"
