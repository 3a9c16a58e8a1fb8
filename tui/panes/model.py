"""The Model pane: the architecture kind and its settings, conv blocks and hidden layers as editable lists,
fine-tuning and init, and the engine's layer summary."""

from __future__ import annotations

import dataclasses

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static

from torchtui.engine.config import ConvConfig, LayerConfig, ModelConfig
from torchtui.engine.protocol import ModelDescribed
from torchtui.tui.panes.form import ConfigChanged, ConfigForm
from torchtui.tui.panes.layer_list import Column, LayerList

SECTION = "model"
TOP_GROUPS = [("Network", ["kind", "cell", "hidden_size", "num_layers", "bidirectional", "rnn_dropout", "pooling",
                           "n_layer", "n_head", "d_model", "d_ff", "dropout", "tie_embeddings",
                           "module", "arch", "kwargs"])]
BOTTOM_GROUPS = [("Fine-tuning", ["pretrained", "strict", "replace_head", "freeze", "freeze_first"]),
                 ("Init", ["init", "init_a", "init_b", "init_std", "seed"])]
# field → (the field it depends on, the values under which it applies)
APPLIES_WHEN = {
    **{name: ("kind", ("rnn",)) for name in ("cell", "hidden_size", "num_layers", "bidirectional", "rnn_dropout",
                                              "pooling")},
    **{name: ("kind", ("transformer",)) for name in ("n_layer", "n_head", "d_model", "d_ff", "dropout",
                                                      "tie_embeddings")},
    "module": ("kind", ("custom",)), "arch": ("kind", ("torchvision",)), "kwargs": ("kind", ("custom", "torchvision")),
    "strict": ("pretrained", None), "init_a": ("init", ("uniform",)), "init_b": ("init", ("uniform",)),
    "init_std": ("init", ("normal",)),
}
LAYER_LINES = [[Column("units", "units", 7), Column("activation", "activation", 14),
                Column("dropout", "dropout", 7), Column("norm", "norm", 8), Column("negative_slope", "slope", 7)]]
CONV_LINES = [[Column("channels", "chan", 6), Column("kernel", "kern", 4), Column("stride", "str", 4),
               Column("padding", "pad", 4), Column("activation", "activation", 14)],
              [Column("norm", "norm", 8), Column("pool", "pool", 6), Column("pool_size", "×", 3),
               Column("dropout", "drop", 5), Column("negative_slope", "slope", 5)]]
LAYER_TITLES = {"mlp": "Hidden layers", "cnn": "Head layers (after the conv blocks)",
                "rnn": "Head layers (after the recurrent layer)"}


def shape_text(shape: list) -> str:
    """(N, 64): the batch dimension (-1) written as N."""
    return "(" + ", ".join("N" if i == 0 and d == -1 else str(d) for i, d in enumerate(shape)) + ")" if shape else "?"


