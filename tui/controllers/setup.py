"""The setup in the panes: the one config the app would start, its problems, the engine's previews of it, and
whether it has edits nobody saved (a preset saved, a preset opened, or a run started records a setup)."""

from __future__ import annotations

from torchtui.engine import protocol as p
from torchtui.engine.config import ExperimentConfig, from_dict
from torchtui.engine.schema import ConfigError
from torchtui.tui.controllers import Controller
from torchtui.tui.state import editing

SECTIONS = ("data", "model", "train", "device")
PANE_NAMES = {"data": "Dataset", "model": "Model", "train": "Hparams", "device": "Device"}  # as their tabs say
ITEM_NAMES = {"layers": "layer", "conv": "conv block"}  # a list's item, as its rows are numbered from 1
REVALIDATE_S = 0.2  # typing settles this long before the panes are read back into a config


def dotted(widget_name: str) -> str:
    """A field's widget id (after its section) as the field's path: layers-0-units → layers[0].units,
    args-adadelta-rho → optimizer_args.rho."""
    parts = widget_name.split("-")
    if parts[0] == "args" and len(parts) >= 3:
        return f"optimizer_args.{'-'.join(parts[2:])}"
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def field_label(path: str) -> str:
    """A field's path in its section as the pane labels it: lr → lr, layers[0].units → units, layer 1,
    optimizer_args.rho → rho."""
    head, _, rest = path.partition(".")
    if "[" in head and rest:
        key, _, index = head.partition("[")
        return f"{rest}, {ITEM_NAMES.get(key, key)} {int(index.rstrip(']')) + 1}"
    return rest if head == "optimizer_args" and rest else path


def path_label(path: str) -> str:
    """A dotted config path as its pane shows it: train.batch_size → batch_size (Hparams)."""
    section, _, rest = path.partition(".")
    return f"{field_label(rest)} ({PANE_NAMES[section]})" if section in PANE_NAMES and rest else path


