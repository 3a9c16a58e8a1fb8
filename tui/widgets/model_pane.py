"""The Model pane: hidden layers as an editable list, weight init, and the engine's layer summary."""

from __future__ import annotations

import dataclasses
import re

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from torchtui.engine.config import LayerConfig, ModelConfig
from torchtui.engine.protocol import ModelDescribed

from .form import CONTROL_CHANGES, ConfigChanged, ConfigForm, field_specs, parse_raw, problems_for, to_raw

SECTION = "model"
LAYER_SPECS = {spec.name: spec for spec in field_specs(LayerConfig)}
COLUMNS = ("units", "activation", "dropout", "norm", "negative_slope")
CONTROL_ID = re.compile(r"^model-layers-(\d+)-(\w+)$")
LAYER_PATH = re.compile(r"^layers\[(\d+)\](?:\.(\w+))?$")
GROUPS = [("Network", ["kind", "init", "init_a", "init_b", "init_std", "seed"])]
INIT_FIELDS = {"init_a": ("uniform",), "init_b": ("uniform",), "init_std": ("normal",)}


def shape_text(shape: list) -> str:
    """(N, 64): the batch dimension (-1) written as N."""
    return "(" + ", ".join("N" if i == 0 and d == -1 else str(d) for i, d in enumerate(shape)) + ")" if shape else "?"


class LayerRow(Vertical):
    """One hidden layer's controls; row i keeps ids `model-layers-{i}-…`, and moves change its values."""

    def __init__(self, index: int, raw: dict) -> None:
        super().__init__(id=f"model-layers-{index}", classes="layer-row")
        self.index = index
        self._initial = dict(raw)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="layer-controls"):
            yield Label(f"{self.index + 1}", classes="col-index")
            for name in COLUMNS:
                yield self._control(name, self._initial[name])
        yield Static("", classes="error", id=f"model-layers-{self.index}-error")

    def _control(self, name: str, raw) -> Widget:
        spec, wid = LAYER_SPECS[name], f"model-layers-{self.index}-{name}"
        if spec.kind == "choice":
            options = [(str(v), v) for v in spec.choices]
            return Select(options, value=raw, allow_blank=False, compact=True, id=wid, tooltip=spec.doc,
                          classes=f"col-{name}")
        control = Input(raw, id=wid, tooltip=spec.doc, compact=True, select_on_focus=False, classes=f"col-{name}")
        control.display = name != "negative_slope" or self._initial["activation"] == "leaky_relu"
        return control

    def control(self, name: str) -> Widget:
        return self.query_one(f"#model-layers-{self.index}-{name}")

    def show(self, raw: dict) -> None:
        """Show a layer's values (before mounting they are only remembered)."""
        self._initial = dict(raw)
        if not self.is_mounted or not self.children:
            return
        with self.prevent(*CONTROL_CHANGES):
            for name in COLUMNS:
                control = self.control(name)
                if control.value != raw[name] and (not isinstance(control, Select) or
                                                   raw[name] in LAYER_SPECS[name].choices):
                    control.value = raw[name]
        self.control("negative_slope").display = raw["activation"] == "leaky_relu"

    def show_problems(self, messages: list[str], fields: set[str]) -> None:
        if not self.is_mounted or not self.children:
            return
        self.set_class(bool(messages), "-problem")
        for name in COLUMNS:
            self.control(name).set_class(name in fields, "-error")
        self.query_one(f"#model-layers-{self.index}-error", Static).update(
            Text("\n".join(f"✗ {m}" for m in messages)))


