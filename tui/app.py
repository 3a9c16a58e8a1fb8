"""The torchtui Textual app: it composes (MainScreen) and routes: keys to the controllers that own each feature,
engine events through one dispatch table. State lives in the controllers and the screen's reactives."""

from __future__ import annotations

import asyncio
import gc
import inspect
import signal
import time
from collections import deque

from textual import events
from textual.app import App

from torchtui.engine import protocol as p
from torchtui.engine.config import ExperimentConfig
from torchtui.engine.history import RunHistory
from torchtui.tui.bridge import EngineBridge
from torchtui.tui.charts.scheduler import ChartScheduler
from torchtui.tui.commands import ActionsProvider
from torchtui.tui.controllers import EventRouter
from torchtui.tui.controllers.lifecycle import Lifecycle
from torchtui.tui.controllers.live_fields import LiveFields
from torchtui.tui.controllers.lr_find import LrFindController
from torchtui.tui.controllers.presets import PresetController
from torchtui.tui.controllers.ranks import RanksController
from torchtui.tui.controllers.rewind import GuardController, RewindController
from torchtui.tui.controllers.run_control import RunController
from torchtui.tui.controllers.runs import RunsController, SanityCheck
from torchtui.tui.controllers.setup import SetupController
from torchtui.tui.keys import BINDINGS, PALETTE_ACTIONS, ROUTES
from torchtui.tui.panes.deck import PaneDeck
from torchtui.tui.screens.main import MainScreen

TICK_S = 0.1           # the UI drains engine events and redraws at most this often
EVENTS_BUDGET_S = 0.03  # engine events applied per tick at most this long: the rest wait, keys never starve
FIRST_PAINT_FALLBACK_S = 1.0  # the panes are built by then even if the Footer's keys never showed
ATTACH_FIRST_S = 1.0  # attaching: the panes are mounted once the run's charts are drawn, or after this long


