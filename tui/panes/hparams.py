"""The Hyperparameters pane: the training config form, grouped, with settings shown only where they apply."""

from __future__ import annotations

from textual.app import ComposeResult

from torchtui.engine.config import TrainConfig
from torchtui.engine.run.optim import OPTIMIZERS
from torchtui.tui.panes.form import ConfigForm
from torchtui.tui.panes.form_pane import FormPane

SECTION = "train"
LIVE_FIELDS = TrainConfig.LIVE  # marked "live": a running run takes them from its next step
GROUPS = [
    ("Loss", ["loss", "label_smoothing", "huber_delta"]),
    ("Optimizer", ["optimizer", "lr", "weight_decay", "momentum", "nesterov", "betas", "eps"]),
    ("Batches", ["batch_size", "epochs", "accumulate", "eval_every", "overfit_batches"]),
    ("Schedule", ["scheduler", "step_size", "milestones", "gamma", "min_lr", "plateau_patience", "warmup_steps"]),
    ("Clipping", ["grad_clip", "clip_mode"]),
    ("Early stopping and checkpoints", ["early_stop_metric", "early_stop_mode", "early_stop_patience", "early_stop_min_delta",
                        "best_metric", "checkpoint_every"]),
    ("Reproducibility", ["seed", "deterministic", "stats_every"]),
]
# field → (the field it depends on, the values under which it applies)
APPLIES_WHEN = {
    # auto picks cross_entropy for multiclass data, so smoothing can apply there too.
    "label_smoothing": ("loss", ("auto", "cross_entropy")),
    "huber_delta": ("loss", ("huber",)),
    # an optimizer's own settings, from the fields its registry entry takes
    **{name: ("optimizer", tuple(opt for opt, (_, takes) in OPTIMIZERS.items() if name in takes))
       for name in ("momentum", "nesterov", "betas", "eps")},
    "step_size": ("scheduler", ("step",)),
    "milestones": ("scheduler", ("multistep",)),
    "gamma": ("scheduler", ("step", "multistep", "exponential", "plateau")),
    "min_lr": ("scheduler", ("cosine", "plateau")),
    "plateau_patience": ("scheduler", ("plateau",)),
}
EARLY_STOP_FIELDS = ("early_stop_mode", "early_stop_patience", "early_stop_min_delta")


class HparamsPane(FormPane):
    """Edits `TrainConfig`; fields marked "live" change a running run from its next step."""

    SECTION = SECTION

    DEFAULT_CSS = """
    HparamsPane { padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.form = ConfigForm(TrainConfig, SECTION, groups=GROUPS, badges={name: "live" for name in LIVE_FIELDS},
                               id="train-form")
        self._show_relevant()

    def compose(self) -> ComposeResult:
        yield self.form


    def after_set(self) -> None:
        self._show_relevant()

    def on_edit(self, path: str) -> None:
        self._show_relevant()

    def _show_relevant(self) -> None:
        form = self.form
        for name, (depends_on, values) in APPLIES_WHEN.items():
            form.set_relevant(name, form.raw(depends_on) in values)
        stopping = form.raw("early_stop_metric") != ""
        for name in EARLY_STOP_FIELDS:
            form.set_relevant(name, stopping)
