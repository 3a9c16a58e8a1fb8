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


def terminal_width(out) -> int | None:
    """The terminal's columns ($COLUMNS first, as `ls` reads it) when `out` is one; None for a pipe or file,
    whose lines are never cut."""
    if not out.isatty():
        return None
    import shutil

    return max(20, shutil.get_terminal_size().columns)


def terminal_lines() -> int:
    import shutil

    return max(4, shutil.get_terminal_size().lines)


def cut(text: str, width: int, keep_end: bool = False) -> str:
    """`text` in at most `width` characters, with … where it was cut (at the start when its end matters)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    return "…" + text[-(width - 1):] if keep_end else text[:width - 1] + "…"


def fit_parts(parts: list, priority: list[int], width: int | None, sep: str = "  ") -> str:
    """The non-empty `parts` joined in their order: on a terminal only those that fit shorter than `width` (a
    line that reaches the last column wraps on some terminals), taken most important first (`priority`), so a
    long part that does not fit leaves room for shorter ones after it. A part may be a tuple of ways to say
    it, longest first: the first that fits is used. The first part is cut if it alone is too long."""
    options = [part if isinstance(part, tuple) else (part,) for part in parts]
    present = [i for i, ways in enumerate(options) if ways[0]]
    if width is None:
        return sep.join(options[i][0] for i in present)
    chosen: dict[int, str] = {}
    for i in [i for i in priority if i in present]:
        for way in options[i]:
            trial = {**chosen, i: way}
            if not chosen or len(sep.join(trial[j] for j in sorted(trial))) < width:
                chosen = trial
                break
    return cut(sep.join(chosen[i] for i in sorted(chosen)), width - 1)


def fit_table(header: list[str], rows: list[list[str]], width: int | None, priority: list[int] | None = None,
              sep: str = "  ") -> list[str]:
    """Aligned rows, as `ls` and `ps` fit a terminal: the columns taken most important first (`priority`) while
    the rows still fit `width`, a line naming those left out, and cells cut at the start (a run id's end tells
    runs apart) if the first column alone is too wide. `width` None (not a terminal): every column, whole."""
    table = [list(header)] + [list(row) for row in rows]
    shown = list(range(len(header)))
    widths = [max(len(row[i]) for row in table) for i in shown]

    def total(columns):
        return sum(widths[i] for i in columns) + len(sep) * (len(columns) - 1)

    if width is not None:  # most important first, each column that still fits (a wide one leaves room)
        order = priority or shown
        shown = [order[0]]
        for i in order[1:]:
            if total(sorted(shown + [i])) <= width:
                shown.append(i)
        shown.sort()
    lines = [sep.join(row[i].ljust(widths[i]) for i in shown).rstrip() for row in table]
    if width is not None:
        lines = [cut(line, width, keep_end=len(shown) == 1) for line in lines]
        left = [header[i] for i in range(len(header)) if i not in shown]
        if left:
            lines.append(cut(f"({len(left)} more column{'s' if len(left) > 1 else ''}: {', '.join(left)}; "
                             "a wider terminal or --json shows them)", width))
    return lines