class SetupController(Controller):
    """Owns `config` (what the panes show, validated) and the problems that block a start."""

    HANDLES = {p.EngineReady: "on_engine_ready", p.DevicesListed: "on_devices", p.ModelDescribed: "on_model",
               p.DataPreviewed: "on_data", p.StepStats: "on_step_stats", p.History: "on_history",
               p.RunStarted: "on_run_started"}

    def __init__(self, app, config: ExperimentConfig):
        super().__init__(app)
        self.config = config
        self.config_problems: list[str] = []
        self.load_problems: dict[str, str] = {}  # "data"/"model" → why the engine could not load or build it
        self.recorded = config.to_dict()  # the setup as last saved, opened or started: edits since are unsaved
        self.preset_ref = ""              # the preset the setup came from (name or file), in each run's origin.json
        self.sweep_section = None         # the preset's sweep: section, when it has one (S runs it)
        self._timer = None

    # ------------------------------------------------------------------ the panes → the config

    @property
    def problem(self) -> str:
        return self.main.problem

    def on_config_changed(self) -> None:
        """A field changed: read the panes back once typing settles."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.app.set_timer(REVALIDATE_S, self.revalidate)

    def revalidate(self) -> None:
        """Rebuild the config from the panes; show problems inline. While a run is active its live fields
        (lr, weight decay, clip) are held as pending values until Enter (app.live), the rest applies on restart."""
        config, self.config_problems = editing.collect(self.app.deck.sections(), self.config)
        self.show_problems()
        if config is None or config == self.config:
            return
        config = editing.named_for_data(self.config, config)
        active = self.history.state in p.ACTIVE_STATES
        if active:
            config = self.app.live.hold(self.config, config)  # live fields wait for Enter, the run keeps its own
            _, later = editing.live_changes(self.config, config)
            if later:
                self.main.notice = f"{', '.join(map(path_label, later))}: applies on restart (r)"
        old, self.config = self.config, config
        self.app.sub_title = config.name
        self.show_parallel()
        if old.data != config.data or old.model != config.model or old.train.loss != config.train.loss:
            self.request_previews()

    def show_problems(self) -> None:
        """Every problem beside its field (config checks first, then load errors); the first blocks Start."""
        # Each once: the data preview and the model summary both load the data, and either answers first.
        problems = list(dict.fromkeys(self.config_problems + list(self.load_problems.values())))
        self.app.deck.show_problems(problems)
        self.main.problem = problems[0] if problems else ""

    def show_setup(self, config: ExperimentConfig, recorded: bool = True) -> None:
        """Make `config` the setup in the panes (an opened preset, a run's setup, the run attached to)."""
        self.config, self.config_problems = config, []
        if recorded:
            self.recorded = config.to_dict()
        self.show_problems()
        self.app.sub_title = config.name
        self.app.deck.fill(config)
        self.show_parallel()
        self.request_previews()

    def set_train(self, **values) -> None:
        """Change train fields from outside the panes (a live change the run confirmed, the LR finder)."""
        import dataclasses

        self.config = dataclasses.replace(self.config, train=dataclasses.replace(self.config.train, **values))
        if self.app.deck.built:
            self.app.deck.panes["hparams"].set_values({k: v for k, v in values.items()
                                                       if not self.app.live.is_pending(k)})

    def show_parallel(self) -> None:
        if self.app.deck.built:
            self.app.deck.panes["device"].show_parallel(self.config.device, self.config.train.batch_size)

    @property
    def unsaved(self) -> list[str]:
        """The fields edited since the setup was last saved, opened or started (dotted paths)."""
        from torchtui.engine.catalog import changed_fields

        return changed_fields(self.recorded, self.config.to_dict(), ("name", "description"))

    def mark_recorded(self) -> None:
        """The setup is on disk now (a preset saved, a run's config.yaml written)."""
        self.recorded = self.config.to_dict()

    def typing_in(self, focused) -> str:
        """The field keys go to now, as its pane labels it ("lr (Hparams)"), or "" when they go to the app: the
        status bar shows it, so 1e6 meant for a field is not taken as the keys 1 (Dataset pane) and e (evaluate).
        A switch counts too (space toggles it)."""
        from textual.widgets import Input, Select, Switch, TextArea

        if not isinstance(focused, (Input, Select, Switch, TextArea)):
            return ""
        section, _, name = (focused.id or "").partition("-")
        return path_label(f"{section}.{dotted(name)}") if section in SECTIONS and name else "a field"

    # ------------------------------------------------------------------ the engine's previews

    def request_previews(self) -> None:
        if self.bridge.ready:
            self.load_problems.clear()  # the answers to these requests say whether they still hold
            plain = self.config.to_dict()
            self.bridge.request(p.DescribeModel, config=plain)
            self.bridge.request(p.PreviewData, config=plain, max_points=400)

    def on_engine_ready(self, event: p.EngineReady) -> None:
        self.log("info", f"engine ready (torch {event.torch_version}, pid {event.pid})")
        self.bridge.request(p.ListDevices)
        self.request_previews()

    def on_devices(self, event: p.DevicesListed) -> None:
        if self.bridge.is_current(event):
            self.app.deck.panes["device"].show_devices(event)
            self.show_parallel()  # "all" GPUs is a number now

    def on_model(self, event: p.ModelDescribed) -> None:
        if self.bridge.is_current(event):
            self.app.deck.panes["model"].show_summary(event)
            self._set_load_problem("model", event.error)

    def on_data(self, event: p.DataPreviewed) -> None:
        if self.bridge.is_current(event):
            self.app.deck.panes["dataset"].show_preview(event)
            self._set_load_problem("data", event.error)

    def _set_load_problem(self, kind: str, error: str) -> None:
        """A data file that cannot be read or a model that cannot be built blocks Start like a bad field."""
        first = error.splitlines()[0] if error else ""
        # A model can't be built on data that can't be loaded: report the data problem once.
        if kind == "model" and first and first == self.load_problems.get("data"):
            first = ""
        if first:
            self.load_problems[kind] = first
        else:
            self.load_problems.pop(kind, None)
        self.show_problems()

    def on_step_stats(self, event: p.StepStats) -> None:
        if (event.mem_allocated is not None or event.data_wait is not None) and event.run_id == self.history.run_id:
            self.app.deck.panes["device"].show_memory(event.mem_allocated, event.mem_reserved, event.data_wait)

    def on_history(self, event: p.History) -> None:
        """Attached to a run: the Device pane's memory and data-wait figures from its latest statistics."""
        if self.history.last_stats is not None:
            self.on_step_stats(self.history.last_stats)

    def on_run_started(self, event: p.RunStarted) -> None:
        """Another client's run (attached to, or started by a second terminal): show its setup."""
        if self.app.runner.is_ours(event) or not event.config:
            if self.app.runner.is_ours(event):
                self.mark_recorded()  # config.yaml holds it now
            return
        try:
            config = from_dict(event.config)
        except ConfigError as err:
            self.log("warning", f"the run's config does not load here: {err.first_line}")
            return
        if event.base_lr:  # the base lr as live changes left it, not the one the run started with
            import dataclasses

            config = dataclasses.replace(config, train=dataclasses.replace(config.train, lr=event.base_lr))
        self.show_setup(config)
