"""The torchtui Textual app: composes panes, charts and the log, and routes keys and engine events."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import signal
from typing import TYPE_CHECKING

from textual import events
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import TabbedContent

from torchtui.engine import protocol as p
from torchtui.engine.config import ExperimentConfig, from_dict
from torchtui.engine.schema import ConfigError
from torchtui.tui.app_keys import KeyActions
from torchtui.tui.app_lifecycle import Lifecycle
from torchtui.tui.app_lr_find import LrFindActions
from torchtui.tui.app_presets import PresetActions
from torchtui.tui.app_run_control import RunControl
from torchtui.tui.app_runs import RunsActions
from torchtui.tui.bridge import EngineBridge
from torchtui.tui.charts.grid import ChartGrid
from torchtui.tui.charts.scheduler import ChartScheduler
from torchtui.tui.commands import ActionsProvider
from torchtui.tui.keys import BINDINGS, PALETTE_ACTIONS, PANE_KEYS
from torchtui.tui.panes.deck import PANE_IDS, PaneDeck
from torchtui.tui.state import editing
from torchtui.tui.state.history import RunHistory
from torchtui.tui.widgets.footer import ContextFooter
from torchtui.tui.widgets.log_pane import LogPane
from torchtui.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from torchtui.tui.panes.form import ConfigChanged

TICK_S = 0.1           # the UI drains engine events and redraws at most this often
NARROW_COLUMNS = 120   # below this, setup and charts share the screen as two views
FIRST_PAINT_FALLBACK_S = 1.0  # the panes are built by then even if the Footer's keys never showed
class TorchTUI(PresetActions, RunsActions, LrFindActions, KeyActions, RunControl, Lifecycle, App):
    """Set up an experiment in four panes, train it in the engine's run server (or worker), watch it live."""

    CSS_PATH = "app.tcss"
    AUTO_FOCUS = None  # keys like space must reach the app, not type into the first field
    TITLE = "torchtui"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    PALETTE_ACTIONS = PALETTE_ACTIONS
    BINDINGS = BINDINGS

    def __init__(self, config: ExperimentConfig, bridge: EngineBridge, runs_dir: str | None = None):
        super().__init__()
        self.config = config
        self.bridge = bridge
        self.runs_dir = runs_dir
        self.history = RunHistory()
        self.problem = ""      # the first problem: blocks Start, shown in the status bar
        self.config_problems: list[str] = []
        self.load_problems: dict[str, str] = {}  # "data"/"model" → why the engine could not load or build it
        self.notice = ""
        self.quitting = False
        self.pending_start = False
        self.starting = False  # a Start sent, its RunStarted not seen yet: that run's setup is in the panes
        self._revalidate_timer = None
        self.deck = PaneDeck()  # built and mounted after the first paint
        self.charts: dict = {}  # filled on mount; the scheduler shares the dict
        self.scheduler = ChartScheduler(self.charts)
        self.panes = self.deck.panes
        self._exit_when_ready: tuple | None = None
        self._painted = False  # the first frame is on screen: the charts, panes and engine follow
        self.farewell = ""  # printed once the terminal is restored: where a detached run can be found

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="setup"):
                with TabbedContent(id="panes"):
                    yield from self.deck.tabs()  # empty until _mount_panes fills them
            with Vertical(id="charts"):
                yield ChartGrid(self.history, id="chart-grid")  # the charts come in after the first paint
                yield LogPane(id="log")
        yield StatusBar(id="status")
        yield ContextFooter(compact=True)

    def on_mount(self) -> None:
        # References kept from the main screen: query_one searches only the active (maybe modal) screen.
        self.chart_grid = self.query_one(ChartGrid)
        self.log_pane = self.query_one(LogPane)
        self.tabs = self.query_one("#panes", TabbedContent)
        self.status_bar = self.query_one(StatusBar)
        self.sub_title = self.config.name
        self.set_interval(TICK_S, self.poll_engine)
        # The panes are built (and the engine started) once the first frame, keys included, is on screen;
        # the timer is a fallback for a Footer that never shows keys (a terminal that reports no focus).
        self.query_one(ContextFooter).when_keys_shown(self._first_frame_shown)
        self.set_timer(FIRST_PAINT_FALLBACK_S, self._first_frame_shown)
        self._layout_for(self.size.width)
        attaching = getattr(self.bridge.host, "info", None) is not None  # given a live run server
        self.log_pane.add("info", "attaching to its server…" if attaching else "starting the engine (loading torch…)")
        self.log_first_notes()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.stop_and_exit)
        if hasattr(signal, "SIGHUP"):
            # A plain handler, not the loop's: with the terminal gone the loop can be stuck in a write to
            # it, and a Python-level handler still runs (the write returns EINTR first).
            signal.signal(signal.SIGHUP, self._hang_up)
        self.refresh_status()

    @property
    def panes_ready(self) -> bool:
        return self.deck.ready

    async def _first_frame_shown(self) -> None:
        if not self._painted:  # the Footer's callback, or the fallback timer: whichever comes first
            self._painted = True
            started = self._after_first_paint()
            if inspect.isawaitable(started):  # tests replace it with a plain function
                await started

    async def _after_first_paint(self) -> None:
        self.charts.update(await self.chart_grid.load())  # the scheduler shares this dict
        self.deck.build(self.config)
        self._show_parallel()
        self.bridge.start()
        self._mount_panes()

    def _mount_panes(self) -> None:
        """Mount the panes not shown yet, one per timer tick, so keys are handled between them."""
        if self._exit or self._closing:
            return
        if self.deck.mount_next():
            self.set_timer(0.05, self._mount_panes)
            return
        # The widget tree is built: freeze it out of the collector's scans, and collect less often.
        # Full collections over Textual's many short-lived objects were the slow tail of key presses
        # (bench/bench_tui.py: ? p95 186 -> 93 ms while training, 122 -> 51 ms paused).
        gc.freeze()
        gc.set_threshold(20_000, 20, 100)
        if self._exit_when_ready is not None:
            args, kwargs = self._exit_when_ready
            super().exit(*args, **kwargs)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.deck.mount(event.pane.id.removeprefix("tab-"))

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.scheduler.hold()  # what the key changes is drawn before the next chart build
        await super().on_event(event)

    def on_resize(self, event) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        self.screen.set_class(width < NARROW_COLUMNS, "narrow")

    def pane(self, pane_id: str):
        return self.panes[pane_id]

    # ------------------------------------------------------------------ engine events

    def poll_engine(self) -> None:
        """Timer: drain the engine's events, route them, redraw at most one chart (they take 20–50 ms)."""
        if not self.panes:
            return  # built right after the first paint; until then events wait, so no handler meets a missing pane
        events = self.bridge.drain()
        status = False
        for event in events:
            changed = self.history.apply(event)
            status |= "status" in changed or bool(changed)
            self.scheduler.changed(changed)
            handler = getattr(self, f"on_engine_{type(event).__name__}", None)
            if handler is not None:
                handler(event)
        self.scheduler.redraw_one()
        if status:
            self.refresh_status()

    def on_engine_EngineReady(self, event: p.EngineReady) -> None:
        self.log_pane.add("info", f"engine ready (torch {event.torch_version}, pid {event.pid})")
        self.bridge.request(p.ListDevices)
        self._request_previews()
        self.start_if_queued()

    def _request_previews(self) -> None:
        if self.bridge.ready:
            self.load_problems.clear()  # the answers to these requests say whether they still hold
            plain = self.config.to_dict()
            self.bridge.request(p.DescribeModel, config=plain)
            self.bridge.request(p.PreviewData, config=plain, max_points=400)

    def on_engine_DevicesListed(self, event) -> None:
        if self.bridge.is_current(event):
            self.pane("device").show_devices(event)
            self._show_parallel()  # "all" GPUs is a number now

    def on_engine_ModelDescribed(self, event) -> None:
        if self.bridge.is_current(event):
            self.pane("model").show_summary(event)
            self._set_load_problem("model", event.error)

    def on_engine_DataPreviewed(self, event) -> None:
        if self.bridge.is_current(event):
            self.pane("dataset").show_preview(event)
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
        self._show_problems()

    def on_engine_RunStarted(self, event: p.RunStarted) -> None:
        self.log_pane.add("info", f"run {event.run_id}: {event.params:,} parameters on {event.device} → {event.run_dir}")
        started_here, self.starting = self.starting, False
        if not started_here and event.config:  # a run started elsewhere (attached): show its setup
            try:
                self.show_setup(from_dict(event.config))
            except ConfigError as err:
                self.log_pane.add("warning", f"the run's config does not load here: {err.first_line}")

    def on_engine_StateChanged(self, event: p.StateChanged) -> None:
        if event.state in p.END_STATES:
            self.starting = self.starting and event.run_id is not None  # a Start refused: nothing of ours to come
            level = "error" if event.state in (p.DIVERGED, p.FAILED) else "info"
            self.log_pane.add(level, f"{event.state}" + (f": {event.reason}" if event.reason else ""))
            if self.quitting:
                self.exit()
            elif self.pending_start:
                self.pending_start = False
                self.action_toggle_run()

    def on_engine_StepStats(self, event: p.StepStats) -> None:
        if event.mem_allocated is not None:
            self.pane("device").show_memory(event.mem_allocated, event.mem_reserved)

    def on_engine_HparamsChanged(self, event: p.HparamsChanged) -> None:
        text = ", ".join(f"{k} {old:g} → {new:g}" for k, (old, new) in event.changes.items())
        self.log_pane.add("change", f"step {event.step}: {text}")
        train = dataclasses.replace(self.config.train, **{k: new for k, (_, new) in event.changes.items()})
        self.config = dataclasses.replace(self.config, train=train)
        self.pane("hparams").set_values(train)

    def on_engine_CheckpointSaved(self, event: p.CheckpointSaved) -> None:
        if event.kind == "manual":  # last/best are written every epoch; logging each would bury the log
            self.log_pane.add("info", f"saved checkpoint at step {event.step}: {event.path}")

    def on_engine_Log(self, event: p.Log) -> None:
        self.log_pane.add(event.level, event.message)

    def on_engine_Error(self, event: p.Error) -> None:
        self.log_pane.add("error", event.message, event.traceback)
        self.notify(event.message.splitlines()[0], severity="error", timeout=6)

    def refresh_status(self) -> None:
        self.status_bar.show(self.history, self.problem, self.notice, self.typing_in())
        for footer in self.query(ContextFooter):  # the keys that matter in this state
            footer.follow(self.history.state, self.size.width)

    # ------------------------------------------------------------------ editing

    def on_config_changed(self, message: ConfigChanged) -> None:
        if self._revalidate_timer is not None:
            self._revalidate_timer.stop()
        self._revalidate_timer = self.set_timer(0.2, self.revalidate)

    def revalidate(self) -> None:
        """Rebuild the config from the panes; show problems inline; apply live fields to an active run."""
        sections = self.deck.sections()
        config, self.config_problems = editing.collect(sections, self.config)
        self._show_problems()
        if config is not None and config != self.config:
            config = editing.named_for_data(self.config, config)
            self.sub_title = config.name
            live, later = editing.live_changes(self.config, config)
            old, self.config = self.config, config
            self._show_parallel()
            if self.history.state in p.ACTIVE_STATES:
                if live:
                    self.bridge.send(p.SetHparams(**live))
                if later:
                    self.notice = f"{', '.join(later)}: applies on restart (r)"
            if old.data != config.data or old.model != config.model or old.train.loss != config.train.loss:
                self._request_previews()
        self.refresh_status()

    def _show_parallel(self) -> None:
        if self.deck.built:
            self.pane("device").show_parallel(self.config.device, self.config.train.batch_size)

    def _show_problems(self) -> None:
        """Every problem beside its field (config checks first, then load errors); the first blocks Start."""
        # Each once: the data preview and the model summary both load the data, and either answers first.
        problems = list(dict.fromkeys(self.config_problems + list(self.load_problems.values())))
        self.deck.show_problems(problems)
        self.problem = problems[0] if problems else ""
        self.refresh_status()

    # ------------------------------------------------------------------ actions

    def action_lr_scale(self, factor: float) -> None:
        if self.history.state not in p.ACTIVE_STATES:
            self.notify("lr ×2/÷2 applies to a running or paused run; edit train.lr in Hparams otherwise")
            return
        # Relative, applied by the engine to the lr it has then: quick presses compound as they should.
        self.bridge.send(p.SetHparams(lr_scale=factor))

    def action_checkpoint(self) -> None:
        self.bridge.send(p.CheckpointNow())

    def action_log_scale(self) -> None:
        for chart_id, chart in self.charts.items():
            if chart.log_scalable:
                chart.log_scale = not chart.log_scale
                chart.mark_dirty()
                self.scheduler.urgent(chart_id)
        self.scheduler.redraw_one()  # the loss chart now, the other two on the next ticks

    def action_grad_mode(self) -> None:
        self.charts["grad-chart"].cycle_mode()
        self.scheduler.urgent("grad-chart")

    def action_focus_next(self) -> None:
        """tab: with nothing focused, the next pane; otherwise the next field (Textual's focus chain)."""
        if self.focused is None and len(self.screen_stack) == 1:  # not under a modal screen
            ids = list(PANE_IDS)
            current = self.tabs.active.removeprefix("tab-")
            self.action_focus_pane(ids[(ids.index(current) + 1) % len(ids)] if current in ids else ids[0])
        else:
            super().action_focus_next()

    def action_blur(self) -> None:
        self.set_focus(None)

    def action_help(self) -> None:
        # Built once and kept installed: composing the dialog on every ? took a keypress ~100 ms.
        from torchtui.tui.screens.help import HelpScreen

        if not self.is_screen_installed("help"):
            keys = [(b.key_display or b.key, b.description) for b in self.BINDINGS if b.description]
            self.install_screen(HelpScreen(keys + PANE_KEYS), name="help")
        self.push_screen("help")

    def action_edit_list(self, key: str, operation: str) -> None:
        """The palette's way to what a, d, [ and ] do in the Model pane (see ModelPane.edit_list)."""
        self.action_focus_pane("model")
        self.pane("model").edit_list(key, operation)
