"""RewindScreen: the active run's in-memory snapshots, newest first; pick one (and optionally a new lr) and Enter
branches the run from it (issue 27). The loss chart above marks the snapshot under the cursor."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static

from torchtui.tui.widgets.field_input import FieldInput


def ago(seconds: float) -> str:
    """How long ago, in the unit that reads best: 42 s, 3 min, 2 h."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def lr_change_text(changes: dict, base: float | None) -> str:
    """What a rewind's changes do to the lr, in words: lr ÷2 (0.003 → 0.0015), lr 0.01."""
    if "lr_scale" in changes:
        factor = changes["lr_scale"]
        shown = f"×{factor:g}" if factor >= 1 else f"÷{1 / factor:g}"
        return f"lr {shown}" + (f" ({base:g} → {base * factor:g})" if base else "")
    if "lr" in changes:
        return f"lr {changes['lr']:g}"
    return "the snapshot's settings as they were"


class RewindScreen(ModalScreen[tuple | None]):
    """Waits for the app's `show(SnapshotsListed)`; dismisses with (step, changes) or None (escape).

    `changes` are Rewind's (SetHparams' names): {"lr_scale": f} for + and -, {"lr": x} for a typed lr.
    `check_lr(x)` returns a problem with a typed lr ("" if fine); `highlight(step)` follows the cursor."""

    DEFAULT_CSS = """
    RewindScreen { align: center bottom; }
    RewindScreen > #dialog {
        width: 100%; max-width: 110; height: auto; max-height: 60%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    RewindScreen #rewind-title { text-style: bold; width: 100%; }
    RewindScreen #rewind-table { height: auto; max-height: 12; }
    RewindScreen #rewind-lr { height: 1; border: none; padding: 0 1; background: $boost; display: none; }
    RewindScreen #rewind-lr.-shown { display: block; }
    RewindScreen #rewind-change { height: auto; width: 100%; }
    RewindScreen #rewind-hint { height: auto; width: 100%; color: $text-muted; }
    """

    BINDINGS: ClassVar = [
        Binding("enter", "rewind", "Rewind", id="rewind.go"),
        Binding("minus", "scale(0.5)", "lr ÷2", key_display="-", id="rewind.lr_down"),
        Binding("plus,equals_sign", "scale(2.0)", "lr ×2", key_display="+", id="rewind.lr_up"),
        Binding("l", "type_lr", "Type an lr", id="rewind.lr"),
        Binding("0", "reset", "No change", id="rewind.reset"),
        Binding("escape", "close", "Cancel", id="rewind.cancel"),
    ]

    def __init__(self, run_id: str, base_lr: float | None, check_lr: Callable[[float], str],
                 highlight: Callable[[int | None], None] = lambda step: None):
        super().__init__()
        self.run_id, self.base_lr, self.check_lr, self.highlight = run_id, base_lr, check_lr, highlight
        self.listed = None
        self.snapshots: list[dict] = []  # newest first, as the table shows them
        self.scale = 1.0
        self.typed: float | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Rewind {self.run_id}: pick a snapshot; the run stops and a branch goes on from it",
                        id="rewind-title", markup=False)
            yield DataTable(id="rewind-table", cursor_type="row", zebra_stripes=True)
            yield FieldInput(placeholder="lr for the branch (Enter keeps it, esc drops it)", id="rewind-lr")
            yield Static("", id="rewind-change", markup=False)
            yield Static("listing the run's snapshots…", id="rewind-hint", markup=False)

    def on_mount(self) -> None:
        self.table = self.query_one("#rewind-table", DataTable)
        self.table.focus()
        if self.listed is not None:
            self.show(self.listed)
        self._changed()

    # ------------------------------------------------------------------ the list

    def show(self, listed) -> None:
        """Fill the table from a SnapshotsListed (oldest first there, newest first here)."""
        self.listed = listed
        if not hasattr(self, "table"):  # before on_mount (is_mounted is still False inside it): it shows it then
            return
        self.snapshots = list(reversed(listed.snapshots))
        metric = next((name for snap in self.snapshots for name in (snap.get("val") or {})
                       if name != "loss"), "loss")
        self.table.clear(columns=True)
        for title in ("step", "time", "", "train loss", f"val {metric}"):
            self.table.add_column(title)
        now = time.time()
        for snap in self.snapshots:
            when = snap.get("time") or 0.0
            val = (snap.get("val") or {}).get(metric)
            mark = "" if snap.get("run_id") in (None, self.run_id) else f"({snap['run_id'][-12:]})"
            self.table.add_row(Text(f"{snap['step']:,}", justify="right"), time.strftime("%H:%M:%S",
                               time.localtime(when)), ago(now - when) + (f" {mark}" if mark else ""),
                               _num(snap.get("loss")), _num(val))
        hint = self.query_one("#rewind-hint", Static)
        if listed.error:
            hint.update(f"no snapshots: {listed.error}  ·  esc closes")
        elif not self.snapshots:
            hint.update("no snapshots yet: the run takes one every few seconds (train.snapshot_every)  ·  esc")
        else:
            hint.update("↑↓ pick  ·  - lr ÷2  + lr ×2  l type an lr  0 no change  ·  Enter rewind  ·  esc cancel")
            self.table.move_cursor(row=0)
            self.highlight(self.snapshots[0]["step"])

    @property
    def chosen(self) -> dict | None:
        if not self.snapshots or self.table.row_count == 0:
            return None
        return self.snapshots[min(self.table.cursor_row, len(self.snapshots) - 1)]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        chosen = self.chosen
        self.highlight(chosen["step"] if chosen else None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_rewind()

    # ------------------------------------------------------------------ the change made with it

    @property
    def changes(self) -> dict:
        if self.typed is not None:
            return {"lr": self.typed * self.scale}
        return {"lr_scale": self.scale} if self.scale != 1.0 else {}

    def _changed(self) -> None:
        self.query_one("#rewind-change", Static).update("branch with: " + lr_change_text(self.changes, self.base_lr))

    def action_scale(self, factor: float) -> None:
        self.scale *= factor
        self._changed()

    def action_reset(self) -> None:
        self.scale, self.typed = 1.0, None
        self._changed()

    def action_type_lr(self) -> None:
        field = self.query_one("#rewind-lr", Input)
        field.add_class("-shown")
        field.value = f"{self.typed:g}" if self.typed is not None else ""
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        try:
            value = float(text)
            problem = self.check_lr(value)
        except ValueError:
            problem = f"train.lr: '{text}' is not a number (type one such as 0.001 or 1e-3)"
        if problem:
            self.notify(problem, severity="error")
            return
        self.typed, self.scale = value, 1.0
        self._close_field()
        self._changed()

    def _close_field(self) -> None:
        self.query_one("#rewind-lr", Input).remove_class("-shown")
        self.table.focus()

    # ------------------------------------------------------------------ answers

    def action_rewind(self) -> None:
        if self.focused is self.query_one("#rewind-lr", Input):
            return  # the field's own Enter (Input.Submitted) takes it
        chosen = self.chosen
        if chosen is None:
            self.notify("no snapshot to rewind to yet", severity="warning")
            return
        self.highlight(None)
        self.dismiss((chosen["step"], self.changes))

    def action_close(self) -> None:
        if self.focused is self.query_one("#rewind-lr", Input):
            self._close_field()
            return
        self.highlight(None)
        self.dismiss(None)


def _num(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "–"
