"""Base chart widget: its own plotext plot, rebuilt only when its data changed, downsampled to its width."""

from __future__ import annotations

import math
import textwrap

from plotext._dict import themes as plotext_themes
from plotext._utility import ansi_end, colors_to_ansi
from rich.color import Color, ColorParseError
from rich.errors import StyleSyntaxError
from rich.style import Style
from rich.text import Text
from textual_plotext import PlotextPlot

from torchtui.engine.history import RunHistory
from torchtui.engine.history.series import Series
from torchtui.tui.charts.axes import place_labels, tick_labels, y_ticks

MIN_BUCKETS = 10
# Values this large cannot come from a float32 run (at most 3.4e38) and overflow the axis arithmetic: not drawn,
# like NaN and inf (the comparison is False for NaN, so they go too).
HUGE = 1e300
# below this a legend that does not fit beside the title is left out (the title names the series)
LEGEND_MIN_HEIGHT = 10
# Used when no app is running (the bench builds charts headless) or the app's theme is not registered
# yet: "default" colours everywhere, so the canvas is the terminal's own background on dark and light.
FALLBACK_THEME = "textual-default"

# textual-plotext's colour sequence, picked to read on dark and light backgrounds. Series also differ by
# marker, so they stay apart under NO_COLOR (Textual strips colour from the rendered Text).
BLUE, GREEN, RED, ORANGE = (0, 130, 200), (60, 180, 75), (230, 25, 75), (245, 130, 48)
PURPLE, TEAL, MAGENTA, OLIVE = (145, 30, 180), (0, 128, 128), (240, 50, 230), (128, 128, 0)
GREY = (128, 128, 128)
PALETTE = (BLUE, ORANGE, GREEN, RED, PURPLE, TEAL, MAGENTA, OLIVE)


