"""LayerList: an editable list of layer configs (hidden layers, conv blocks): a row of controls per item,
with add, remove and reorder by key or button, and problems shown next to the row they concern."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from torchtui.tui.panes.form import (
    CONTROL_CHANGES,
    ConfigChanged,
    FieldSpec,
    field_specs,
    parse_raw,
    problems_for,
    replace_text,
    to_raw,
)
from torchtui.tui.widgets.field_input import FieldInput

# column → (the column it depends on, the values under which it is shown)
SHOWN_WHEN = {"negative_slope": ("activation", ("leaky_relu",)), "pool_size": ("pool", ("max", "avg"))}


@dataclasses.dataclass(frozen=True)
class Column:
    """One control in a row: the field, its header text and width in cells."""
    name: str
    label: str
    width: int


class LayerRow(Vertical):
    """One item's controls, on one or more lines; row i keeps ids `{prefix}-{i}-…`, and moves change its values."""

    def __init__(self, owner: LayerList, index: int, raw: dict) -> None:
        super().__init__(id=f"{owner.prefix}-{index}", classes="layer-row")
        self.owner, self.index = owner, index
        self._initial = dict(raw)

    def compose(self) -> ComposeResult:
        for n, line in enumerate(self.owner.lines):
            with Horizontal(classes="layer-controls"):
                yield Label(f"{self.index + 1}" if n == 0 else "", classes="col-index")
                for column in line:
                    if n > 0:  # only the first line has the header above it
                        label = Label(column.label, classes="inline-label",
                                      id=f"{self.owner.prefix}-{self.index}-{column.name}-label")
                        label.display = self.owner.shown(column.name, self._initial)
                        yield label
                    yield self._control(column)
        yield Static("", classes="error", id=f"{self.owner.prefix}-{self.index}-error")

    def _control(self, column: Column) -> Widget:
        spec, wid = self.owner.specs[column.name], f"{self.owner.prefix}-{self.index}-{column.name}"
        raw = self._initial[column.name]
        if spec.kind == "choice":
            control: Widget = Select([(str(v), v) for v in spec.choices], value=raw, allow_blank=False, compact=True,
                                     id=wid, tooltip=spec.doc, classes=f"col-{column.name}")
        else:
            control = FieldInput(raw, id=wid, tooltip=spec.doc, compact=True, select_on_focus=False,
                            classes=f"col-{column.name}")
        control.display = self.owner.shown(column.name, self._initial)
        control.styles.width = column.width
        return control

    def control(self, name: str) -> Widget:
        return self.query_one(f"#{self.owner.prefix}-{self.index}-{name}")

    def show(self, raw: dict) -> None:
        """Show an item's values (before mounting they are only remembered)."""
        self._initial = dict(raw)
        if not self.is_mounted or not self.children:
            return
        with self.prevent(*CONTROL_CHANGES):
            for column in self.owner.columns:
                control, value = self.control(column.name), raw[column.name]
                spec = self.owner.specs[column.name]
                if isinstance(control, Input) and control.value != value:
                    replace_text(control, value)
                elif control.value != value and (not isinstance(control, Select) or value in spec.choices):
                    control.value = value
                control.display = self.owner.shown(column.name, raw)
                for label in self.query(f"#{self.owner.prefix}-{self.index}-{column.name}-label"):
                    label.display = control.display

    def show_problems(self, messages: list[str], fields: set[str]) -> None:
        if not self.is_mounted or not self.children or getattr(self, "_shown", None) == (messages, fields):
            return
        self._shown = (list(messages), set(fields))  # unchanged problems: nothing to redraw
        self.set_class(bool(messages), "-problem")
        for column in self.owner.columns:
            self.control(column.name).set_class(column.name in fields, "-error")
        self.query_one(f"#{self.owner.prefix}-{self.index}-error", Static).update(
            Text("\n".join(f"✗ {m}" for m in messages)))