class ModelPane(VerticalScroll):
    """Edits `ModelConfig`: layers with a (add), d (delete), shift+↑/↓ or [ ] (move); then init and summary."""

    DEFAULT_CSS = """
    ModelPane { padding: 0 1; }
    ModelPane .group-title { text-style: bold; color: $accent; }
    ModelPane .layer-row, ModelPane .layer-controls, ModelPane #model-layers { height: auto; }
    ModelPane .layer-header { height: 1; color: $text-muted; }
    ModelPane .layer-controls > *, ModelPane .layer-header > * { margin-right: 1; }
    ModelPane .col-index { width: 3; }
    ModelPane .col-units { width: 7; }
    ModelPane .col-activation { width: 1fr; min-width: 12; max-width: 14; }
    ModelPane .col-dropout { width: 7; }
    ModelPane .col-norm { width: 8; }
    ModelPane .col-negative_slope { width: 7; }
    ModelPane .error { display: none; color: $text-error; padding-left: 4; }
    ModelPane .layer-row.-problem .error { display: block; }
    ModelPane .-error { background-tint: $error 30%; }
    ModelPane #model-no-layers { color: $text-muted; }
    ModelPane #model-layers-problems { display: none; color: $text-error; }
    ModelPane #model-layers-problems.-shown { display: block; }
    ModelPane #model-layer-buttons { height: auto; margin-bottom: 1; }
    ModelPane #model-layer-buttons Button { min-width: 5; margin-right: 1; }
    ModelPane #model-summary-title { margin-top: 1; }
    ModelPane #model-summary { height: auto; max-height: 16; }
    ModelPane #model-totals { color: $text-muted; }
    ModelPane #model-totals.-error { color: $text-error; }
    """

    BINDINGS = [
        Binding("a", "add_layer", "Add layer", id="model.add_layer"),
        Binding("d", "remove_layer", "Remove layer", id="model.remove_layer"),
        Binding("shift+up,left_square_bracket", "move_layer(-1)", "Layer up", key_display="[", id="model.layer_up"),
        Binding("shift+down,right_square_bracket", "move_layer(1)", "Layer down", key_display="]",
                id="model.layer_down"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._layers = [self._raw_layer(layer) for layer in ModelConfig().layers]
        # Rows are pooled, never removed: ids stay unique without waiting for removals to finish.
        self._rows: list[LayerRow] = []
        self.current: int | None = None  # the layer whose row last had focus
        # Built here, not in compose, so values, problems and summaries can arrive before mounting.
        self.form = ConfigForm(ModelConfig, SECTION, groups=GROUPS, id="model-form")
        self.table = DataTable(id="model-summary", cursor_type="row", zebra_stripes=True)
        self._early_summary: ModelDescribed | None = None  # DataTable needs a running app for its columns
        self.totals = Static("waiting for the engine…", id="model-totals")
        self.layer_problems = Static("", id="model-layers-problems")
        self._show_relevant()

    @staticmethod
    def _raw_layer(layer: LayerConfig | dict) -> dict:
        if dataclasses.is_dataclass(layer):
            data = dataclasses.asdict(layer)
        else:  # a mapping, or the `64` shorthand presets allow
            data = {**dataclasses.asdict(LayerConfig()), **LayerConfig.from_shorthand(layer)}
        return {name: to_raw(spec.kind, data[name]) for name, spec in LAYER_SPECS.items()}

    def compose(self) -> ComposeResult:
        yield Label("Hidden layers", classes="group-title")
        with Horizontal(classes="layer-header"):
            for text, name in (("#", "index"), ("units", "units"), ("activation", "activation"),
                               ("dropout", "dropout"), ("norm", "norm"), ("slope", "negative_slope")):
                yield Label(text, classes=f"col-{name}", id=f"model-header-{name}")
        self._rows = [LayerRow(i, raw) for i, raw in enumerate(self._layers)]
        yield Vertical(*self._rows, id="model-layers")
        yield Static("no hidden layers: a linear model (a adds one)", id="model-no-layers")
        yield self.layer_problems
        with Horizontal(id="model-layer-buttons"):
            yield Button("+ add", id="model-add", compact=True, tooltip="Add a layer after the current one (a)")
            yield Button("− remove", id="model-remove", compact=True, tooltip="Remove the current layer (d)")
            yield Button("↑", id="model-up", compact=True, tooltip="Move the current layer up ([ or shift+↑)")
            yield Button("↓", id="model-down", compact=True, tooltip="Move the current layer down (] or shift+↓)")
        yield self.form
        yield Label("Summary", classes="group-title", id="model-summary-title")
        yield self.table
        yield self.totals

    def on_mount(self) -> None:
        self.table.add_columns("layer", "type", "output", "params")
        self._sync_rows()
        if self._early_summary is not None:
            self.show_summary(self._early_summary)

    # ------------------------------------------------------------------ values

    def value(self) -> dict:
        """The whole ModelConfig as plain data, layers as a list of dicts."""
        layers = [{name: parse_raw(LAYER_SPECS[name].kind, raw[name]) for name in LAYER_SPECS} for raw in self._layers]
        return self._ordered(self.form.value(), layers)

    @staticmethod
    def _ordered(data: dict, layers: list) -> dict:
        """Keys in ModelConfig's field order, so the dict reads like the YAML it becomes."""
        return {f.name: layers if f.name == "layers" else data[f.name] for f in dataclasses.fields(ModelConfig)}

    def set_values(self, model: ModelConfig | dict) -> None:
        data = dataclasses.asdict(model) if dataclasses.is_dataclass(model) else dict(model)
        if "layers" in data:
            self._layers = [self._raw_layer(layer) for layer in data["layers"]]
            self._sync_rows()
        self.form.set_values({k: v for k, v in data.items() if k != "layers"})
        self._show_relevant()

    def focus_first(self) -> None:
        rows = self._rows[: len(self._layers)]
        if rows and rows[0].is_mounted:
            rows[0].control("units").focus()
        else:
            self.form.focus_first()

    def _sync_rows(self) -> None:
        """Make the first len(layers) rows show the layers, mounting rows as needed and hiding the rest."""
        if not self.is_mounted:
            return
        container = self.query_one("#model-layers", Vertical)
        while len(self._rows) < len(self._layers):
            row = LayerRow(len(self._rows), self._layers[len(self._rows)])
            self._rows.append(row)
            container.mount(row)
        for i, row in enumerate(self._rows):
            row.display = i < len(self._layers)
            if i < len(self._layers):
                row.show(self._layers[i])
        leaky = any(raw["activation"] == "leaky_relu" for raw in self._layers)
        self.query_one("#model-header-negative_slope").display = leaky
        self.query_one("#model-no-layers").display = not self._layers

    def _show_relevant(self) -> None:
        init = self.form.raw("init")
        for name, inits in INIT_FIELDS.items():
            self.form.set_relevant(name, init in inits)

    # ------------------------------------------------------------------ editing layers

    def add_layer(self, index: int | None = None) -> None:
        """Insert a layer at `index` (default: the end), copying the one before it (defaults when first)."""
        index = len(self._layers) if index is None else max(0, min(index, len(self._layers)))
        template = dict(self._layers[index - 1]) if index > 0 else self._raw_layer(LayerConfig())
        self._layers.insert(index, template)
        self._structure_changed(index)

    def remove_layer(self, index: int) -> None:
        """Delete the layer at `index` (no-op when out of range)."""
        if 0 <= index < len(self._layers):
            del self._layers[index]
            self._structure_changed(min(index, len(self._layers) - 1) if self._layers else None)

    def move_layer(self, index: int, delta: int) -> None:
        """Move the layer at `index` by `delta` places (no-op past either end)."""
        target = index + delta
        if 0 <= index < len(self._layers) and 0 <= target < len(self._layers) and delta:
            self._layers.insert(target, self._layers.pop(index))
            self._structure_changed(target)

    def _structure_changed(self, current: int | None) -> None:
        column = self._focused_column()
        self.current = current
        self._sync_rows()
        if current is not None and self.is_mounted:
            # A freshly mounted row has no children yet: focus once it has been laid out.
            self.call_after_refresh(self._focus_layer, current, column or "units")
        self.post_message(ConfigChanged(SECTION, f"{SECTION}.layers"))

    def _focused_column(self) -> str | None:
        focused = self.screen.focused if self.is_mounted else None
        match = CONTROL_ID.match(focused.id or "") if focused is not None else None
        return match.group(2) if match else None

    def _focus_layer(self, index: int, column: str) -> None:
        if index < len(self._rows) and self._rows[index].is_mounted and self._rows[index].children:
            control = self._rows[index].control(column)
            (control if control.display else self._rows[index].control("units")).focus()

    def action_add_layer(self) -> None:
        self.add_layer(None if self.current is None else self.current + 1)

    def action_remove_layer(self) -> None:
        if self.current is not None:
            self.remove_layer(self.current)

    def action_move_layer(self, delta: int) -> None:
        if self.current is not None:
            self.move_layer(self.current, delta)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"model-add": self.action_add_layer, "model-remove": self.action_remove_layer,
                   "model-up": lambda: self.action_move_layer(-1), "model-down": lambda: self.action_move_layer(1)}
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    def on_descendant_focus(self, event) -> None:
        match = CONTROL_ID.match(event.widget.id or "")
        if match and int(match.group(1)) < len(self._layers):
            self.current = int(match.group(1))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._layer_control_changed(event)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._layer_control_changed(event)

    def _layer_control_changed(self, event: Input.Changed | Select.Changed) -> None:
        match = CONTROL_ID.match(event.control.id or "")
        if not match or int(match.group(1)) >= len(self._layers):
            return
        event.stop()
        index, name = int(match.group(1)), match.group(2)
        # Selects announce their value when mounted, and show() echoes values: only a difference is an edit.
        if self._layers[index][name] == event.value:
            return
        self._layers[index][name] = event.value
        if name == "activation":
            self._sync_rows()
        self.post_message(ConfigChanged(SECTION, f"{SECTION}.layers[{index}].{name}"))

    def on_config_form_changed(self, event: ConfigForm.Changed) -> None:
        event.stop()
        self._show_relevant()
        self.post_message(ConfigChanged(SECTION, event.path))

    # ------------------------------------------------------------------ problems and summary

    def show_problems(self, problems: list[str]) -> None:
        """Inline messages for model.* paths, including model.layers[i].field next to layer i."""
        self.form.show_problems(problems)
        per_row: dict[int, tuple[list[str], set[str]]] = {}
        general = []
        for rest, messages in problems_for(problems, SECTION).items():
            match = LAYER_PATH.match(rest)
            if match:
                messages_of_row, fields = per_row.setdefault(int(match.group(1)), ([], set()))
                name = match.group(2)
                fields.add(name or "")
                messages_of_row.extend(f"{name}: {m}" if name else m for m in messages)
            elif rest == "layers" or rest.startswith("layers"):
                general.extend(f"{rest}: {m}" for m in messages)
        for i, row in enumerate(self._rows):
            row.show_problems(*per_row.get(i, ([], set())))
        self.layer_problems.update(Text("\n".join(general)))
        self.layer_problems.set_class(bool(general), "-shown")

    def show_summary(self, reply: ModelDescribed) -> None:
        """Fill the layer table and totals from the engine's reply, or show why it could not build the model."""
        if not self.is_mounted:
            self._early_summary = reply
            return
        table, totals = self.table, self.totals
        table.clear()
        totals.set_class(bool(reply.error) or reply.summary is None, "-error")
        if reply.error or reply.summary is None:
            totals.update(Text(f"can't build the model: {reply.error or 'no summary'}"))
            return
        summary = reply.summary
        for row in summary.get("rows", []):
            table.add_row(row["name"], row["type"], shape_text(row.get("output_shape", [])),
                          Text(f"{row['params']:,}", justify="right"))
        total, trainable = summary.get("total", 0), summary.get("trainable", 0)
        frozen = f", {total - trainable:,} frozen" if total != trainable else ""
        totals.update(Text(f"{total:,} parameters{frozen} · input {shape_text(summary.get('input_shape', []))}"))