class Chart(PlotextPlot):
    """A chart of a RunHistory. The app calls `mark_dirty()` when its data changed and `redraw()` on a tick.

    Building a plotext picture costs 10–50 ms of pure Python, so the picture is built in `redraw()` (or
    when the size or theme changed) and `render()` returns the cached Text: repaints for other reasons
    (focus, scrolling, a neighbour's resize) cost nothing.
    """

    chart_title = "chart"
    # What the app reads: the RunHistory group whose changes redraw it, and whether `l` puts it on a log
    # scale. Where it goes (its widget id and narrow view) is the registry's (charts/registry.py).
    group = ""
    log_scalable = False
    waiting = "waiting for the first training steps"
    step_axis = True  # x is a step count: whole-number ticks (the prediction view plots features)
    # The legend as a line of its own above the plot (or beside the title) instead of plotext's, which is
    # drawn over the data: six layer names covered a CNN's grad chart.
    legend_row = False

    def __init__(self, history: RunHistory, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None, disabled: bool = False):
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.history = history
        self.dirty = True
        self.buckets = MIN_BUCKETS
        self.area = (0, 0)  # the size of the last build, in cells
        self.points_plotted = 0  # points handed to plotext by the last build: tests and the bench read it
        self._log_scale = False
        self._text: Text | None = None
        self._key: tuple | None = None
        self._extent: list[float] = []  # x min, x max, y min, y max of what the last draw() plotted
        self._labels = 0  # legend rows the last draw() asked for
        self._legend: list[tuple[str, object, str]] = []  # (label, colour, marker) when legend_row
        self._change_marks: list[tuple[int, str]] = []  # live-change markers of the last draw()

    @property
    def log_scale(self) -> bool:
        return self._log_scale

    @log_scale.setter
    def log_scale(self, value: bool) -> None:
        if bool(value) != self._log_scale:
            self._log_scale = bool(value)
            self.mark_dirty()

    def mark_dirty(self) -> None:
        """Note that the history changed; the next `redraw()` rebuilds the picture."""
        self.dirty = True

    def redraw(self) -> None:
        """Rebuild the picture from the history now and repaint (the app calls this at most once a tick)."""
        width, height = self.size
        if width <= 0 or height <= 0:
            return
        self._build(width, height)
        self.refresh()

    def render(self) -> Text:
        width, height = self.size
        if width <= 0 or height <= 0:
            return Text()
        if self._text is None or self._key != (width, height, self._theme_name()):
            self._build(width, height)
        return self._text

    def _build(self, width: int, height: int) -> None:
        theme = self._theme_name()
        self._text = self.build_text(width, height, theme)
        self._key = (width, height, theme)
        self.dirty = False

    def build_text(self, width: int, height: int, theme: str = FALLBACK_THEME) -> Text:
        """The chart as Text at this size; needs no running app, so the bench can time it headless."""
        self.buckets = max(MIN_BUCKETS, width)
        self.area = (width, height)
        self.points_plotted = 0
        message = self.placeholder()
        if message:
            return _centred(f"{self.chart_title}\n\n{message}", width, height)
        plt = self.plt
        plt.clear_data()
        plt.theme(theme)
        plt.yscale("log" if self.y_log() else "linear")
        plt.xlabel("")
        plt.ylabel("")
        plt.title("")
        self._extent, self._labels, self._legend, self._change_marks = [], 0, [], []
        header = self._header(self.draw(), width, height)
        # The title is a line of our own above the plot: plotext centres it on the canvas and drops it
        # without a word when it does not fit there, which lost the latest values on narrow screens.
        plot_height = max(1, height - len(header))
        plt.plotsize(width, plot_height)
        plt._set_size(width, plot_height)  # textual-plotext does the same; plotsize alone misses resizes
        self._frame(plot_height)
        text = Text(no_wrap=True, end="")
        for line in header:
            text.append_text(line)
            text.append("\n")
        text.append_text(plot_text(plt))
        return text

    def _header(self, title: str, width: int, height: int) -> list[Text]:
        """The title line, and the legend beside it when it fits, else on lines of its own when there is room."""
        items = [legend_item(label, color, marker) for label, color, marker in self._legend]
        title_line = Text(fit(title, width))
        if not items:
            return [_centre(title_line, width)]
        legend = Text("  ").join(items)
        if len(title_line) + 3 + len(legend) <= width:
            return [_centre(Text.assemble(title_line, "   ", legend), width)]
        if height < LEGEND_MIN_HEIGHT:
            return [_centre(title_line, width)]
        lines, line = [], Text()
        for item in items:
            if len(line) and len(line) + 2 + len(item) > width:
                lines.append(line)
                line = Text()
            line = Text.assemble(line, "  ", item) if len(line) else item
        lines.append(line)
        room = 1 if height < 2 * LEGEND_MIN_HEIGHT else 2
        if len(lines) > room:
            lines = lines[:room]
            lines[-1] = Text.assemble(lines[-1], " …") if len(lines[-1]) + 2 <= width else lines[-1]
        return [_centre(title_line, width)] + [_centre(line, width) for line in lines]

    def _frame(self, height: int) -> None:
        """Whole-number step ticks; a y axis of round ticks with short labels over the finite data, with
        room above it for the marker labels (and for plotext's legend, which it draws over the data)."""
        if not self._extent or not self.step_axis:
            return
        x0, x1, y0, y1 = self._extent
        ticks = step_ticks(x0, x1)
        self.plt.xticks(ticks, [f"{t:,}" for t in ticks])
        self.plt.xlim(x0, x1 if x1 > x0 else x0 + 1)
        log = self.y_log()
        rows = max(2, height - 3)  # canvas rows: the frame and the x tick labels take the rest
        y0, y1 = self.y_range(*_padded(y0, y1, log))
        lo, hi = (math.log10(y0), math.log10(y1)) if log else (y0, y1)
        # Rows kept free above the data: plotext's legend (drawn over the plot), or one for marker labels.
        extra = (min(self._labels + 0.5, rows * 0.35) if self._labels
                 else (1.0 if self._change_marks and rows > 3 else 0.0))
        top = lo + (hi - lo) * (rows - 1) / (rows - 1 - extra) if extra else hi
        values = y_ticks(y0, y1, rows, log)
        labels = tick_labels(values)
        self.plt.ylim(lo, top)
        self.plt.yticks(values, labels)
        if self._change_marks and extra:
            cols = max(1, self.area[0] - max(len(label) for label in labels) - 2)
            for x, text, align in place_labels(self._change_marks, x0, x1, cols, getattr(self, "_mark_limit", 4)):
                self.plt.text(text, x, 10 ** top if log else top, color=GREY, alignment=align)

    def y_range(self, lo: float, hi: float) -> tuple[float, float]:
        """The y range to show for data spanning lo..hi; bounded metrics clip it (see MetricChart)."""
        return lo, hi

    def _theme_name(self) -> str:
        try:
            name = self._get_plotext_theme_name(self.app.theme)
        except RuntimeError:  # NoActiveAppError: built outside an app
            return FALLBACK_THEME
        return name if name in plotext_themes else FALLBACK_THEME

    # ------------------------------------------------------------------ for subclasses

    def placeholder(self) -> str | None:
        """A message to show instead of a plot (no data yet), or None to plot."""
        return self.waiting if len(self.history.train_loss) == 0 else None

    def draw(self) -> str:
        """Plot onto `self.plt` with the helpers below; return the title."""
        raise NotImplementedError

    def y_log(self) -> bool:
        return self.log_scale

    def sample(self, series: Series) -> tuple[list[float], list[float]]:
        """The series downsampled to the chart's width: at most 2 points (min, max) per column."""
        return series.downsample(self.buckets)

    def smooth(self, series: Series) -> tuple[list[float], list[float]]:
        """An already smooth series at one point per column (see Series.midline): a clean, cheap line."""
        return series.midline(self.buckets)

    def line(self, xs: list, ys: list, color, label: str | None = None, marker: str = "braille") -> None:
        xs, ys = self._usable(xs, ys)
        if xs:
            self.plt.plot(xs, ys, marker=marker, color=color, label=self._label(label, color, marker))

    def dots(self, xs: list, ys: list, color, label: str | None = None, marker: str = "braille") -> None:
        xs, ys = self._usable(xs, ys)
        if xs:
            self.plt.scatter(xs, ys, marker=marker, color=color, label=self._label(label, color, marker))

    def _label(self, label: str | None, color, marker: str) -> str | None:
        """The label for plotext's legend, or None when the legend is a row of our own (legend_row)."""
        if label is None:
            return None
        if self.legend_row:
            if all(label != known for known, _, _ in self._legend):
                self._legend.append((label, color, marker))
            return None
        self._labels += 1
        return label

    def evals(self, xs: list, ys: list, color, label: str, marker: str = "•") -> None:
        """Per-evaluation values: a thin line with a mark at each evaluation (the mark tells series apart
        under NO_COLOR, and shows where evaluations happened)."""
        self.line(xs, ys, color=color)
        self.dots(xs, ys, color=color, label=label, marker=marker)

    def y_bounds(self) -> tuple[float, float] | None:
        """Where the values can be at all (accuracy: [0, 1]), or None; points outside are drawn at the edge."""
        return None

    def _usable(self, xs: list, ys: list) -> tuple[list, list]:
        """Drop points plotext cannot place: non-finite ones, and non-positive ones on a log axis. Points beyond
        the chart's bounds go to its edge: plotext rasterises a line point by point in canvas cells, and a value
        1e30 cells outside the axis took all the memory there was (tests/tui/test_history_fuzz.py)."""
        log = self.y_log()
        keep = [(x, y) for x, y in zip(xs, ys) if abs(x) < HUGE and abs(y) < HUGE and (y > 0 or not log)]
        bounds = self.y_bounds()
        if bounds is not None:
            keep = [(x, min(max(y, bounds[0]), bounds[1])) for x, y in keep]
        self.points_plotted += len(keep)
        kx, ky = [k[0] for k in keep], [k[1] for k in keep]
        if keep:
            old = self._extent or [kx[0], kx[0], ky[0], ky[0]]
            self._extent = [min(old[0], min(kx)), max(old[1], max(kx)), min(old[2], min(ky)), max(old[3], max(ky))]
        return kx, ky

    def include_y(self, y: float) -> None:
        """Keep `y` on the axis (a guide line drawn with plt.hline) although no series reaches it."""
        if self._extent and math.isfinite(y) and (y > 0 or not self.y_log()):
            self._extent[2], self._extent[3] = min(self._extent[2], y), max(self._extent[3], y)

    def vertical_markers(self, markers: list[tuple[int, str]], labels: int = 4) -> None:
        """A vertical line at each marked step; the newest labels that fit side by side go in a row above
        the data (placed once the axes are known, see _frame), so labels never hide data or each other."""
        for step, _ in markers:
            self.plt.vline(step, GREY)
        self._change_marks, self._mark_limit = list(markers), labels


