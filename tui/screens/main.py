"""MainScreen: the app's one screen of its own. It composes the setup panes, the charts, the log, the status bar
and the Footer, lays them out for the terminal's width, and keeps the status bar and the Footer in step with
the UI state it holds in reactives (the run's state, the problem that blocks a start, a notice, where keys go).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen

if TYPE_CHECKING:
    from textual.widgets import TabbedContent

from torchtui.tui.panes.deck import PANE_IDS
from torchtui.tui.widgets.footer import ContextFooter
from torchtui.tui.widgets.log_pane import LogPane
from torchtui.tui.widgets.status_bar import StatusBar

NARROW_COLUMNS = 120   # below this, setup and charts share the screen as two views
ROOMY_COLUMNS = 160    # from here the setup and the charts both have room side by side while a run trains
WIDE_VIEW = "charts-wide"  # at >= 120 columns, v hides the setup panes: the charts take the whole width


class MainScreen(Screen):
    """Composes and lays out; the controllers (app.py) fill it and change its reactives."""

    # repaint=False: the watchers repaint what shows them (the status bar, the Footer). A reactive's default
    # repaints the whole screen: every widget re-rendered on each flush of steps, 65 % of the UI's core.
    state: reactive[str] = reactive("idle", repaint=False)  # the run's state, as the history has it
    problem: reactive[str] = reactive("", repaint=False)  # the first problem of the setup: blocks a start
    notice: reactive[str] = reactive("", repaint=False)  # a line under the run's (e.g. applies on restart)
    typing: reactive[str] = reactive("", repaint=False)  # the field keys go to ("train.lr"), "" for the app
    pending: reactive[str] = reactive("", repaint=False)  # a live field typed, not applied ("train.lr 5e-3")
    status_version: reactive[int] = reactive(0, repaint=False)  # bumped when the run's numbers changed

    def compose(self) -> ComposeResult:
        # The first frame is this shell, the panes' tab titles and the Footer's keys: the panes, charts and log
        # come right after it (mount_body), with their modules, so the terminal shows the app before they are
        # imported and laid out.
        from textual.widgets import TabbedContent

        with Horizontal(id="main"):
            with Vertical(id="setup"), TabbedContent(id="panes"):
                yield from self.app.deck.tabs()  # empty until the deck mounts the panes
            yield Vertical(id="charts")
        yield StatusBar(id="status")
        yield ContextFooter(compact=True)

    async def on_mount(self) -> None:
        # References kept: query_one searches the active screen, which may be a modal one on top of this.
        self.status_bar = self.query_one(StatusBar)
        self.footer = self.query_one(ContextFooter)
        self.tabs = self.query_one("#panes")
        # Made now, mounted with the body: what is logged before then (a problem found while reading the
        # setup, an engine event) waits in it.
        self.log_pane = LogPane(id="log")
        self.layout_for(self.app.size.width)
        await self.app.main_mounted()

    async def mount_body(self) -> None:
        """The chart slots (filled by ChartGrid.load), the per-rank strip (data parallel only) and the log,
        once the app's setup is read."""
        from torchtui.tui.charts.grid import ChartGrid
        from torchtui.tui.widgets.rank_strip import RankStrip

        self.chart_grid = ChartGrid(self.app.history, id="chart-grid")
        await self.query_one("#charts").mount_all([self.chart_grid, RankStrip(id="rank-strip"), self.log_pane])
        self.apply_view()
        self.refresh_status()

    # ------------------------------------------------------------------ layout

    def on_resize(self, event) -> None:
        self.layout_for(event.size.width)

    def layout_for(self, width: int) -> None:
        """This screen's layout, never the active one's: a resize under a modal set the classes on the modal."""
        self._mark("narrow", width < NARROW_COLUMNS)
        self.apply_view()

    def _mark(self, name: str, on: bool) -> None:
        # The view's classes say which view shows (tests and the Footer read them), without re-styling
        # the screen's 1,100 widgets (2 s per change while training): apply_view sets the styles concerned.
        self.set_class(on, name, update=False)

    @property
    def narrow(self) -> bool:
        return self.has_class("narrow")

    def apply_view(self) -> None:
        """Show the setup, the charts and the log as the view classes say, on those containers alone."""
        if not hasattr(self, "log_pane"):  # before on_mount
            return
        narrow = self.narrow
        view = ("more" if self.has_class("show-more") else "charts" if self.has_class("show-charts")
                else "setup") if narrow else ""
        setup, charts = self.query_one("#setup"), self.query_one("#charts")
        setup.styles.width = "1fr" if narrow else 58  # the first frame's tabs too: their width from the start
        setup.display = view == "setup" if narrow else not self.has_class(WIDE_VIEW)
        charts.display = view != "setup" if narrow else True
        if not hasattr(self, "chart_grid"):  # the body is not mounted yet
            return
        self.chart_grid.styles.grid_size_columns = 1 if view == "more" else 2
        for slot in self.chart_grid.children:
            slot.display = not narrow or slot.has_class("view-more" if view == "more" else "view-charts")
        for prediction in self.chart_grid.query("#prediction"):
            prediction.styles.column_span = 1 if narrow else 2
        self.log_pane.display = not narrow or view == "more"
        self.log_pane.styles.height = "1fr" if view == "more" else 8

    def show_charts(self) -> str:
        """A run starts: the charts come into view. Returns a line for the log, or ""."""
        self._mark("show-more", False)
        self._mark("show-charts", True)
        line = ""
        if not self.narrow and self.app.size.width < ROOMY_COLUMNS and not self.has_class(WIDE_VIEW):
            # 120-159 columns: beside the setup the charts get ~60 columns; while training they take the width
            self._mark(WIDE_VIEW, True)
            line = "the charts take the width while the run trains: v brings the setup back"
        self.apply_view()
        return line

    def toggle_view(self) -> None:
        """Below 120 columns one view shows at a time: setup → charts → lr and log → setup. Wider, setup and
        charts are side by side: v hides the setup panes so the charts take the whole width, and back."""
        if not self.narrow:
            self._mark(WIDE_VIEW, not self.has_class(WIDE_VIEW))
        elif self.has_class("show-charts"):
            self._mark("show-charts", False)
            self._mark("show-more", True)
        elif self.has_class("show-more"):
            self._mark("show-more", False)
        else:
            self._mark("show-charts", True)
        self.apply_view()

    def show_pane(self, pane_id: str) -> None:
        """Show a pane with keys going to the app (space, + and - keep working); tab then moves into its first
        field. A field that had focus gives it up: its pane may be hidden now."""
        for name in ("show-charts", "show-more", WIDE_VIEW):
            self._mark(name, False)
        self.apply_view()
        self.app.deck.mount(pane_id)
        self.tabs.active = f"tab-{pane_id}"
        self.app.set_focus(None)
        self._entering = None  # a pane key after tab: the later key wins

    _entering: str | None = None  # the pane a tab goes into once it is mounted (keys may come before it is)

    def enter_pane(self) -> None:
        """tab with nothing focused: into the first field of the pane shown (the setup view first, when narrow).
        A pane still being built or mounted (start-up, or 2 then tab in one burst) is entered once it is."""
        if self.narrow and (self.has_class("show-charts") or self.has_class("show-more")):
            self.show_pane(self.tabs.active.removeprefix("tab-") or PANE_IDS[0])
        self._entering = self.tabs.active.removeprefix("tab-") or PANE_IDS[0]
        self._enter_when_mounted()

    def _enter_when_mounted(self) -> None:
        pane_id = self._entering
        if pane_id is None:
            return
        if self.app.focused is not None or self.tabs.active != f"tab-{pane_id}" or self.app.screen is not self:
            self._entering = None  # a later key took focus, or showed another pane: the tab is spent
            return
        pane = self.app.deck.panes.get(pane_id)
        if pane is not None and pane.is_mounted and pane.focus_first():
            self._entering = None
            return
        self.app.deck.mount(pane_id)  # before the deck is built a no-op: the timer comes back
        self.set_timer(0.05, self._enter_when_mounted)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.app.deck.mount(event.pane.id.removeprefix("tab-"))

    # ------------------------------------------------------------------ views that keys open

    def show_help(self) -> None:
        # Built once and kept installed: composing the dialog on every ? took a keypress ~100 ms.
        from torchtui.tui.keys import PANE_KEYS
        from torchtui.tui.screens.help import HelpScreen

        app = self.app
        if not app.is_screen_installed("help"):
            keys = [(b.key_display or b.key, b.description) for b in app.BINDINGS if b.description]
            app.install_screen(HelpScreen(keys + PANE_KEYS), name="help")
        app.push_screen("help")

    def show_traceback(self) -> None:
        if not self.log_pane.last_error:
            self.app.notify("no error to show: t opens the traceback of the last error in the log")
            return
        from torchtui.tui.screens.traceback import TracebackScreen

        self.app.push_screen(TracebackScreen(*self.log_pane.last_error))

    def log_scale(self) -> None:
        charts, scheduler = self.app.charts, self.app.scheduler
        for chart_id, chart in charts.items():
            if chart.log_scalable:
                chart.log_scale = not chart.log_scale
                chart.mark_dirty()
                scheduler.urgent(chart_id)
        scheduler.redraw_one()  # the loss chart now, the other two on the next ticks

    def grad_mode(self) -> None:
        self.app.charts["grad-chart"].cycle_mode()
        self.app.scheduler.urgent("grad-chart")

    def add_layer(self) -> None:
        """a with the layer list not focused: in the Model pane, a hidden layer (or conv block) at the end, focused
        so d, [ and ] act on it; elsewhere a line that says where a works."""
        model = self.app.deck.panes.get("model")
        if model is None or not model.is_mounted or self.tabs.active != "tab-model" \
                or not self.query_one("#setup").display:
            self.app.notify("a adds a layer in the Model pane: 2 shows it, then a")
            return
        key = "layers" if model.layer_list.display else "conv" if model.conv_list.display else ""
        if not key:
            self.app.notify(f"a {model.top.raw('kind')} model has no layer list to add to")
            return
        model.edit_list(key, "add")

    def edit_list(self, key: str, operation: str) -> None:
        """The palette's way to what a, d, [ and ] do in the Model pane (see ModelPane.edit_list)."""
        self.show_pane("model")
        self.app.deck.panes["model"].edit_list(key, operation)

    # ------------------------------------------------------------------ the setup's messages

    def on_config_changed(self, message) -> None:
        message.stop()
        self.app.setup.on_config_changed()

    def on_field_committed(self, message) -> None:
        message.stop()
        self.app.live.on_committed(message.path)

    # ------------------------------------------------------------------ the status bar and the Footer

    def watch_state(self) -> None:
        self.refresh_status()

    def watch_problem(self) -> None:
        self.refresh_status()

    def watch_notice(self) -> None:
        self.refresh_status()

    def watch_typing(self) -> None:
        self.refresh_status()

    def watch_pending(self) -> None:
        self.refresh_status()

    def watch_status_version(self) -> None:
        self.refresh_status()

    def refresh_status(self) -> None:
        if not hasattr(self, "status_bar") or not self.app.built:  # before on_mount, or the app's setup is read
            return
        self.status_bar.show(self.app.history, self.problem, self.notice, self.typing, self.pending)
        self.footer.follow(self.state, self.app.size.width)

    def on_descendant_focus(self, event) -> None:
        self.typing = self.app.setup.typing_in(self.app.focused)

    def on_descendant_blur(self, event) -> None:
        self.typing = self.app.setup.typing_in(self.app.focused)
