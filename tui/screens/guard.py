"""GuardScreen: the spike guard tripped and paused the run (train.guard ask); one key each for what to do about it:
roll back and skip the bad batches, roll back and halve the lr, show the offending batch, or continue."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

KINDS = {"nonfinite": "a non-finite loss or gradient", "loss_spike": "a loss spike", "grad_spike": "a gradient spike"}


class GuardScreen(ModalScreen[str | None]):
    """Dismisses with the GuardAnswer action ("rollback", "halve_lr", "continue"), or None (escape: the run stays
    paused; space resumes it, w rewinds it)."""

    DEFAULT_CSS = """
    GuardScreen { align: center middle; }
    GuardScreen > #dialog {
        width: 100%; max-width: 90; height: auto; max-height: 100%;
        border: thick $error; background: $surface; padding: 0 1;
    }
    GuardScreen #guard-title { text-style: bold; width: 100%; }
    GuardScreen #guard-reason { width: 100%; margin-bottom: 1; }
    GuardScreen #guard-choices { width: 100%; }
    GuardScreen #guard-batch-info { display: none; margin-top: 1; color: $text-muted; }
    GuardScreen #guard-batch { height: auto; max-height: 12; display: none; }
    GuardScreen #guard-batch.-shown, GuardScreen #guard-batch-info.-shown { display: block; }
    """

    BINDINGS: ClassVar = [
        Binding("b", "answer('rollback')", "Roll back, skip the batch", id="guard.rollback"),
        Binding("h", "answer('halve_lr')", "Roll back, lr ÷2", id="guard.halve_lr"),
        Binding("s", "show_batch", "Show the batch", id="guard.show"),
        Binding("c", "answer('continue')", "Continue", id="guard.continue"),
        Binding("escape", "close", "Leave it paused", id="guard.close"),
    ]

    def __init__(self, tripped, lr: float | None = None):
        super().__init__()
        self.tripped, self.lr = tripped, lr

    @property
    def can_roll_back(self) -> bool:
        return self.tripped.snapshot_step is not None

    def compose(self) -> ComposeResult:
        t = self.tripped
        with Vertical(id="dialog"):
            yield Label(f"Spike guard: {KINDS.get(t.kind, t.kind)} at step {t.step:,} — the run is paused",
                        id="guard-title", markup=False)
            yield Static(t.reason, id="guard-reason", markup=False)
            yield Static(self._choices(), id="guard-choices", markup=False)
            yield Static("", id="guard-batch-info", markup=False)
            yield DataTable(id="guard-batch", cursor_type="none", zebra_stripes=True)

    def _choices(self) -> str:
        t = self.tripped
        batches = len(t.batches)
        skip = f"skip the {batches} batch{'es' * (batches != 1)} of step {t.step:,}" if batches else \
            f"skip the batch of step {t.step:,}"
        if self.can_roll_back:
            back = f"roll back {t.step - t.snapshot_step:,} steps (to step {t.snapshot_step:,})"
            halve = f" ({self.lr:g} → {self.lr / 2:g})" if self.lr else ""
            lines = [f"b  {back} and {skip}", f"h  {back}, {skip}, and halve the lr{halve}"]
        else:
            lines = ["b, h  (no snapshot before this step to roll back to)"]
        return "\n".join(lines + ["s  show the offending batch (its worst samples, per-sample loss)",
                                  "c  continue as it is", "esc  leave the run paused (space resumes, w rewinds)"])

    def action_answer(self, action: str) -> None:
        if action != "continue" and not self.can_roll_back:
            self.notify("no snapshot before this step to roll back to: c continues, x stops, w rewinds further "
                        "back", severity="warning")
            return
        self.dismiss(action)

    def action_show_batch(self) -> None:
        table, info = self.query_one("#guard-batch", DataTable), self.query_one("#guard-batch-info", Static)
        if table.has_class("-shown"):
            table.remove_class("-shown")
            info.remove_class("-shown")
            return
        t = self.tripped
        table.clear(columns=True)
        table.add_columns("train row", "loss")
        for row, loss in t.worst:
            table.add_row(f"{row:,}", f"{loss:.4g}" if isinstance(loss, (int, float)) else str(loss))
        if not t.worst:
            table.add_row("–", "no per-sample losses (the step's loss was not finite)")
        where = ", ".join(f"epoch {e} batch {b}" for e, b in t.batches[:4]) or "the step's batch"
        info.update(f"{len(t.samples)} samples in {where}; the {len(t.worst)} with the highest loss:")
        info.add_class("-shown")
        table.add_class("-shown")

    def action_close(self) -> None:
        self.dismiss(None)