def plot_text(plt) -> Text:
    """The built plot as Text, read from plotext's character matrix.

    plt.build() joins the matrix into one ANSI string and Text.from_ansi parses it back: together about
    half of a redraw. Reading the matrix directly skips both. It relies on plotext 5's matrix attributes
    (textual-plotext pins plotext < 6); anything unexpected falls back to the ANSI round trip.
    """
    try:
        plt._set_sizes()
        plt._build_matrix()
        matrix = plt.monitor.matrix
        if plt.monitor.fast_plot:
            raise AttributeError("fast plots only exist as a string")
        rows = [(matrix.marker[r], matrix.fullground[r], matrix.style[r], matrix.background[r])
                for r in reversed(range(matrix.rows))]
    except AttributeError:
        return Text.from_ansi(plt.build())
    text = Text(no_wrap=True, end="")
    for i, (markers, fg, style, bg) in enumerate(rows):
        start = 0
        for col in range(1, len(markers) + 1):
            if col == len(markers) or fg[col] != fg[start] or style[col] != style[start] or bg[col] != bg[start]:
                text.append("".join(markers[start:col]), _style(fg[start], style[start], bg[start]))
                start = col
        if i < len(rows) - 1:
            text.append("\n")
    return text


_STYLES: dict = {}


def _style(fg, style, bg) -> Style:
    """The rich Style of one plotext (foreground, style, background), through plotext's own ANSI codes."""
    key = repr((fg, style, bg))
    cached = _STYLES.get(key)
    if cached is None:
        sample = Text.from_ansi(colors_to_ansi(fg, style, bg) + "x" + ansi_end)
        cached = Style.combine([Style.null()] + [span.style for span in sample.spans if isinstance(span.style, Style)])
        _STYLES[key] = cached
    return cached


