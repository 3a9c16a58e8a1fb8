"""The Hyperparameters pane: the training config form, grouped, with settings shown only where they apply,
and the chosen optimizer's own settings (train.optimizer_args) as fields of their own."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from torchtui.engine.config import TrainConfig
from torchtui.engine.run.optim import OPTIMIZERS, takes
from torchtui.engine.schema import to_plain
from torchtui.tui.panes.form import ConfigForm, head_name
from torchtui.tui.panes.form_pane import FormPane

SECTION = "train"
GROUPS = [
    ("Loss", ["loss", "label_smoothing", "huber_delta"]),
    ("Optimizer", ["optimizer", "lr", "weight_decay", "momentum", "nesterov", "betas", "eps"]),
    # the chosen optimizer's own settings go here, between the two forms
    ("Batches", ["batch_size", "epochs", "accumulate", "eval_every", "eval_budget", "overfit_batches"]),
    ("Schedule", ["scheduler", "step_size", "milestones", "gamma", "min_lr", "plateau_patience", "warmup_steps"]),
    ("Clipping", ["grad_clip", "clip_mode"]),
    ("Early stopping and checkpoints", ["early_stop_metric", "early_stop_mode", "early_stop_patience",
                        "early_stop_min_delta", "best_metric", "checkpoint_every"]),
    ("Reproducibility", ["seed", "deterministic", "stats_every"]),
]
TOP_GROUPS, REST_GROUPS = GROUPS[:2], GROUPS[2:]
ARGS = "optimizer_args"
TOP_FIELDS = [name for _, names in TOP_GROUPS for name in names]
REST_FIELDS = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in TOP_FIELDS and f.name != ARGS]
# field → (the field it depends on, the values under which it applies)
APPLIES_WHEN = {
    # auto picks cross_entropy for multiclass data, so smoothing can apply there too.
    "label_smoothing": ("loss", ("auto", "cross_entropy")),
    "huber_delta": ("loss", ("huber",)),
    # the shared settings an optimizer takes, from its registry entry
    **{name: ("optimizer", takes(name)) for name in ("weight_decay", "momentum", "nesterov", "betas", "eps")},
    "step_size": ("scheduler", ("step",)),
    "milestones": ("scheduler", ("multistep",)),
    "gamma": ("scheduler", ("step", "multistep", "exponential", "plateau")),
    "min_lr": ("scheduler", ("cosine", "plateau")),
    "plateau_patience": ("scheduler", ("plateau",)),
}
EARLY_STOP_FIELDS = ("early_stop_mode", "early_stop_patience", "early_stop_min_delta")
KIND_TYPES = {"float": float, "int": int, "bool": bool, "choice": str, "pair": list[float]}


def field_of(problem: str) -> str:
    """The train field a "train.field…: message" line is about ("" for other sections)."""
    path = problem.partition(": ")[0]
    return head_name(path[len(SECTION) + 1:]) if path.startswith(SECTION + ".") else ""


def args_class(optimizer: str) -> type:
    """A dataclass of one optimizer's own settings, so a ConfigForm edits them like any config section."""
    spec = OPTIMIZERS[optimizer]
    cls = dataclasses.make_dataclass(f"{optimizer}_args", [
        (a.name, KIND_TYPES[a.kind], dataclasses.field(default_factory=lambda a=a: copy.copy(a.default)))
        for a in spec.args])
    cls.CHOICES = {a.name: a.choices for a in spec.args if a.kind == "choice"}
    cls.FIELD_DOCS = {a.name: a.doc for a in spec.args}
    return cls


