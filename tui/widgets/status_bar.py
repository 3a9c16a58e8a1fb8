"""The status bar: run state, folder, epoch/step, samples/s, ETA, device memory, and the current problem."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from torchtui.cli.progress import fmt_duration

STATE_STYLES = {"running": "bold green", "paused": "bold yellow", "finished": "bold cyan",
                "stopped": "bold magenta", "diverged": "bold red", "failed": "bold red", "idle": "dim"}


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


class StatusBar(Static):
    """One or two lines at the bottom: what the run is doing, or which field blocks it and why."""

    DEFAULT_CSS = """
    StatusBar { height: auto; max-height: 3; padding: 0 1; background: $boost; }
    """

    def show(self, history, problem: str = "", notice: str = "", typing: str = "") -> None:
        text = Text()
        state = history.state or "idle"
        text.append(f" {state} ", style=STATE_STYLES.get(state, "bold"))
        started, stats = history.started, history.last_stats
        if started is not None and self.size.width >= 100:  # narrow: the numbers matter more than the name
            text.append(f"  {started.run_id}", style="dim")
        if stats is not None and stats.step and started is not None:
            endless = not started.total_steps  # train.epochs 0: until stopped
            text.append(f"  epoch {stats.epoch:.2f}/{started.epochs or '∞'}  "
                        f"step {stats.step[-1]}/{started.total_steps or '∞'}")
            text.append(f"  {stats.samples_per_s:,.0f} samples/s  ETA {'∞' if endless else fmt_duration(stats.eta_s)}")
            if stats.mem_allocated is not None:
                text.append(f"  mem {fmt_bytes(stats.mem_allocated)}/{fmt_bytes(stats.mem_reserved)}")
        if typing:  # where keys go: a field (esc gives them back to the app) or, without this, the app
            text.append(f"  ⌨ {typing} (esc: keys to the app)", style="bold cyan")
        if problem:
            text.append("\n")
            text.append(f"✗ {problem}", style="bold red")
        elif notice:
            text.append("\n")
            text.append(notice, style="italic")
        self.update(text)