def _centre(line: Text, width: int) -> Text:
    pad = max(0, (width - len(line)) // 2)
    out = Text(" " * pad, no_wrap=True, end="")
    out.append_text(line)
    out.append(" " * max(0, width - pad - len(line)))
    return out


def legend_item(label: str, color, marker: str) -> Text:
    """"━ train" in the series' colour: a line's mark, or the series' own marker (they differ under NO_COLOR)."""
    glyph = "━" if marker == "braille" else (marker if len(marker) == 1 else "•")
    try:
        style = Style(color=Color.from_rgb(*color)) if isinstance(color, tuple) else Style.parse(str(color))
    except (StyleSyntaxError, ColorParseError):
        # a plotext colour name rich does not know: the mark still differs by its glyph
        style = Style.null()
    return Text.assemble((glyph, style), " ", label)


def _padded(lo: float, hi: float, log: bool) -> tuple[float, float]:
    """lo..hi widened a little when all the data has one value (a flat axis has no ticks to draw)."""
    if log:
        return (lo, hi) if hi > lo else (lo / 2, hi * 2)
    if 0 < lo <= (hi - lo) * 0.1:
        lo = 0.0  # a loss near zero: the axis starts at 0, with a tick there
    if not hi > lo:
        pad = abs(hi) * 0.05 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def _centred(message: str, width: int, height: int, style: str = "dim") -> Text:
    lines = [part for line in message.split("\n") for part in (textwrap.wrap(line, max(1, width)) or [""])]
    pad = max(0, (height - len(lines)) // 2)
    return Text("\n" * pad + "\n".join(line.center(width) for line in lines), style=style, no_wrap=True)


def fit(title: str, width: int) -> str:
    """The title, cut with an ellipsis to `width` characters."""
    return title if len(title) <= width else title[: max(0, width - 1)].rstrip() + "…"


def step_ticks(lo: float, hi: float, count: int = 5) -> list[int]:
    """About `count` whole-number ticks at a round spacing (1, 2 or 5 times a power of ten) covering lo..hi."""
    span = max(hi - lo, 1.0)
    raw = span / count
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = max(1, next((m * power for m in (1, 2, 5, 10) if m * power >= raw), 10 * power))
    first = math.ceil(lo / step) * step
    return [int(t) for t in range(int(first), int(hi) + 1, int(step))] or [round(lo)]


def fmt(value: float | None) -> str:
    """A compact number for titles."""
    if value is None or not isinstance(value, (int, float)):
        return "–"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"
