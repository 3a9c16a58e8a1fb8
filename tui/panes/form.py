"""A form bound to one config dataclass: a labelled control per field, inline errors, change messages."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from torchtui.engine.schema import ConfigError, field_docs, load_yaml_text, to_plain
from torchtui.tui.widgets.field_input import FieldInput

CONTROL_CHANGES = (Input.Changed, Select.Changed, Switch.Changed)
CHOICE_LABELS = {"": "(off)"}  # the empty choice (e.g. early_stop_metric) needs a visible label


class ConfigChanged(Message):
    """The user changed a pane's config section; `path` is the edited field (e.g. "train.lr")."""

    def __init__(self, section: str, path: str = "") -> None:
        super().__init__()
        self.section = section
        self.path = path


class FieldCommitted(Message):
    """The user pressed Enter in, or left, the text field at `path` (e.g. "train.lr"): a live field applies then."""

    def __init__(self, section: str, path: str) -> None:
        super().__init__()
        self.section = section
        self.path = path


@dataclass(frozen=True)
class FieldSpec:
    """How one dataclass field is edited: kind is bool, choice, list, mapping, number or text."""

    name: str
    kind: str
    choices: tuple = ()
    doc: str = ""


def field_specs(cls: type, choices: dict[str, Iterable] | None = None) -> list[FieldSpec]:
    """One spec per editable field of `cls`, in order; lists of dataclasses are left to the pane."""
    hints = typing.get_type_hints(cls)
    docs = getattr(cls, "FIELD_DOCS", None) or field_docs(cls)  # a class made at run time has no source to read
    overrides = choices or {}
    specs = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint)
        if typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]):
            continue
        options = overrides.get(f.name, getattr(cls, "CHOICES", {}).get(f.name))
        if hint is bool:
            kind = "bool"
        elif options is not None:
            kind = "choice"
        elif typing.get_origin(hint) is list:
            kind = "list"
        elif typing.get_origin(hint) is dict:
            kind = "mapping"
        elif hint is str:
            kind = "text"
        else:
            kind = "number"
        specs.append(FieldSpec(f.name, kind, tuple(options or ()), docs.get(f.name, "")))
    return specs


def to_raw(kind: str, value: Any) -> Any:
    """What a control shows for a config value: text for inputs, the value itself for switches and selects."""
    if kind in ("bool", "choice"):
        return value
    if kind in ("list", "mapping"):
        empty = [] if kind == "list" else {}
        plain = list(value or empty) if kind == "list" else dict(value or empty)
        return yaml.safe_dump(plain, default_flow_style=True, width=10_000).strip()
    return "" if value is None else str(value)


def replace_text(control: Input, text: str) -> None:
    """Show a new value in a text field as if it were freshly mounted: the cursor at its end. Setting
    `value` alone left the cursor where the old value ended, so typing went into the middle (64 → 128,
    then 9 gave 1298)."""
    control.value = text
    control.cursor_position = len(text)


def parse_raw(kind: str, raw: Any) -> Any:
    """A control's raw value as config data; text that does not parse stays text for the engine to reject."""
    if kind in ("bool", "choice", "text"):
        return raw
    text = str(raw).strip()
    if not text:
        return {} if kind == "mapping" else ""
    try:
        value = load_yaml_text(text, "value")  # the limits --set and preset files have
    except ConfigError:
        return text
    if kind == "number" and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as text; the engine's float parser accepts it, so do the same here.
            return float(text)
        except ValueError:
            return text
    return value


def problems_for(problems: Iterable[str], prefix: str) -> dict[str, list[str]]:
    """Messages of "prefix.rest: message" lines keyed by `rest` (e.g. "lr", "layers[1].units")."""
    found: dict[str, list[str]] = {}
    for line in problems:
        path, _, message = line.partition(": ")
        if path == prefix:
            found.setdefault("", []).append(message)
        elif path.startswith(prefix + "."):
            found.setdefault(path[len(prefix) + 1:], []).append(message)
    return found


def head_name(rest: str) -> str:
    """The field a problem path points into: "betas[0]" → "betas", "layers[1].units" → "layers"."""
    return rest.split("[", 1)[0].split(".", 1)[0]


