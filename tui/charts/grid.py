"""ChartGrid: the live charts in their grid, composed as empty slots for the first paint and filled after it."""

from __future__ import annotations

from textual.containers import Grid
from textual.widgets import Static

from torchtui.engine.history import RunHistory
from torchtui.tui.charts.registry import CHARTS


class ChartGrid(Grid):
    """Empty slots (with each chart's id and view class, so the layout is the same) until `load()` swaps in
    the charts; the charts are then in `charts`, by id."""

    def __init__(self, history: RunHistory, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.charts: dict = {}
        self._chart_types: list[type] | None = None

    def compose(self):
        for i, slot in enumerate(CHARTS):
            classes = f"view-{slot.narrow_view}"
            if self._chart_types is None:
                yield Static(id=slot.chart_id, classes=classes)
            else:
                yield self._chart_types[i](self.history, id=slot.chart_id, classes=classes)

    async def load(self) -> dict:
        """Import the charts and put them in their slots (once); returns them by id."""
        if self._chart_types is None:
            self._chart_types = [slot.load() for slot in CHARTS]
            await self.recompose()
            self.charts = {slot.chart_id: self.query_one(f"#{slot.chart_id}") for slot in CHARTS}
        return self.charts
