"""The prediction view: a decision-boundary map with the train points, or a regression curve over its data."""

from __future__ import annotations

from torchtui.tui.charts.base import BLUE, ORANGE, PALETTE, RED, Chart

# Class regions are dotted in their class colour so the train points (heavier, same colours) stand out
# on them: a point whose colour differs from its region's is a mistake. Under NO_COLOR (Textual strips the
# colours) each class gets its own region character and points become class digits instead.
REGION_MARK, POINT_MARK = "·", "●"
NO_COLOR_REGION_MARKS = ("·", "░", "+", ":", "▒", "×", "-", "=")


class PredictionView(Chart):
    """Kind "grid": each class's region in its colour, train points on top. Kind "curve": train and val
    points and the model's prediction as a line. A message until the first Predictions event."""

    chart_title = "predictions"
    chart_id, group = "prediction", "prediction"
    step_axis = False  # x and y are the data's own axes, with limits of their own

    def placeholder(self) -> str | None:
        if self.history.predictions is None:
            return "predictions appear after the first evaluation\n(2-D classification or 1-D regression data)"
        return None

    def y_log(self) -> bool:
        return False

    def draw(self) -> str:
        pred = self.history.predictions
        if pred.kind == "grid":
            self._grid(pred)
        else:
            self._curve(pred)
        return f"predictions  step {pred.step}  epoch {pred.epoch}"

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
        try:
            no_color = self.app.no_color
        except RuntimeError:  # NoActiveAppError: built outside an app (the bench)
            no_color = False
        if no_color:
            return NO_COLOR_REGION_MARKS[k % len(NO_COLOR_REGION_MARKS)], str(k % 10)
        return REGION_MARK, POINT_MARK

    def _curve(self, pred) -> None:
        self.dots(pred.train_x, pred.train_y, color=BLUE, marker="dot", label="train")
        self.dots(pred.val_x, pred.val_y, color=ORANGE, marker="x", label=pred.held_out)
        self.line(pred.curve_x, pred.curve_y, color=RED, label="model")


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