class TorchTUI(App):
    """Set up an experiment in four panes, train it in the engine's run server (or worker), watch it live."""

    CSS_PATH = "app.tcss"
    AUTO_FOCUS = None  # keys like space must reach the app, not type into the first field
    TITLE = "torchtui"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    PALETTE_ACTIONS = PALETTE_ACTIONS
    BINDINGS = BINDINGS

    def __init__(self, config: ExperimentConfig, bridge: EngineBridge, runs_dir: str | None = None):
        super().__init__()
        self.bridge = bridge
        self.runs_dir = runs_dir
        self.history = RunHistory()
        self.deck = PaneDeck()  # built and mounted after the first paint
        self.charts: dict = {}  # filled after the first paint; the scheduler shares the dict
        self.scheduler = ChartScheduler(self.charts)
        # The features, each owning its state; events reach them in this order.
        self.setup = SetupController(self, config)
        self.runner = RunController(self)
        self.live = LiveFields(self)
        self.lr_finder = LrFindController(self)
        self.sanity = SanityCheck(self)
        self.runs = RunsController(self)
        self.presets = PresetController(self)
        self.lifecycle = Lifecycle(self)
        self.rewinder = RewindController(self)
        self.guard = GuardController(self)
        self.ranks = RanksController(self)
        self.router = EventRouter([self.setup, self.runner, self.live, self.lr_finder, self.sanity, self.lifecycle,
                                   self.rewinder, self.guard, self.ranks])
        self.main = MainScreen()
        self.first_notes: tuple = ()  # what the command line's setup should say once the log exists
        self._backlog: deque = deque()  # engine events drained but not applied yet (over a tick's budget)
        self._exit_when_ready: tuple | None = None
        self._painted = False  # the first frame is on screen: the charts, panes and engine follow
        self._attaching = getattr(bridge.host, "info", None) is not None  # given a live run server
        self._history_drawn = False  # the attached run's History is on the charts
        self._panes_started = False

    def get_default_screen(self) -> MainScreen:
        return self.main

    def on_mount(self) -> None:
        self.sub_title = self.setup.config.name
        self.set_interval(TICK_S, self.poll_engine)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.lifecycle.stop_and_exit)
        if hasattr(signal, "SIGHUP"):
            # A plain handler, not the loop's: with the terminal gone the loop can be stuck in a write to
            # it, and a Python-level handler still runs (the write returns EINTR first).
            signal.signal(signal.SIGHUP, self.lifecycle.hang_up)

    def main_mounted(self) -> None:
        """The main screen is up (after this app's own mount): wait for its first frame, greet in the log."""
        # The panes are built (and the engine started) once the first frame, keys included, is on screen;
        # the timer is a fallback for a Footer that never shows keys (a terminal that reports no focus).
        self.main.footer.when_keys_shown(self._first_frame_shown)
        self.set_timer(FIRST_PAINT_FALLBACK_S, self._first_frame_shown)
        self.main.log_pane.add("info", "attaching to its server…" if self._attaching else
                               "starting the engine (loading torch…)")
        for note in self.first_notes:
            self.main.log_pane.add("info", note)

    async def _first_frame_shown(self) -> None:
        if not self._painted:  # the Footer's callback, or the fallback timer: whichever comes first
            self._painted = True
            started = self._after_first_paint()
            if inspect.isawaitable(started):  # tests replace it with a plain function
                await started

    async def _after_first_paint(self) -> None:
        self.charts.update(await self.main.chart_grid.load())  # the scheduler shares this dict
        self.main.apply_view()  # the charts took their slots' places
        self.deck.build(self.setup.config)
        self.setup.show_parallel()
        self.bridge.start()
        self.poll_engine()  # an attached run's History is often here already: its charts are drawn first
        if self._attaching and not self._history_drawn:
            # The panes' seven hundred widgets take a few hundred ms to mount: they wait for the run's charts
            # (at most ATTACH_FIRST_S), so a client that attaches shows the run before anything else loads.
            self.set_timer(ATTACH_FIRST_S, self._mount_panes_once)
            return
        self.call_after_refresh(self._mount_panes_once)

    def _mount_panes_once(self) -> None:
        if not self._panes_started:
            self._panes_started = True
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

    def exit(self, *args, **kwargs) -> None:
        """Exit, but not in the middle of mounting a pane (a quit within the first second): Textual's
        teardown of a half-mounted Select raises. Mounting ends within a second; a timer makes sure."""
        if self.deck.ready or not self.deck.tab_panes or self._exit_when_ready is not None:
            super().exit(*args, **kwargs)
            return
        self._exit_when_ready = (args, kwargs)
        self.set_timer(5, lambda: super(TorchTUI, self).exit(*args, **kwargs))

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.scheduler.hold()  # what the key changes is drawn before the next chart build
        await super().on_event(event)

    # ------------------------------------------------------------------ engine events

    def poll_engine(self) -> None:
        """Timer: apply the engine's events (for at most EVENTS_BUDGET_S, so keys are handled between ticks
        however many arrive: a resumed run's replay is thousands), route them, redraw at most one chart."""
        if not self.deck.built:
            return  # built right after the first paint; until then events wait, so no handler meets a missing pane
        self._backlog.extend(self.bridge.drain())
        deadline = time.perf_counter() + EVENTS_BUDGET_S
        numbers = False
        whole = False
        while self._backlog and time.perf_counter() < deadline:
            event = self._backlog.popleft()
            changed = self.history.apply(event)
            numbers |= bool(changed)
            self.scheduler.changed(changed)
            self.router.dispatch(event)
            whole |= isinstance(event, p.History)
        if whole:  # a run drawn whole at once (attached, or resumed): every chart now, not one a tick
            self.scheduler.redraw_all()
            if not self._history_drawn:
                self._history_drawn = True
                self.call_after_refresh(self._mount_panes_once)  # the charts reach the screen first
        else:
            self.scheduler.redraw_one()
        if numbers:
            self.main.state = self.history.state
            self.main.status_version += 1

    # ------------------------------------------------------------------ keys that are the app's own

    def action_focus_next(self) -> None:
        """tab: with nothing focused, into the shown pane's first field; otherwise the next field."""
        if self.focused is None and self.screen is self.main:  # not under a modal screen
            self.main.enter_pane()
        else:
            super().action_focus_next()

    def action_blur(self) -> None:
        """escape: a live value typed but not applied goes back to the run's, and keys go to the app."""
        self.live.revert()
        self.set_focus(None)

    # ------------------------------------------------------------------ read through (the CLI and tests)

    @property
    def config(self) -> ExperimentConfig:
        return self.setup.config

    @config.setter
    def config(self, config: ExperimentConfig) -> None:
        self.setup.config = config

    @property
    def problem(self) -> str:
        return self.main.problem

    @property
    def notice(self) -> str:
        return self.main.notice

    @property
    def log_pane(self):
        return self.main.log_pane

    @property
    def panes(self) -> dict:
        return self.deck.panes

    @property
    def panes_ready(self) -> bool:
        return self.deck.ready

    def pane(self, pane_id: str):
        return self.deck.panes[pane_id]

    @property
    def farewell(self) -> str:
        return self.lifecycle.farewell


# The classes of the app's attributes that keys.ROUTES names: an action takes its target's parameters.
OWNERS = {"runner": RunController, "lifecycle": Lifecycle, "presets": PresetController, "runs": RunsController,
          "sanity": SanityCheck, "lr_finder": LrFindController, "main": MainScreen, "rewinder": RewindController}


def _route(owner: str, method: str):
    def action(self, *args):
        return getattr(getattr(self, owner), method)(*args)

    action.__name__ = f"action_{method}"
    action.__doc__ = f"Routed to {owner}.{method} (keys.ROUTES)."
    # Textual passes an action as many arguments as the method's signature takes.
    action.__signature__ = inspect.signature(getattr(OWNERS[owner], method))
    return action


for _action, (_owner, _method) in ROUTES.items():
    setattr(TorchTUI, f"action_{_action}", _route(_owner, _method))
