"""How durations and sizes read in the CLI and in the app (both import downward from here)."""

from __future__ import annotations


def fmt_duration(seconds: float | None) -> str:
    """h:mm:ss, or mm:ss under an hour; --:-- when unknown."""
    if seconds is None:
        return "--:--"
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


def fmt_step(step: int) -> str:
    """A step count as every log line writes it: 1,641 (the app's log, the CLI, the engine's messages)."""
    return f"{step:,}"


def fmt_bytes(n: int | None) -> str:
    """A size in B, KiB, MiB or GiB; "" when unknown."""
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


DATA_WAIT_HINT = 0.2  # past this share of a step waiting for the next batch, the data is what is slow


def data_wait_text(share: float) -> str:
    """e.g. "data wait 35% (raise data.workers)": the hint once waiting for batches passes DATA_WAIT_HINT."""
    hint = " (raise data.workers)" if share > DATA_WAIT_HINT else ""
    return f"data wait {share:.0%}{hint}"