class OptimizerArgs(Vertical):
    """One optimizer's note and own settings; the pane shows the chosen optimizer's only."""

    DEFAULT_CSS = """
    OptimizerArgs { height: auto; }
    OptimizerArgs .optimizer-note { color: $text-muted; padding-left: 2; }
    """

    def __init__(self, optimizer: str) -> None:
        super().__init__(id=f"train-args-{optimizer}")
        spec = OPTIMIZERS[optimizer]
        self.optimizer = optimizer
        self.defaults = {a.name: a.default for a in spec.args}
        self.explicit: set[str] = set()  # keys the loaded config set, kept even where they equal the default
        self.note = Static(Text(spec.help), classes="optimizer-note") if spec.help else None
        self.form = ConfigForm(args_class(optimizer), f"{SECTION}.{ARGS}", groups=[(f"{optimizer} settings",
                               list(self.defaults))], id_prefix=f"train-args-{optimizer}") if spec.args else None

    def compose(self) -> ComposeResult:
        yield from (w for w in (self.note, self.form) if w is not None)

    def value(self) -> dict:
        """The settings set or changed from their defaults (others take the registry's defaults)."""
        values = self.form.value() if self.form is not None else {}
        return {k: v for k, v in values.items() if k in self.explicit or v != self.defaults[k]}

    def set_values(self, args: dict) -> None:
        self.explicit = set(args)
        if self.form is not None:
            self.form.set_values({**self.defaults, **args})

    def show_problems(self, problems: list[str]) -> None:
        if self.form is not None:
            self.form.show_problems(problems)


class HparamsPane(FormPane):
    """Edits `TrainConfig`; fields marked "live" change a running run from its next step."""

    SECTION = SECTION

    DEFAULT_CSS = """
    HparamsPane { padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        badges = {name: "live" for name in TrainConfig.LIVE}  # a running run takes them when applied (Enter)
        self.form = ConfigForm(TrainConfig, SECTION, groups=TOP_GROUPS, badges=badges, fields=TOP_FIELDS)
        self.args = {name: OptimizerArgs(name) for name, spec in OPTIMIZERS.items() if spec.args or spec.help}
        self.rest = ConfigForm(TrainConfig, SECTION, groups=REST_GROUPS, badges=badges, fields=REST_FIELDS,
                               id="train-rest")
        self._show_relevant()

    def compose(self) -> ComposeResult:
        yield self.form
        yield from self.args.values()
        yield self.rest

    def value(self) -> dict:
        data = {**self.form.value(), **self.rest.value()}
        chosen = self.args.get(data["optimizer"])
        data[ARGS] = chosen.value() if chosen is not None else {}
        return {f.name: data[f.name] for f in dataclasses.fields(TrainConfig)}

    def set_values(self, section: Any, force: bool = False) -> None:
        data = to_plain(section) if dataclasses.is_dataclass(section) else dict(section)
        self.form.set_values(data, force)
        self.rest.set_values(data, force)
        chosen = self.args.get(data.get("optimizer"))
        if chosen is not None and isinstance(data.get(ARGS), dict):
            chosen.set_values(data[ARGS])
        self.after_set()

    def mark_pending(self, names: set[str]) -> None:
        """The live fields holding a typed value that is not applied yet (Enter applies, escape reverts)."""
        self.form.mark_pending(names)
        self.rest.mark_pending(names)

    def show_problems(self, problems: list[str]) -> None:
        self.form.show_problems(problems)
        # Problems with no field of their own show once, in the top form; the rest shows its fields' only.
        self.rest.show_problems([line for line in problems if field_of(line) in REST_FIELDS])
        chosen = self.form.raw("optimizer")
        for name, box in self.args.items():
            box.show_problems(problems if name == chosen else [])

    def after_set(self) -> None:
        self._show_relevant()

    def on_edit(self, path: str) -> None:
        self._show_relevant()

    def _show_relevant(self) -> None:
        for name, (depends_on, values) in APPLIES_WHEN.items():
            source = self.form if depends_on in self.form.specs else self.rest
            (self.form if name in self.form.specs else self.rest).set_relevant(name, source.raw(depends_on) in values)
        stopping = self.rest.raw("early_stop_metric") != ""
        for name in EARLY_STOP_FIELDS:
            self.rest.set_relevant(name, stopping)
        chosen = self.form.raw("optimizer")
        for name, box in self.args.items():
            box.display = name == chosen