class ConfigForm(Widget):
    """Edits one config dataclass; ids are `{prefix}-{field}` with dots in the prefix turned into dashes."""

    DEFAULT_CSS = """
    ConfigForm { height: auto; layout: vertical; }
    ConfigForm .group-title { text-style: bold; color: $accent; margin-top: 1; }
    ConfigForm .group-title.-first { margin-top: 0; }
    ConfigForm .field { height: auto; }
    ConfigForm .field.-irrelevant { display: none; }
    ConfigForm .field.-irrelevant.-problem { display: block; }
    ConfigForm .field-row { height: auto; }
    ConfigForm .field-label { width: 22; padding-right: 1; }
    ConfigForm .field-row Input, ConfigForm .field-row Select { width: 1fr; }
    ConfigForm Switch { border: none; padding: 0; height: 1; }
    ConfigForm Switch:focus { border: none; background-tint: $foreground 20%; }
    /* Textual re-styles on focus only below a node that itself has a :focus-within rule. */
    ConfigForm .field:focus-within { background: $boost; }
    /* Where keys go, in every theme at 256 colours: $text-primary is >= 3:1 against $background and $surface
       in each built-in RGB theme (tests/tui/test_focus.py); a background tint alone was 235 against 234. */
    ConfigForm .field:focus-within .field-label { background: $text-primary; color: $background; text-style: bold; }
    ConfigForm .help { display: none; color: $text-muted; padding-left: 2; }
    ConfigForm .field:focus-within .help { display: block; }
    ConfigForm .error { display: none; color: $text-error; padding-left: 2; }
    ConfigForm .field.-problem .error { display: block; }
    ConfigForm .-error { background-tint: $error 30%; }
    ConfigForm .form-problems { display: none; color: $text-error; }
    ConfigForm .form-problems.-shown { display: block; }
    /* A live value typed while a run trains, not applied yet: Enter applies it, escape reverts. */
    ConfigForm .field.-pending .field-label { color: $warning; text-style: bold; }
    ConfigForm .field.-pending Input { background-tint: $warning 25%; }
    ConfigForm .pending-hint { display: none; color: $warning; padding-left: 2; }
    ConfigForm .field.-pending .pending-hint { display: block; }
    """

    class FieldMessage(Message):
        """Something the user did to the field at `path` (e.g. "train.lr") of `form`."""

        def __init__(self, form: ConfigForm, path: str) -> None:
            super().__init__()
            self.form = form
            self.path = path

        @property
        def control(self) -> ConfigForm:
            return self.form

    class Committed(FieldMessage):
        """The user pressed Enter in, or left, the text field at `path`."""

    class Changed(FieldMessage):
        """The user edited the field at `path`."""

    def __init__(self, cls: type, prefix: str, *, groups: list[tuple[str, list[str]]] | None = None,
                 choices: dict[str, list[tuple[str, Any]]] | None = None, badges: dict[str, str] | None = None,
                 fields: list[str] | None = None, id: str | None = None, classes: str | None = None,
                 id_prefix: str = "") -> None:
        """`groups` lists (title, field names) in display order; `choices` gives Select options
        as (label, value) for fields without CHOICES (e.g. devices); `badges` adds a dim word to labels;
        `fields` limits the form to some fields (another widget edits the rest); `id_prefix` replaces the
        prefix in widget ids where several forms share one prefix."""
        super().__init__(id=id, classes=classes)
        self.cls = cls
        self.prefix = prefix
        self.id_prefix = id_prefix or prefix.replace(".", "-")
        self._options = {name: list(opts) for name, opts in (choices or {}).items()}
        specs = field_specs(cls, {n: [v for _, v in o] for n, o in self._options.items()})
        self.specs = {s.name: s for s in specs if fields is None or s.name in fields}
        self._groups = self._arrange(groups)
        self._badges = badges or {}
        defaults = cls()
        self._raw = {name: to_raw(spec.kind, getattr(defaults, name)) for name, spec in self.specs.items()}
        self._controls: dict[str, Widget] = {}
        self._fields: dict[str, tuple[Vertical, Static]] = {}  # each field's box and its error line
        self._offered: dict[str, list[tuple[str, Any]]] = {}  # the options each Select was last given
        self._unshown: set[str] = set()  # Selects given a value before they were mounted (see _show_select)
        self._hidden: set[str] = set()
        self._titles: list[tuple[Label, list[str]]] = []  # group titles, hidden when none of their fields apply
        self._shown: dict[str, list[str]] = {}  # the problems each field shows now
        self._problems: list[str] = []  # the latest show_problems(), shown again once the fields are composed
        self._typed: set[str] = set()  # text fields the user edited and still has focus in: not overwritten
        general_id = f"{id}-problems" if fields is not None and id else f"{self.id_prefix}-problems"
        self._general = Static("", classes="form-problems", id=general_id)

    def _arrange(self, groups: list[tuple[str, list[str]]] | None) -> list[tuple[str, list[str]]]:
        listed = [name for _, names in groups or [] for name in names if name in self.specs]
        rest = [name for name in self.specs if name not in listed]
        arranged = [(title, [n for n in names if n in self.specs]) for title, names in groups or []]
        return arranged + ([("", rest)] if rest else [])

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield self._general
        for i, (title, names) in enumerate(self._groups):
            if title:
                label = Label(title, classes="group-title" + (" -first" if i == 0 else ""))
                label.display = any(name not in self._hidden for name in names)
                self._titles.append((label, names))
                yield label
            for name in names:
                yield self._field(self.specs[name])
        if self._problems:  # given before there were fields to show them beside (a load error at start-up)
            self.show_problems(self._problems)

    def _field(self, spec: FieldSpec) -> Vertical:
        control = self._control(spec)
        self._controls[spec.name] = control
        label = Text(spec.name)
        if spec.name in self._badges:
            label.append(" ").append(self._badges[spec.name], style="dim italic")
        caption = Label(label, classes="field-label")
        caption.tooltip = spec.doc or None
        error = Static("", classes="error", id=f"{self.id_prefix}-{spec.name}-error")
        pending = [Static("⏎ not applied yet: Enter applies it to the run, esc reverts", classes="pending-hint")] \
            if spec.name in self._badges else []
        box = Vertical(
            Horizontal(caption, control, classes="field-row"),
            *pending,
            Static(Text(spec.doc), classes="help"),
            error,
            classes="field" + (" -irrelevant" if spec.name in self._hidden else ""),
            id=f"{self.id_prefix}-{spec.name}-field",
        )
        self._fields[spec.name] = (box, error)
        return box

    def _control(self, spec: FieldSpec) -> Widget:
        wid, raw, tip = f"{self.id_prefix}-{spec.name}", self._raw[spec.name], spec.doc or None
        if spec.kind == "bool":
            return Switch(bool(raw), animate=False, id=wid, tooltip=tip)
        if spec.kind == "choice":
            self._offered[spec.name] = self._select_options(spec.name, raw)
            return Select(self._offered[spec.name], value=raw, allow_blank=False, compact=True, id=wid, tooltip=tip)
        return FieldInput(raw, id=wid, tooltip=tip, compact=True, select_on_focus=False)

    def _select_options(self, name: str, current: Any) -> list[tuple[str, Any]]:
        """The field's options, plus the current value when it is not one of them (it stays selectable)."""
        options = self._options.get(name) or [(CHOICE_LABELS.get(v, str(v)), v) for v in self.specs[name].choices]
        if current not in [v for _, v in options]:
            options = [*options, (f"{current} (not available)", current)]
        return options

    # ------------------------------------------------------------------ values

    def value(self) -> dict:
        """The form's current values as plain config data (text parsed as YAML where the field is not text)."""
        return {name: parse_raw(spec.kind, self._raw[name]) for name, spec in self.specs.items()}

    def raw(self, name: str) -> Any:
        """What the control for `name` holds, unparsed."""
        return self._raw[name]

    def set_values(self, values: Any, force: bool = False) -> None:
        """Show a dataclass instance's (or a mapping's) values without posting Changed. A text field the user
        is typing in keeps what they typed (an engine's echo rewrote it mid-word: `5e-3` became `05-3`),
        unless `force` (escape reverting it)."""
        data = to_plain(values) if dataclasses.is_dataclass(values) else dict(values)
        with self.prevent(*CONTROL_CHANGES):
            for name, value in data.items():
                spec = self.specs.get(name)
                if spec is None:
                    continue
                if name in self._typed and not force and self._typing_in(name):
                    continue
                self._typed.discard(name)
                self._raw[name] = to_raw(spec.kind, value)
                self._show_raw(name)

    def _typing_in(self, name: str) -> bool:
        control = self._controls.get(name)
        return isinstance(control, Input) and control.has_focus

    def _show_raw(self, name: str) -> None:
        control, raw = self._controls.get(name), self._raw[name]
        if isinstance(control, Select):
            self._show_select(name)
        elif isinstance(control, Switch):
            control.value = bool(raw)
        elif isinstance(control, Input) and control.value != raw:
            replace_text(control, raw)

    def mark_pending(self, names: set[str]) -> None:
        """Show which live fields hold a value typed but not applied yet."""
        for name, (box, _) in self._fields.items():
            box.set_class(name in names, "-pending")

    def _show_select(self, name: str) -> None:
        control = self._controls[name]
        if not control.is_mounted:
            # Select.set_options needs the mounted overlay. Until this runs the control holds its old value:
            # _on_control_changed ignores what it announces meanwhile.
            self._unshown.add(name)
            self.call_after_refresh(self._show_select, name)
            return
        self._unshown.discard(name)
        with self.prevent(*CONTROL_CHANGES):
            options = self._select_options(name, self._raw[name])
            if options != self._offered.get(name):
                self._offered[name] = options
                control.set_options(options)
            control.value = self._raw[name]

    def set_choices(self, name: str, options: list[tuple[str, Any]]) -> None:
        """Replace a choice field's options (label, value), keeping its current value."""
        self._options[name] = list(options)
        if name in self._controls:
            self._show_select(name)

    def _on_control_changed(self, event: Input.Changed | Select.Changed | Switch.Changed) -> None:
        name = next((n for n, c in self._controls.items() if c is event.control), None)
        if name is None:
            return
        event.stop()
        if name in self._unshown:  # a value set here is still on its way to the control
            return
        # The control's value now, not the message's: a message posted before a fill (a Select announcing
        # its value when mounted) arrives after it, and its stale value would overwrite the filled one.
        # Only a value that differs from the stored one is an edit.
        value = event.control.value
        if value == self._raw[name]:
            return
        self._raw[name] = value
        if isinstance(event.control, Input):
            self._typed.add(name)
        self.post_message(self.Changed(self, f"{self.prefix}.{name}"))

    on_input_changed = on_select_changed = on_switch_changed = _on_control_changed

    def _on_input_done(self, event: Input.Submitted | Input.Blurred) -> None:
        name = next((n for n, c in self._controls.items() if c is event.input), None)
        if name is None:
            return
        event.stop()
        if isinstance(event, Input.Blurred):
            self._typed.discard(name)
        self.post_message(self.Committed(self, f"{self.prefix}.{name}"))

    on_input_submitted = on_input_blurred = _on_input_done

    # ------------------------------------------------------------------ problems and visibility

    def show_problems(self, problems: Iterable[str]) -> None:
        """Show each "prefix.field: message" next to its field and clear the rest; other prefixes are ignored."""
        self._problems = list(problems)
        found = problems_for(self._problems, self.prefix)
        by_field: dict[str, list[str]] = {}
        general: list[str] = []
        for rest, messages in found.items():
            name = head_name(rest)
            if name in self.specs:
                detail = rest[len(name):].lstrip(".")
                by_field.setdefault(name, []).extend(f"{detail}: {m}" if detail else m for m in messages)
            elif not self._is_skipped(name):
                general.extend(f"{rest}: {m}" if rest else m for m in messages)
        for name in self._controls:
            self._show_field_problems(name, by_field.get(name, []))
        if general != self._shown.get("", []):
            self._shown[""] = list(general)
            self._general.update(Text("\n".join(general)))
            self._general.set_class(bool(general), "-shown")

    def _is_skipped(self, name: str) -> bool:
        return name in {f.name for f in dataclasses.fields(self.cls)} and name not in self.specs

    def _show_field_problems(self, name: str, messages: list[str]) -> None:
        # Revalidation runs after every edit and reaches every field: touch only those that change
        # (an update re-lays-out the pane; doing it for all ~40 fields made typing lag).
        if self._shown.get(name, []) == messages:
            return
        self._shown[name] = list(messages)
        box, error = self._fields[name]
        box.set_class(bool(messages), "-problem")
        self._controls[name].set_class(bool(messages), "-error")
        error.update(Text("\n".join(f"✗ {m}" for m in messages)))

    def set_relevant(self, name: str, relevant: bool) -> None:
        """Hide a field that does not apply (it keeps its value, and shows again if it has a problem)."""
        if relevant:
            self._hidden.discard(name)
        else:
            self._hidden.add(name)
        if name in self._fields:
            self._fields[name][0].set_class(not relevant, "-irrelevant")
        for label, names in self._titles:
            label.display = any(n not in self._hidden for n in names)

    def focus_first(self) -> bool:
        """Focus the first control that is shown; False while it is not mounted yet (nothing to focus)."""
        for name, control in self._controls.items():
            if name not in self._hidden:
                if not control.is_mounted:
                    return False
                control.focus()
                return True
        return False
