"""The torchtui Textual app: it composes (MainScreen) and routes: keys to the controllers that own each feature,
engine events through one dispatch table. State lives in the controllers and the screen's reactives.

Its first frame is a shell (the panes' tab titles, the Footer's keys, the status bar) drawn from this module's
light imports; then come the config, the controllers, the charts and the log, whose modules (the protocol, the
config's schema, yaml) would otherwise be imported and laid out before the terminal showed anything. Attaching
to a run, the charts come first instead: in the first frame, the run's History drawn on them (_charts_first).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import events
from textual.app import App

from torchtui.engine.errors import UserError
from torchtui.tui.charts.scheduler import ChartScheduler
from torchtui.tui.commands import ActionsProvider
from torchtui.tui.keys import BINDINGS, PALETTE_ACTIONS, ROUTES
from torchtui.tui.panes.deck import PaneDeck
from torchtui.tui.screens.main import MainScreen

if TYPE_CHECKING:
    from torchtui.engine.config import ExperimentConfig
    from torchtui.tui.bridge import EngineBridge

# What the CLI hands the app instead of a config, read once the first frame is on screen:
# () -> (config, attributes for the setup controller (preset_ref, sweep_section), notes for the log).
Loader = Callable[[], "tuple[ExperimentConfig, dict, tuple]"]

TICK_S = 0.1           # the UI drains engine events and redraws at most this often
EVENTS_BUDGET_S = 0.03  # engine events applied per tick at most this long: the rest wait, keys never starve
FIRST_PAINT_FALLBACK_S = 1.0  # the panes are built by then even if the Footer's keys never showed
FIRST_HISTORY_S = 0.5  # attaching: the first frame waits this long at most for the run's History
ATTACH_FIRST_S = 1.0  # attaching: the setup and panes are loaded once the run's charts are drawn, or after this long
EXIT_FALLBACK_S = 30.0  # a quit while the panes mount waits for them (a second here; 20 s on a loaded machine)


class TorchTUI(App):
    """Set up an experiment in four panes, train it in the engine's run server (or worker), watch it live."""

    CSS_PATH = "app.tcss"
    AUTO_FOCUS = None  # keys like space must reach the app, not type into the first field
    TITLE = "torchtui"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    PALETTE_ACTIONS = PALETTE_ACTIONS
    BINDINGS = BINDINGS

    def __init__(self, config: ExperimentConfig | Loader, bridge: EngineBridge, runs_dir: str | None = None):
        """`config`: the setup, or a Loader (the CLI's preset, read after the first frame; a UserError it
        raises ends the app with return code 2 and is kept in `load_error` for the CLI to print)."""
        super().__init__()
        self.bridge = bridge
        self.runs_dir = runs_dir
        self.deck = PaneDeck()  # built and mounted after the first paint
        self.charts: dict = {}  # filled after the first paint; the scheduler shares the dict
        self.scheduler = ChartScheduler(self.charts)
        self.main = MainScreen()
        self.first_notes: tuple = ()  # what the command line's setup should say once the log exists
        self.load_error: UserError | None = None
        self._loader = config if callable(config) else None
        self._early: list = []  # keys' actions before the body was mounted: run in order once it is
        self._keys_open = False
        self._backlog: deque = deque()  # engine events drained but not applied yet (over a tick's budget)
        self._exit_when_ready: tuple | None = None
        self._painted = False  # the first frame is on screen: the charts, panes and engine follow
        self._attaching = bridge.attaching
        self._panes_started = False
        self._unrouted: list = []  # events drawn on those charts, for the controllers once they are built
        self._charts_mounted = asyncio.Event()  # attaching: the charts are mounted before the controllers
        self._charts_drawn = asyncio.Event()  # the attached run's History is on them
        self._history_seen = False
        if self._loader is None:
            self._build(config)

    @property
    def built(self) -> bool:
        """The setup is read and the controllers exist (from construction, or once a Loader ran)."""
        return "setup" in vars(self)

    def _build(self, config: ExperimentConfig) -> None:
        """The history and the features, each owning its state; events reach them in the router's order."""
        from torchtui.engine.history import RunHistory
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

        if "history" not in vars(self):  # attaching, it came first (_charts_first)
            self.history = RunHistory()
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
        self.setup = SetupController(self, config)  # last: `built` says the others are there too
        self.router = EventRouter([self.setup, self.runner, self.live, self.lr_finder, self.sanity, self.lifecycle,
                                   self.rewinder, self.guard, self.ranks])

    def get_default_screen(self) -> MainScreen:
        return self.main

    def on_mount(self) -> None:
        self.set_interval(TICK_S, self.poll_engine)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._terminated)
        if hasattr(signal, "SIGHUP"):
            # A plain handler, not the loop's: with the terminal gone the loop can be stuck in a write to
            # it, and a Python-level handler still runs (the write returns EINTR first).
            signal.signal(signal.SIGHUP, self._hung_up)

    def _terminated(self) -> None:
        self.lifecycle.stop_and_exit() if self.built else self.exit()

    def _hung_up(self, signum, frame) -> None:
        if self.built:
            self.lifecycle.hang_up(signum, frame)
        else:  # no engine started yet, and no terminal to restore: a write to it may never return
            os._exit(128 + signal.SIGHUP)

    async def main_mounted(self) -> None:
        """The main screen is mounted, not drawn yet: the rest of the app is built once its first frame is."""
        # The panes are built (and the engine started) once the first frame, keys included, is on screen;
        # the timer is a fallback for a Footer that never shows keys (a terminal that reports no focus).
        self.main.footer.when_keys_shown(self._first_frame_shown)
        self.set_timer(FIRST_PAINT_FALLBACK_S, self._first_frame_shown)
        if self._attaching:  # the run's charts are in the first frame, before the keys and everything else
            await self._charts_first()

    async def _first_frame_shown(self) -> None:
        if not self._painted:  # the Footer's callback, or the fallback timer: whichever comes first
            self._painted = True
            started = self._after_first_paint()
            if inspect.isawaitable(started):  # tests replace it with a plain function
                await started

    async def _charts_first(self) -> None:
        """Attaching: the charts, and the run's History on them as soon as it is here, before the tabs, the
        setup and the controllers (events drawn now are routed to those once they exist)."""
        from torchtui.engine.history import RunHistory

        self.bridge.start()  # connected, the History on its way (it usually is by now: cli/attach.py)
        self.history = RunHistory()  # _build keeps it
        await self.main.mount_body()
        self.charts.update(await self.main.chart_grid.load())
        line = self.main.show_charts()  # below 120 columns the charts are a view of their own: it is the one shown
        if line:
            self.main.log_pane.add("info", line)
        self._charts_mounted.set()
        # The run's History, on them before the first frame when it comes in time (the server sends it at once,
        # cli/attach.py connected before the app loaded); else the next ticks draw it.
        deadline = time.monotonic() + FIRST_HISTORY_S
        while not self._history_seen and time.monotonic() < deadline:
            self.poll_engine()
            if not self._history_seen:
                await asyncio.sleep(0.005)

    async def _after_first_paint(self) -> None:
        self.call_after_refresh(self._load_body)
        self.main.refresh()  # a refresh to come, whatever else is pending

    async def _load_body(self) -> None:
        if self._attaching:  # the run's charts first: the setup is read once they are drawn (or a second on)
            await self._charts_mounted.wait()  # _charts_first, begun before this, may be between its awaits
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._charts_drawn.wait(), ATTACH_FIRST_S)
        if not self.built and not self._read_setup():
            return
        self.sub_title = self.setup.config.name
        if hasattr(self.main, "chart_grid"):  # attaching, it is there already (_charts_first)
            self.main.refresh_status()  # the run's state and numbers, drawn once the app is built
        else:
            await self.main.mount_body()
        self.main.log_pane.add("info", "attaching to its server…" if self._attaching else
                               "starting the engine (loading torch…)")
        for note in self.first_notes:
            self.main.log_pane.add("info", note)
        self._keys_open = True
        for action, args in self._early:  # keys pressed before the body was there, in their order
            done = action(self, *args)
            if inspect.isawaitable(done):
                await done
        self._early.clear()
        self.charts.update(await self.main.chart_grid.load())  # the scheduler shares this dict
        self.main.apply_view()  # the charts took their slots' places
        self.deck.build(self.setup.config)
        self.setup.show_parallel()
        self.bridge.start()
        for event in self._unrouted:  # drawn before the controllers existed: they see them now, in order
            self.router.dispatch(event)
        self._unrouted.clear()
        self.poll_engine()  # an attached run's History is often here already: its charts are drawn first
        if self._attaching and not self._charts_drawn.is_set():
            # The panes' seven hundred widgets take a few hundred ms to mount: they wait for the run's charts
            # (at most ATTACH_FIRST_S), so a client that attaches shows the run before anything else loads.
            self.set_timer(ATTACH_FIRST_S, self._mount_panes_once)
            return
        self.call_after_refresh(self._mount_panes_once)

    def _read_setup(self) -> bool:
        """Run the Loader and build the features on what it read; a bad preset ends the app (return code 2)."""
        try:
            config, setup_attributes, notes = self._loader()
        except UserError as err:
            self.load_error = err
            super().exit(return_code=2)
            return False
        self._build(config)
        for name, value in setup_attributes.items():
            setattr(self.setup, name, value)
        self.first_notes = (*self.first_notes, *notes)
        return True

    def _mount_panes_once(self) -> None:
        if not self._panes_started and self.deck.built:  # attaching, the charts can be drawn before it is
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
        self.set_timer(EXIT_FALLBACK_S, lambda: super(TorchTUI, self).exit(*args, **kwargs))

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.scheduler.hold()  # what the key changes is drawn before the next chart build
        await super().on_event(event)

    # ------------------------------------------------------------------ engine events

    def poll_engine(self) -> None:
        """Timer: apply the engine's events (for at most EVENTS_BUDGET_S, so keys are handled between ticks
        however many arrive: a resumed run's replay is thousands), route them, redraw at most one chart."""
        if not self.deck.built and not self._charts_mounted.is_set():
            return  # built right after the first paint; until then events wait, so no handler meets a missing pane
        routed = self.deck.built  # else the charts alone are there: the events wait for the controllers
        from torchtui.engine import protocol as p  # imported by then (a dict lookup): not on the first frame

        self._backlog.extend(self.bridge.drain())
        deadline = time.perf_counter() + EVENTS_BUDGET_S
        numbers = False
        whole = False
        while self._backlog and time.perf_counter() < deadline:
            event = self._backlog.popleft()
            changed = self.history.apply(event)
            numbers |= bool(changed)
            self.scheduler.changed(changed)
            self.router.dispatch(event) if routed else self._unrouted.append(event)
            whole |= isinstance(event, p.History)
        if whole:  # a run drawn whole at once (attached, or resumed): every chart now, not one a tick
            self._history_seen = True
            self._draw_whole()
        else:
            self.scheduler.redraw_one()
        if numbers:
            self.main.state = self.history.state
            self.main.status_version += 1

    def _draw_whole(self, tries: int = 10) -> None:
        """Every chart now; those not laid out yet (attaching, the charts just mounted) on the next frames."""
        self.scheduler.redraw_all()
        if tries and not self.scheduler.all_drawn():
            self.call_after_refresh(self._draw_whole, tries - 1)
        elif not self._charts_drawn.is_set():
            self._charts_drawn.set()
            self.call_after_refresh(self._mount_panes_once)  # the charts reach the screen first

    # ------------------------------------------------------------------ keys that are the app's own

    def action_focus_next(self) -> None:
        """tab: with nothing focused, into the shown pane's first field; otherwise the next field."""
        if not self._keys_open:
            self._early.append((TorchTUI.action_focus_next, ()))
        elif self.focused is None and self.screen is self.main:  # not under a modal screen
            self.main.enter_pane()
        else:
            super().action_focus_next()

    def action_blur(self) -> None:
        """escape: a live value typed but not applied goes back to the run's, and keys go to the app."""
        if self.built:
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
        return self.lifecycle.farewell if self.built else ""


def _route(owner: str, method: str):
    """action_<name> for keys.ROUTES: the method `method` of the app's attribute `owner` (a controller, or
    the main screen), given as many of the binding's arguments as it takes, as Textual gives an action's.
    Keys pressed before the body is mounted wait for it (their controllers are built after the first frame)."""
    arity: list[int] = []

    def action(self, *args):
        if not self._keys_open:
            self._early.append((action, args))
            return None
        target = getattr(getattr(self, owner), method)
        if not arity:
            arity.append(len(inspect.signature(target).parameters))
        return target(*args[:arity[0]])

    action.__name__ = f"action_{method}"
    action.__doc__ = f"Routed to {owner}.{method} (keys.ROUTES)."
    action._param_count = 8  # Textual's count of the arguments to pass (textual/_callback.py): all of them
    return action


for _action, (_owner, _method) in ROUTES.items():
    setattr(TorchTUI, f"action_{_action}", _route(_owner, _method))
