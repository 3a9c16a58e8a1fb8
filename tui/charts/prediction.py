"""The prediction view: a decision-boundary map with the train points, a regression curve over its data,
predicted against true values over held-out samples, or a confusion matrix (with a few held-out images)."""

from __future__ import annotations

from rich.text import Text

from torchtui.engine import protocol as p
from torchtui.tui.charts.base import BLUE, FALLBACK_THEME, ORANGE, PALETTE, RED, Chart, fit
from torchtui.tui.charts.confusion import confusion_lines, image_lines, side_by_side

# Class regions are dotted in their class colour so the train points (heavier, same colours) stand out
# on them: a point whose colour differs from its region's is a mistake. Under NO_COLOR (Textual strips the
# colours) each class gets its own region character and points become class digits instead.
REGION_MARK, POINT_MARK = "·", "●"
NO_COLOR_REGION_MARKS = ("·", "░", "+", ":", "▒", "×", "-", "=")


class PredictionView(Chart):
    """Kind "grid": each class's region in its colour, train points on top. Kind "curve": train and val
    points and the model's prediction as a line. Kind "series": true and predicted values over held-out
    samples. Other classification: the last evaluation's confusion matrix, beside held-out images with their
    predicted classes when the data are images. A message until the first evaluation."""

    chart_title = "predictions"
    group = "prediction"
    step_axis = False  # x and y are the data's own axes, with limits of their own

    def placeholder(self) -> str | None:
        if self.history.predictions is None and self.history.confusion is None:
            if self.history.state in p.END_STATES and self.history.started:
                return "no predictions to show for this run (they come with evaluations)"
            return "predictions appear after the first evaluation"
        return None

    def y_log(self) -> bool:
        return False

    def _plotted(self) -> bool:
        pred = self.history.predictions
        return pred is not None and pred.kind in ("grid", "curve", "series")

    def build_text(self, width: int, height: int, theme: str = FALLBACK_THEME) -> Text:
        series = self.history.predictions is not None and self.history.predictions.kind == "series"
        self.step_axis = self.legend_row = series  # samples counted on x; a legend that hides no data
        if self._plotted() or self.placeholder():
            return super().build_text(width, height, theme)
        self.buckets, self.area, self.points_plotted = max(10, width), (width, height), 0
        if self.history.predictions is not None and self.history.predictions.kind == "text":
            return text_panel(self.history.predictions, width, height)
        return self._panel(width, height)

    def draw(self) -> str:
        pred = self.history.predictions
        if pred.kind == "grid":
            self._grid(pred)
        elif pred.kind == "series":
            self._series(pred)
            order = "sorted by true value" if pred.val_y == sorted(pred.val_y) else "in order"
            return f"predictions  step {pred.step}  epoch {pred.epoch}  · {pred.held_out} samples ({order})"
        else:
            self._curve(pred)
        return f"predictions  step {pred.step}  epoch {pred.epoch}"

    def _series(self, pred) -> None:
        self.line(pred.val_x, pred.val_y, color=ORANGE, label="true")
        self.dots(pred.val_x[: len(pred.curve_y)], pred.curve_y, color=RED, marker="•", label="predicted")

    def _panel(self, width: int, height: int) -> Text:
        """The confusion matrix of the last evaluation, and the held-out images when there are some."""
        h, pred = self.history, self.history.predictions
        names = [str(n) for n in (h.started.class_names if h.started else [])]
        event = h.confusion
        title = "predictions"
        if event is not None:
            title += f"  step {event.step}  {event.split} confusion"
        images = pred if pred is not None and pred.kind == "images" else None
        if images is not None:
            title += f"  · {images.held_out} images at step {images.step}"
        room = max(1, height - 2)
        left = confusion_lines(event.confusion, names, width, room) if event is not None else []
        right = []
        if images is not None:
            left_width = max((len(line) for line in left), default=0)
            beside = width - left_width - 4 if left else width
            right = image_lines(images.images, images.predicted, images.val_y, names, beside, room, self._no_color())
            if not right and left:  # not beside the matrix: under it, if there is room
                right = image_lines(images.images, images.predicted, images.val_y, names, width,
                                    room - len(left) - 1, self._no_color())
        body = side_by_side(left, right, width)[:room]
        self.points_plotted = sum(map(sum, event.confusion)) if event is not None else 0
        text = Text(fit(title, width).center(width), no_wrap=True, end="")
        block = max((len(line) for line in body), default=0)
        pad = " " * max(0, (width - block) // 2)
        for line in [Text("")] + body:
            text.append("\n" + pad)
            text.append_text(line)
        return text

    def _no_color(self) -> bool:
        try:
            return self.app.no_color
        except RuntimeError:  # NoActiveAppError: built outside an app (the bench)
            return False

    def _grid(self, pred) -> None:
        width, height = self.area
        # One point per character cell of the widget: more cells than the plot area has, so the plot is
        # covered without gaps whatever room the tick labels take (a cell hit twice just redraws).
        cols, rows = max(2, width), max(2, height)
        regions = region_points(pred, cols, rows)
        self.plt.xlim(pred.x_min, pred.x_max)
        self.plt.ylim(pred.y_min, pred.y_max)
        for k in sorted(regions):
            xs, ys = regions[k]
            self.dots(xs, ys, color=class_color(k), marker=self._marks(k)[0])
        by_class: dict[int, tuple[list, list]] = {}
        for point, label in zip(pred.train_x, pred.train_y):
            xs, ys = by_class.setdefault(int(label), ([], []))
            xs.append(point[0])
            ys.append(point[1])
        names = self.history.started.class_names if self.history.started else []
        for k in sorted(by_class):
            name = str(names[k]) if k < len(names) else str(k)
            self.dots(*by_class[k], color=class_color(k), marker=self._marks(k)[1], label=name)

    def _marks(self, k: int) -> tuple[str, str]:
        """(region, point) characters for class k."""
        if self._no_color():
            return NO_COLOR_REGION_MARKS[k % len(NO_COLOR_REGION_MARKS)], str(k % 10)
        return REGION_MARK, POINT_MARK

    def _curve(self, pred) -> None:
        self.dots(pred.train_x, pred.train_y, color=BLUE, marker="dot", label="train")
        self.dots(pred.val_x, pred.val_y, color=ORANGE, marker="x", label=pred.held_out)
        self.line(pred.curve_x, pred.curve_y, color=RED, label="model")


def text_panel(pred, width: int, height: int) -> Text:
    """Kind "text": the sample generated at the last evaluation, the prompt dim before it, wrapped to the
    view; its end is kept when it is longer than the view (the newest tokens are what the model just made)."""
    title = Text(fit(f"predictions  step {pred.step}  epoch {pred.epoch}  · generated sample", width).center(width),
                 no_wrap=True, end="")
    body = Text(pred.prompt, style="dim", end="")
    body.append(pred.text if pred.text or not pred.note else "")
    if pred.note:
        body.append(("\n" if pred.text else "") + pred.note, style="italic")
    lines = body.wrap(_console(), max(1, width), overflow="fold")
    room = max(1, height - 2)
    shown = list(lines)[-room:]
    out = title
    out.append("\n")
    for line in shown:
        out.append("\n")
        out.append_text(line)
    return out


def _console():
    from rich.console import Console

    return Console(width=10_000, color_system=None, no_color=True)


def class_color(k: int):
    return PALETTE[k % len(PALETTE)]


def region_points(pred, cols: int, rows: int) -> dict[int, tuple[list[float], list[float]]]:
    """Cell centres of a cols x rows raster over the grid's bounds, grouped by the predicted class."""
    grid = pred.grid
    grid_rows = len(grid)
    grid_cols = len(grid[0]) if grid_rows else 0
    out: dict[int, tuple[list[float], list[float]]] = {}
    if not grid_cols:
        return out
    dx, dy = (pred.x_max - pred.x_min) / cols, (pred.y_max - pred.y_min) / rows
    for r in range(rows):
        row = grid[min(grid_rows - 1, r * grid_rows // rows)]
        y = pred.y_max - (r + 0.5) * dy
        for c in range(cols):
            k = int(row[min(grid_cols - 1, c * grid_cols // cols)])
            xs, ys = out.setdefault(k, ([], []))
            xs.append(pred.x_min + (c + 0.5) * dx)
            ys.append(y)
    return out
