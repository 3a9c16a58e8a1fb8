"""RunsScreen: every run folder in a sortable, filterable table; selected runs overlaid on two charts or
diffed field by field; "use this setup" and "continue from this run" hand a run back to the app."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Static

from torchtui.engine import catalog
from torchtui.tui.charts.compare import CompareChart, colour_of
from torchtui.tui.state import lineage
from torchtui.tui.state.compare import AXES, Overlay

REFRESH_S = 2.0  # how often the folder is looked at again (unchanged files are not reread)
SORTS = ("created", "best metric", "loss", "steps", "name")  # what `s` cycles through


class RunsScreen(Screen):
    """Dismisses with ("use", record), ("continue", record, "best" | "last"), or None (escape)."""

    DEFAULT_CSS = """
    RunsScreen { layout: vertical; }
    RunsScreen #runs-filter { height: 1; border: none; padding: 0 1; background: $boost; }
    RunsScreen #runs-filter:focus { background: $primary 30%; }
    RunsScreen #runs-table { height: 1fr; min-height: 4; }
    RunsScreen #runs-bottom { height: 2fr; min-height: 8; }
    RunsScreen #runs-curves { height: 100%; }
    RunsScreen CompareChart { width: 1fr; height: 100%; }
    RunsScreen #runs-diff { height: 100%; }
    RunsScreen #runs-status { height: 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("space", "toggle_select", "Select", id="runs.select"),
        Binding("u", "use", "Use setup", id="runs.use"),
        Binding("c", "continue_run", "Continue", id="runs.continue"),
        Binding("v", "toggle_view", "Curves/diff", id="runs.view"),
        Binding("slash", "filter", "Filter", key_display="/", id="runs.filter"),
        Binding("s", "cycle_sort", "Sort", id="runs.sort"),
        Binding("m", "cycle_metric", "Metric", id="runs.metric"),
        Binding("a", "toggle_axis", "Step/epoch", id="runs.axis"),
        Binding("l", "log_scale", "Log scale", show=False, id="runs.log"),
        Binding("delete,D", "remove", "Delete/archive", key_display="D", id="runs.remove"),
        Binding("escape", "back", "Back", id="runs.back"),
    ]

    def __init__(self, runs_dir: str | Path, sort: str = "created", title: str = ""):
        super().__init__()
        self.title_text = title  # e.g. the sweep this shows the trials of
        self.catalog = catalog.Catalog(runs_dir)
        self.overlay = Overlay()
        self.records: list[catalog.RunRecord] = []  # listed (filtered, sorted)
        self.selected: list[str] = []  # run paths in the order they were selected (their colours)
        self.sort_key, self.reverse = sort, False
        self.axis = "step"
        self.metric = ""  # the val metric on the right-hand chart ("" until runs are selected)
        self.filter_text = ""
        self._shown_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter: words or field=value (moons train.lr=0.01)",
                    id="runs-filter")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        with ContentSwitcher(initial="runs-curves", id="runs-bottom"):
            with Horizontal(id="runs-curves"):
                yield CompareChart("loss", id="runs-loss")
                yield CompareChart("accuracy", id="runs-metric")
            with Vertical(id="runs-diff"):
                yield DataTable(id="runs-diff-table", cursor_type="none", zebra_stripes=True)
        yield Static(id="runs-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.table = self.query_one("#runs-table", DataTable)
        self.diff = self.query_one("#runs-diff-table", DataTable)
        self.charts = (self.query_one("#runs-loss", CompareChart), self.query_one("#runs-metric", CompareChart))
        self.refresh_runs()
        self.table.focus()
        self.set_interval(REFRESH_S, self.refresh_runs)

    # ------------------------------------------------------------------ the list

    def refresh_runs(self) -> None:
        """Rescan the folder; rebuild the table only when what it shows changed (a run finished, a step)."""
        found = self.catalog.scan(catalog.live_states())
        found = [r for r in found if catalog.matches(r, self.filter_text)] if self.filter_text else found
        key = self.sort_key if self.sort_key != "best metric" else self._primary(found)
        # Sorted, then as a tree: a run's branches (rewinds, continues) right under it, each level sorted.
        rows = lineage.tree(catalog.sort_records(found, key, self.reverse))
        records = [record for record, _ in rows]
        fields = catalog.differing(records)
        shown = (tuple((r.run_id, r.state, r.steps, tuple(r.best.items()), r.problem, depth) for r, depth in rows),
                 tuple(fields), key, self.reverse)
        self.records = records
        if shown != self._shown_key:
            self._shown_key = shown
            self._fill_table(rows, fields, key)
            self._show_selection()
        self._status()

    def _fill_table(self, tree_rows, fields, sort_key: str) -> None:
        # The cursor stays on its run when the rows move, except on the top row: there it stays on top,
        # so a leaderboard watched from its first row keeps showing (and `u` taking) the best run.
        cursor = self.current if self.table.cursor_row > 0 else None
        records = [record for record, _ in tree_rows]
        header, rows = catalog.columns(records, fields)
        for cells, (_, depth) in zip(rows, tree_rows):
            cells[0] = lineage.indented(cells[0], depth)
        self.table.clear(columns=True)
        self.sort_columns = [""] + [k for _, k in header]
        self.table.add_column(" ", key="sel", width=2)
        for title, key in header:
            self.table.add_column(title + (" ↓" if key == sort_key else ""), key=key)
        for record, cells in zip(records, rows):
            self.table.add_row(self._mark(record), *cells, key=record.path)
        if cursor is not None and cursor.path in {r.path for r in records}:
            self.table.move_cursor(row=self.table.get_row_index(cursor.path))

    def _mark(self, record) -> Text:
        if record.path not in self.selected:
            return Text("·", style="dim")
        return Text("●", style=f"rgb{colour_of(self.selected.index(record.path))}".replace(" ", ""))

    @property
    def current(self) -> catalog.RunRecord | None:
        """The run under the cursor."""
        if not self.records or self.table.row_count == 0:
            return None
        try:
            key = self.table.coordinate_to_cell_key(self.table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - the table is being rebuilt
            return None
        return next((r for r in self.records if r.path == key), None)

    def _status(self) -> None:
        live = sum(r.live for r in self.records)
        text = ((f"{self.title_text} · " if self.title_text else "")
                + f"{len(self.records)} run{'s' * (len(self.records) != 1)} in {self.catalog.root}"
                + (f" ({live} live)" if live else "") + f" · {len(self.selected)} selected"
                + f" · sorted by {self.sort_key}{' (reversed)' if self.reverse else ''}"
                + (f" · filter '{self.filter_text}'" if self.filter_text else ""))
        self.query_one("#runs-status", Static).update(Text(text))

    @staticmethod
    def _primary(records) -> str:
        """The metric "best metric" sorts by: accuracy for classification runs, r2 for regression ones."""
        return "accuracy" if any("accuracy" in r.best for r in records) else "r2" if any(
            "r2" in r.best for r in records) else "loss"

    # ------------------------------------------------------------------ selection → overlay and diff

    def action_toggle_select(self) -> None:
        record = self.current
        if record is None:
            return
        if record.path in self.selected:
            self.selected.remove(record.path)
        else:
            self.selected.append(record.path)
        for rec in self.records:  # colours follow selection order, so every mark may change
            if rec.path in self.selected or rec.path == record.path:
                self.table.update_cell(rec.path, "sel", self._mark(rec))
        self._show_selection()
        self._status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is self.table:
            self.action_toggle_select()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.data_table is not self.table or event.column_index == 0:
            return
        key = self.sort_columns[event.column_index]
        if key == "problem":
            return
        self.reverse = not self.reverse if key == self.sort_key else False
        self.sort_key = key
        self.refresh_runs()

    def selected_records(self) -> list[catalog.RunRecord]:
        by_path = {r.path: r for r in self.records}
        return [by_path[p] for p in self.selected if p in by_path]

    def _show_selection(self) -> None:
        chosen = self.selected_records()
        runs = self.overlay.runs(chosen, self.axis)
        metrics = [m for m in catalog.METRICS if m != "loss" and any(m in r.evals for r in runs)] + ["loss"]
        if self.metric not in metrics:
            self.metric = metrics[0] if runs else ""
        loss, metric = self.charts
        loss.show(runs, self.axis)
        metric.show(runs, self.axis, self.metric or "accuracy")
        self._fill_diff(chosen)

    def _fill_diff(self, chosen) -> None:
        self.diff.clear(columns=True)
        if len(chosen) < 2:
            self.diff.add_column("select two or more runs (space) to compare their setups field by field")
            return
        fields = catalog.differing(chosen, assign=False)
        self.diff.add_column("field", key="field")
        for i, record in enumerate(chosen):
            self.diff.add_column(Text(record.run_id, style=f"bold rgb{colour_of(i)}".replace(" ", "")),
                                 key=record.path)
        for name in ("state", "steps"):
            self.diff.add_row(Text(name, style="dim"), *[catalog.fmt(getattr(r, name)) for r in chosen])
        for m in [m for m in catalog.SHOWN_METRICS if any(m in r.best for r in chosen)]:
            self.diff.add_row(Text(f"best {m}", style="dim"), *[catalog.fmt(r.best.get(m)) for r in chosen])
        flat = [catalog.flatten(r.config) for r in chosen]
        for name in fields:
            self.diff.add_row(Text(name, style="bold"), *[catalog.shown(f.get(name)) for f in flat], key=name)
        if not fields:
            self.diff.add_row(Text("(the setups are the same)", style="dim"), *["" for _ in chosen])

    # ------------------------------------------------------------------ keys

    def action_toggle_view(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "runs-diff" if switcher.current == "runs-curves" else "runs-curves"

    def action_cycle_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)] if self.sort_key in SORTS else SORTS[0]
        self.reverse = False
        self.refresh_runs()

    def action_cycle_metric(self) -> None:
        runs = self.overlay.runs(self.selected_records(), self.axis)
        metrics = [m for m in catalog.METRICS if m != "loss" and any(m in r.evals for r in runs)] + ["loss"]
        if runs:
            self.metric = metrics[(metrics.index(self.metric) + 1) % len(metrics)] if self.metric in metrics \
                else metrics[0]
            self._show_selection()

    def action_toggle_axis(self) -> None:
        self.axis = AXES[(AXES.index(self.axis) + 1) % len(AXES)]
        self._show_selection()

    def action_log_scale(self) -> None:
        for chart in self.charts:
            chart.log_scale = not chart.log_scale
            chart.redraw()

    def action_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.refresh_runs()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()

    def action_back(self) -> None:
        if self.focused is self.query_one("#runs-filter", Input):
            self.table.focus()
            return
        self.dismiss(None)

    def action_use(self) -> None:
        record = self._usable_record()
        if record is not None:
            self.dismiss(("use", record))

    def action_continue_run(self) -> None:
        record = self._usable_record()
        if record is None:
            return
        have = [k for k in ("best", "last") if (Path(record.path) / "checkpoints" / f"{k}.pt").is_file()]
        if not have:
            self.app.notify(f"{record.run_id} has no checkpoint to continue from", severity="error")
            return
        if len(have) == 1:
            self.dismiss(("continue", record, have[0]))
            return
        from torchtui.tui.screens.confirm import ConfirmScreen

        self.app.push_screen(
            ConfirmScreen(f"Start a new run from the weights of {record.run_id}, recorded as its branch.",
                          title="Continue from which checkpoint?", yes="best.pt", no="Cancel",
                          extra=("l", "last.pt", "last")),
            lambda answer: self.dismiss(("continue", record, "best" if answer is True else answer))
            if answer else None)

    def _usable_record(self) -> catalog.RunRecord | None:
        record = self.current
        if record is None:
            return None
        if not record.config:
            self.app.notify(f"{record.run_id}: {record.problem or 'no config.yaml'}", severity="error")
            return None
        return record

    def action_remove(self) -> None:
        record = self.current
        if record is None:
            return
        if record.live or record.state == "running":
            self.app.notify(f"{record.run_id} is running: stop it first", severity="error")
            return
        from torchtui.tui.screens.confirm import ConfirmScreen

        self.app.push_screen(
            ConfirmScreen(f"{record.path}\n\nDelete removes the folder and its checkpoints for good; archive moves "
                          f"it to {self.catalog.root / catalog.ARCHIVE}/, out of this list.",
                          title=f"Remove run {record.run_id}?", yes="Delete", no="Cancel",
                          extra=("a", "Archive", "archive")),
            lambda answer: self._remove(record, answer))

    def _remove(self, record, answer) -> None:
        if not answer:
            return
        try:
            if answer == "archive":
                target = self.catalog.root / catalog.ARCHIVE
                target.mkdir(exist_ok=True)
                shutil.move(record.path, target / record.run_id)
            else:
                shutil.rmtree(record.path)
        except OSError as err:
            self.app.notify(f"could not remove {record.run_id}: {err}", severity="error")
            return
        if record.path in self.selected:
            self.selected.remove(record.path)
        self.overlay.forget(record.path)
        self.app.notify(f"{'archived' if answer == 'archive' else 'deleted'} {record.run_id}")
        self.refresh_runs()
        self._show_selection()
