"""The per-rank strip of a data-parallel run: a line per rank (host:rank) with a strip chart of its own time per
step, where its step goes (data wait, compute, communication wait), samples/s and memory; the rank the others
wait for is marked, with its cause. Shown only while a run of several processes is on screen."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widgets import Static

from torchtui.engine import protocol as p

BARS = "▁▂▃▄▅▆▇█"
KEEP = 40          # flushes kept per rank for its strip chart
SHOWN = 12         # ranks shown at most (the slowest always among them)


class RankStrip(Static):
    """One line per rank, fed RankStats; hidden for runs of one process."""

    DEFAULT_CSS = "RankStrip { height: auto; max-height: 14; display: none; padding: 0 1; }"

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        self.latest: p.RankStats | None = None
        self.busy: dict[int, deque] = {}  # rank → its data wait + compute per step, flush after flush

    def on_mount(self) -> None:
        controller = getattr(self.app, "ranks", None)  # mounted after the first frame: events may have come
        if controller is not None:
            controller.mounted(self)

    def start(self, world_size: int) -> None:
        """A run (re)starts: forget the last one's ranks; show the strip only when it has several."""
        self.latest, self.busy = None, {}
        self.display = world_size > 1
        self.update("ranks: waiting for the first sync point…" if world_size > 1 else "")

    def show(self, stats: p.RankStats) -> None:
        self.latest = stats
        for rank, (data, compute) in enumerate(zip(stats.data_wait, stats.compute)):
            self.busy.setdefault(rank, deque(maxlen=KEEP)).append(data + compute)
        self.display = True
        self.update(render(stats, self.busy))


def render(stats: p.RankStats, busy: dict[int, deque]) -> Text:
    """The strip as rich Text: a header, then a line per rank (the slowest first past SHOWN ranks)."""
    rows = stats.rows()
    top = max((v for series in busy.values() for v in series), default=0.0)
    order = list(range(len(rows)))
    if len(order) > SHOWN:  # many ranks: the slowest and the busiest others
        order = sorted(order, key=lambda i: -(rows[i]["data_wait"] + rows[i]["compute"]))[:SHOWN]
        order.sort()
    names = [f"{rows[i]['host']}:{i}" for i in order]
    width = max(len(n) for n in names) if names else 0
    text = Text()
    text.append(f"ranks ({len(rows)}) · own time per step, then data / compute / comm wait", style="bold")
    for i, name in zip(order, names):
        row = rows[i]
        text.append("\n")
        text.append(name.ljust(width) + " ", style="bold red" if row["slowest"] else "")
        text.append(spark(busy.get(i, ()), top).ljust(KEEP // 2) + " ", style="cyan")
        text.append(split_text(row))
        if row["slowest"]:
            text.append(f"  ◀ slowest: {stats.cause}", style="bold red")
    return text


def spark(values, top: float, n: int = KEEP // 2) -> str:
    """The last `n` values as bar characters scaled to `top` (the largest of every rank: ranks compare)."""
    values = list(values)[-n:]
    if top <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))] for v in values)


def split_text(row: dict) -> str:
    """12.3 ms/step  data 2% compute 48% comm 50%  1,234/s  381 MiB"""
    total = row["data_wait"] + row["compute"] + row["comm_wait"]
    shares = " ".join(f"{label} {row[key] / total:.0%}" for label, key in
                      (("data", "data_wait"), ("compute", "compute"), ("comm", "comm_wait"))) if total > 0 else ""
    return (f"{total * 1000:6.1f} ms/step  {shares}  {row['samples_per_s']:,.0f}/s  "
            f"{row['memory'] / 2 ** 20:,.0f} MiB")