class LayerList(Vertical):
    """Edits a list of `cls` items stored at `{section}.{key}`; posts ConfigChanged on every edit."""

    DEFAULT_CSS = """
    LayerList { height: auto; }
    LayerList .group-title { text-style: bold; color: $accent; }
    LayerList .layer-row, LayerList .layer-controls, LayerList .layer-rows { height: auto; }
    LayerList .layer-header { height: 1; color: $text-muted; }
    LayerList .layer-controls > *, LayerList .layer-header > * { margin-right: 1; }
    LayerList .inline-label { color: $text-muted; }
    LayerList .col-index { width: 3; }
    /* The focused row's number marks it (as a form field's label does); the control itself is underlined. */
    LayerList .layer-row:focus-within { background: $boost; }  /* Textual restyles below a :focus-within rule */
    LayerList .layer-row:focus-within .col-index { background: $text-primary; color: $background; text-style: bold; }
    LayerList .layer-row Input:focus, LayerList .layer-row Select:focus { text-style: bold underline; }
    LayerList .error { display: none; color: $text-error; padding-left: 4; }
    LayerList .layer-row.-problem .error { display: block; }
    LayerList .-error { background-tint: $error 30%; }
    LayerList .layer-empty { color: $text-muted; }
    LayerList .list-problems { display: none; color: $text-error; }
    LayerList .list-problems.-shown { display: block; }
    LayerList .layer-buttons { height: auto; margin-bottom: 1; }
    LayerList .layer-buttons Button { min-width: 5; margin-right: 1; }
    """

    BINDINGS = [
        Binding("a", "add", "Add", id="layers.add"),
        Binding("d", "remove", "Remove", id="layers.remove"),
        Binding("shift+up,left_square_bracket", "move(-1)", "Move up", key_display="[", id="layers.up"),
        Binding("shift+down,right_square_bracket", "move(1)", "Move down", key_display="]", id="layers.down"),
    ]

    def __init__(self, section: str, key: str, cls: type, lines: list[list[Column]], *, title: str, empty: str,
                 id: str | None = None) -> None:
        self.prefix = f"{section}-{key}"
        super().__init__(id=id or f"{self.prefix}-list")
        self.section, self.key, self.cls, self.lines = section, key, cls, lines
        self.columns = [column for line in lines for column in line]
        self.specs: dict[str, FieldSpec] = {spec.name: spec for spec in field_specs(cls)}
        self.title, self.empty = title, empty
        self._items: list[dict] = []
        self._rows: list[LayerRow] = []  # pooled, never removed: ids stay unique without waiting for removals
        self.current: int | None = None  # the item whose row last had focus
        self._title = Label(title, classes="group-title")
        self._problems = Static("", classes="list-problems", id=f"{self.prefix}-problems")

    def shown(self, name: str, raw: dict) -> bool:
        """Whether a column applies to an item (a leaky slope only for leaky_relu, …)."""
        rule = SHOWN_WHEN.get(name)
        return rule is None or raw.get(rule[0]) in rule[1]

    def raw_item(self, item: Any) -> dict:
        """Control values for an item given as a dataclass, a mapping or a shorthand (`64`)."""
        if dataclasses.is_dataclass(item):
            data = dataclasses.asdict(item)
        else:
            data = {**dataclasses.asdict(self.cls()), **self.cls.from_shorthand(item)}
        return {name: to_raw(spec.kind, data[name]) for name, spec in self.specs.items()}

    def compose(self) -> ComposeResult:
        yield self._title
        with Horizontal(classes="layer-header"):
            yield Label("#", classes="col-index")
            for column in self.lines[0]:
                label = Label(column.label, classes=f"col-{column.name}", id=f"{self.prefix}-header-{column.name}")
                label.styles.width = column.width
                yield label
        self._rows = [LayerRow(self, i, raw) for i, raw in enumerate(self._items)]
        yield Vertical(*self._rows, id=self.prefix, classes="layer-rows")
        yield Static(self.empty, classes="layer-empty", id=f"{self.prefix}-empty")
        yield self._problems
        with Horizontal(classes="layer-buttons"):
            yield Button("+ add", id=f"{self.prefix}-add", compact=True, tooltip="Add one after the current one (a)")
            yield Button("− remove", id=f"{self.prefix}-remove", compact=True, tooltip="Remove the current one (d)")
            yield Button("↑", id=f"{self.prefix}-up", compact=True, tooltip="Move the current one up ([ or shift+↑)")
            yield Button("↓", id=f"{self.prefix}-down", compact=True,
                         tooltip="Move the current one down (] or shift+↓)")

    def on_mount(self) -> None:
        self._sync_rows()

    def set_title(self, title: str) -> None:
        self._title.update(title)

    # ------------------------------------------------------------------ values

    def value(self) -> list[dict]:
        return [{name: parse_raw(self.specs[name].kind, raw[name]) for name in self.specs} for raw in self._items]

    def set_items(self, items: list) -> None:
        self._items = [self.raw_item(item) for item in items]
        self._sync_rows()

    def focus_first(self) -> bool:
        rows = self._rows[: len(self._items)]
        if rows and rows[0].is_mounted and rows[0].children:
            rows[0].control(self.columns[0].name).focus()
            return True
        return False

    def _sync_rows(self) -> None:
        """Make the first len(items) rows show the items, mounting rows as needed and hiding the rest."""
        try:  # not is_mounted: that turns true only after on_mount, which calls this
            container = self.query_one(f"#{self.prefix}", Vertical)
        except NoMatches:  # not composed yet: compose builds the rows from the items
            return
        while len(self._rows) < len(self._items):
            row = LayerRow(self, len(self._rows), self._items[len(self._rows)])
            self._rows.append(row)
            container.mount(row)
        for i, row in enumerate(self._rows):
            row.display = i < len(self._items)
            if i < len(self._items):
                row.show(self._items[i])
        for column in self.lines[0]:
            self.query_one(f"#{self.prefix}-header-{column.name}").display = any(
                self.shown(column.name, raw) for raw in self._items) or column.name not in SHOWN_WHEN
        self.query_one(f"#{self.prefix}-empty").display = not self._items

    # ------------------------------------------------------------------ editing

    def add(self, index: int | None = None) -> None:
        """Insert an item at `index` (default: the end), copying the one before it (defaults when first)."""
        index = len(self._items) if index is None else max(0, min(index, len(self._items)))
        template = dict(self._items[index - 1]) if index > 0 else self.raw_item(self.cls())
        self._items.insert(index, template)
        self._structure_changed(index)

    def remove(self, index: int) -> None:
        """Delete the item at `index` (no-op when out of range)."""
        if 0 <= index < len(self._items):
            del self._items[index]
            self._structure_changed(min(index, len(self._items) - 1) if self._items else None)

    def move(self, index: int, delta: int) -> None:
        """Move the item at `index` by `delta` places (no-op past either end)."""
        target = index + delta
        if 0 <= index < len(self._items) and 0 <= target < len(self._items) and delta:
            self._items.insert(target, self._items.pop(index))
            self._structure_changed(target)

    def _structure_changed(self, current: int | None) -> None:
        column = self._focused_column()
        self.current = current
        self._sync_rows()
        if current is not None and self.is_mounted:
            # A freshly mounted row has no children yet: focus once it has been laid out.
            self.call_after_refresh(self._focus_item, current, column or self.columns[0].name)
        self.post_message(ConfigChanged(self.section, f"{self.section}.{self.key}"))

    def _control_match(self, widget_id: str | None) -> re.Match | None:
        return re.match(rf"^{re.escape(self.prefix)}-(\d+)-(\w+)$", widget_id or "")

    def _focused_column(self) -> str | None:
        focused = self.screen.focused if self.is_mounted else None
        match = self._control_match(focused.id) if focused is not None else None
        return match.group(2) if match and match.group(2) != "error" else None

    def _focus_item(self, index: int, column: str, tries: int = 20) -> None:
        if index >= len(self._rows):
            return
        row = self._rows[index]
        if not (row.is_mounted and row.children):  # a row just mounted can take a few frames on a busy machine
            if tries:
                self.set_timer(0.05, lambda: self._focus_item(index, column, tries - 1))
            return
        control = row.control(column)
        (control if control.display else row.control(self.columns[0].name)).focus()

    def action_add(self) -> None:
        self.add(None if self.current is None else self.current + 1)

    def action_remove(self) -> None:
        if self.current is not None:
            self.remove(self.current)

    def action_move(self, delta: int) -> None:
        if self.current is not None:
            self.move(self.current, delta)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {f"{self.prefix}-add": self.action_add, f"{self.prefix}-remove": self.action_remove,
                   f"{self.prefix}-up": lambda: self.action_move(-1),
                   f"{self.prefix}-down": lambda: self.action_move(1)}
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    def on_descendant_focus(self, event) -> None:
        match = self._control_match(event.widget.id)
        if match and int(match.group(1)) < len(self._items):
            self.current = int(match.group(1))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._control_changed(event)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._control_changed(event)

    def _control_changed(self, event: Input.Changed | Select.Changed) -> None:
        match = self._control_match(event.control.id)
        if not match or int(match.group(1)) >= len(self._items):
            return
        event.stop()
        index, name = int(match.group(1)), match.group(2)
        # The control's value now, not the message's: a row mounted before a fill posts its old value, which
        # arrives after show() put the new one in (moons' 64 came back into spiral's 128-unit layer).
        # Only a difference is an edit.
        value = event.control.value
        if self._items[index][name] == value:
            return
        self._items[index][name] = value
        if any(rule[0] == name for rule in SHOWN_WHEN.values()):
            self._sync_rows()
        self.post_message(ConfigChanged(self.section, f"{self.section}.{self.key}[{index}].{name}"))

    # ------------------------------------------------------------------ problems

    def show_problems(self, problems: list[str]) -> None:
        """Messages for `{section}.{key}[i].field` next to row i; others about the list below it."""
        per_row: dict[int, tuple[list[str], set[str]]] = {}
        general = []
        pattern = re.compile(rf"^{re.escape(self.key)}\[(\d+)\](?:\.(\w+))?$")
        for rest, messages in problems_for(problems, self.section).items():
            match = pattern.match(rest)
            if match:
                messages_of_row, fields = per_row.setdefault(int(match.group(1)), ([], set()))
                name = match.group(2)
                fields.add(name or "")
                messages_of_row.extend(f"{name}: {m}" if name else m for m in messages)
            elif rest == self.key or rest.startswith(self.key + "["):
                general.extend(f"{rest}: {m}" for m in messages)
        for i, row in enumerate(self._rows):
            row.show_problems(*per_row.get(i, ([], set())))
        if general != getattr(self, "_general_shown", []):
            self._general_shown = list(general)
            self._problems.update(Text("\n".join(general)))
            self._problems.set_class(bool(general), "-shown")