class ModelPane(VerticalScroll):
    """Edits `ModelConfig`: a (add), d (delete), shift+↑/↓ or [ ] (move) act on the focused list."""

    # Never focused itself: focusing a pane re-styled its 460 widgets (1.8 s of the UI thread on a 2-core
    # machine, keys waiting behind it). Keys go to the app, or to a field (tab goes into the pane's first).
    can_focus = False

    DEFAULT_CSS = """
    ModelPane { padding: 0 1; }
    ModelPane .group-title { text-style: bold; color: $accent; }
    ModelPane #model-summary-title { margin-top: 1; }
    ModelPane #model-summary { height: auto; max-height: 16; }
    ModelPane #model-totals { color: $text-muted; }
    ModelPane #model-totals.-error { color: $text-error; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        # Built here, not in compose, so values, problems and summaries can arrive before mounting.
        self.top = ConfigForm(ModelConfig, SECTION, groups=TOP_GROUPS, fields=TOP_GROUPS[0][1], id="model-top")
        self.bottom = ConfigForm(ModelConfig, SECTION, groups=BOTTOM_GROUPS,
                                 fields=[n for _, names in BOTTOM_GROUPS for n in names], id="model-bottom")
        self.conv_list = LayerList(SECTION, "conv", ConvConfig, CONV_LINES, title="Conv blocks",
                              empty="no conv blocks: a cnn needs at least one (a adds one)")
        self.layer_list = LayerList(SECTION, "layers", LayerConfig, LAYER_LINES, title="Hidden layers",
                                empty="no hidden layers: a linear model (a adds one)")
        defaults = ModelConfig()
        self.conv_list.set_items(defaults.conv)
        self.layer_list.set_items(defaults.layers)
        self.table = DataTable(id="model-summary", cursor_type="row", zebra_stripes=True)
        self._early_summary: ModelDescribed | None = None  # DataTable needs a running app for its columns
        self.totals = Static("waiting for the engine…", id="model-totals")
        self._show_relevant()

    def compose(self) -> ComposeResult:
        yield self.top
        yield self.conv_list
        yield self.layer_list
        yield self.bottom
        yield Label("Summary", classes="group-title", id="model-summary-title")
        yield self.table
        yield self.totals

    def on_mount(self) -> None:
        self.table.add_columns("layer", "type", "output", "params")
        if self._early_summary is not None:
            self._show_summary(self._early_summary)

    # ------------------------------------------------------------------ values

    def value(self) -> dict:
        """The whole ModelConfig as plain data, in its field order (as the YAML reads)."""
        data = {**self.top.value(), **self.bottom.value(), "conv": self.conv_list.value(),
                "layers": self.layer_list.value()}
        return {f.name: data[f.name] for f in dataclasses.fields(ModelConfig)}

    def set_values(self, model: ModelConfig | dict) -> None:
        data = dataclasses.asdict(model) if dataclasses.is_dataclass(model) else dict(model)
        if "layers" in data:
            self.layer_list.set_items(data["layers"])
        if "conv" in data:
            self.conv_list.set_items(data["conv"])
        rest = {k: v for k, v in data.items() if k not in ("layers", "conv")}
        self.top.set_values(rest)
        self.bottom.set_values(rest)
        self._show_relevant()

    def focus_first(self) -> bool:
        return self.top.focus_first()

    @property
    def current(self) -> int | None:
        """The hidden layer whose row last had focus."""
        return self.layer_list.current

    # The hidden-layer list's editing, under the names the app and tests use.
    def add_layer(self, index: int | None = None) -> None:
        self.layer_list.add(index)

    def remove_layer(self, index: int) -> None:
        self.layer_list.remove(index)

    def move_layer(self, index: int, delta: int) -> None:
        self.layer_list.move(index, delta)

    def _show_relevant(self) -> None:
        raw = {**{n: self.top.raw(n) for n in self.top.specs}, **{n: self.bottom.raw(n) for n in self.bottom.specs}}
        for name, (depends, values) in APPLIES_WHEN.items():
            form = self.top if name in self.top.specs else self.bottom
            relevant = bool(str(raw[depends]).strip()) if values is None else raw[depends] in values
            form.set_relevant(name, relevant)
        kind = raw["kind"]
        self.conv_list.display = kind == "cnn"
        self.layer_list.display = kind in LAYER_TITLES
        self.layer_list.set_title(LAYER_TITLES.get(kind, "Hidden layers"))

    def on_config_form_changed(self, event: ConfigForm.Changed) -> None:
        event.stop()
        self._show_relevant()
        self.post_message(ConfigChanged(SECTION, event.path))

    # ------------------------------------------------------------------ problems and summary

    def show_problems(self, problems: list[str]) -> None:
        """Inline messages for model.* paths: fields in their forms, list items next to their rows."""
        self.top.show_problems(problems)
        self.bottom.show_problems(problems)
        self.conv_list.show_problems(problems)
        self.layer_list.show_problems(problems)

    def show_summary(self, reply: ModelDescribed) -> None:
        """Fill the layer table and totals from the engine's reply, or show why it could not build the model."""
        if not self.table.columns:  # not mounted yet (is_mounted is still false inside on_mount)
            self._early_summary = reply
            return
        self._show_summary(reply)

    def _show_summary(self, reply: ModelDescribed) -> None:
        table, totals = self.table, self.totals
        table.clear()
        totals.set_class(bool(reply.error) or reply.summary is None, "-error")
        if reply.error or reply.summary is None:
            totals.update(Text(f"can't build the model: {reply.error or 'no summary'}"))
            return
        summary = reply.summary
        for row in summary.get("rows", []):
            frozen = row["trainable"] < row["params"]
            table.add_row(row["name"], row["type"], shape_text(row.get("output_shape", [])),
                          Text(f"{row['params']:,}" + (" ❄" if frozen else ""), justify="right"))
        total, trainable = summary.get("total", 0), summary.get("trainable", 0)
        frozen = f", {total - trainable:,} frozen" if total != trainable else ""
        first = f"{total:,} parameters{frozen} · input {shape_text(summary.get('input_shape', []))}"
        totals.update(Text("\n".join([first, *summary.get("notes", [])])))  # a transformer's per-block summary

    def edit_list(self, key: str, operation: str) -> None:
        """Add, remove or move (up, down) an item of the hidden layers or conv blocks (`key`), acting on the
        item last focused, else the end of the list."""
        layer_list = self.layer_list if key == "layers" else self.conv_list
        if operation == "add":
            layer_list.action_add()
        elif operation == "remove":
            layer_list.remove(layer_list.current if layer_list.current is not None else len(layer_list.value()) - 1)
        else:
            layer_list.action_move(-1 if operation == "up" else 1)
