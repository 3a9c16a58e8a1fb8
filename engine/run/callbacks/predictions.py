"""The prediction view's data: a decision-boundary grid (2-D classes), a curve (1-D regression), predicted
against true values over held-out samples (any other regression: sequences, tables), or a few held-out
images with their predicted classes (image classification), or a text sample (next-token data)."""

from __future__ import annotations

import time

import torch

from torchtui.engine.protocol import DIVERGED, Predictions
from torchtui.engine.run.callbacks import Callback
from torchtui.engine.run.devices import autocast_context

GRID_COLS, GRID_ROWS = 60, 30
CURVE_POINTS = 100
SAMPLE_POINTS = 300
SERIES_POINTS = 200
IMAGES, IMAGE_SIDE = 8, 16  # a few small pictures: a terminal cell is coarse, and they go through a pipe
MIN_INTERVAL_S = 0.5  # short epochs or eval_every evaluate often; a chart redraws ~4 times a second at best


def view_kind(task: str, input_shape: tuple[int, ...]) -> str | None:
    """grid, curve, series, images or text; None for other classification (the confusion matrix covers it)."""
    if task == "tokens":
        return "text"
    if task == "regression":
        return "curve" if tuple(input_shape) == (1,) else "series"
    if tuple(input_shape) == (2,):
        return "grid"
    return "images" if len(input_shape) == 3 else None


def applies(task: str, input_shape: tuple[int, ...]) -> bool:
    """Whether the model's predictions are sent for this data (see view_kind)."""
    return view_kind(task, input_shape) is not None


class PredictionsCallback(Callback):
    """After val evaluations (at most every MIN_INTERVAL_S, and at the end), emit what the model predicts.

    Without a val split (line) there are no val evaluations: epoch ends take their place, so the view is
    live there too, and a run stopped before its test evaluation still shows its model."""

    def __init__(self, emit):
        self.emit = emit
        self.last = float("-inf")
        self.pending = False

    def on_validation_end(self, run, split, metrics):
        if (run.data.streamed and run.task != "tokens") or not applies(run.task, run.data.input_shape):
            return
        if split == "test":  # the last evaluation: always drawn (the only one when there is no val split)
            self.pending = False
            self._send(run)
            return
        self._throttled(run)

    def on_train_epoch_end(self, run):
        if not len(run.data.val) and not run.data.streamed and applies(run.task, run.data.input_shape):
            self._throttled(run)

    def _throttled(self, run) -> None:
        now = time.monotonic()
        if now - self.last < MIN_INTERVAL_S:
            self.pending = True  # drawn at the end at the latest
            return
        self.last, self.pending = now, False
        self._send(run)

    def _send(self, run) -> None:
        self.emit(predictions(run))

    def on_fit_end(self, run):
        if self.pending and run.end_state != DIVERGED:
            self.pending = False
            self._send(run)


def _sample(x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[list, list]:
    if not len(x):
        return [], []
    index = torch.linspace(0, len(x) - 1, min(n, len(x)), device=x.device).round().long()
    return x[index].tolist(), y[index].tolist()


def predictions(run) -> Predictions:
    """Run the model over a grid (or a line) covering the train data, in eval mode, with one host sync."""
    d, model = run.data, run.plain_model  # eager, as evaluations are (loop.evaluate)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast_context(run.device, run.amp_dtype):
            kind = view_kind(run.task, d.input_shape)
            return {"curve": _curve, "series": _series, "images": _images, "grid": _grid, "text": _text}[kind](run, d)
    finally:
        model.train(was_training)


def _bounds(values: torch.Tensor) -> tuple[float, float]:
    lo, hi = values.min(), values.max()
    pad = (hi - lo) * 0.1 + 1e-6
    return (lo - pad).item(), (hi + pad).item()


def _grid(run, d) -> Predictions:
    x0, x1 = _bounds(d.x_train[:, 0])
    y0, y1 = _bounds(d.x_train[:, 1])
    xs = torch.linspace(x0, x1, GRID_COLS + 1, device=run.device)
    ys = torch.linspace(y1, y0, GRID_ROWS + 1, device=run.device)
    cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    gy, gx = torch.meshgrid(cy, cx, indexing="ij")
    points = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    classes = run.predict(run.plain_model(points).float()).reshape(GRID_ROWS, GRID_COLS)
    train_x, train_y = _sample(d.x_train, d.y_train, SAMPLE_POINTS)
    held, (hx, hy) = _held_out(d)
    val_x, val_y = _sample(hx, hy, SAMPLE_POINTS // 2)
    return Predictions(run.run_id, run.step, run.epoch, "grid", x0, x1, y0, y1, grid=classes.tolist(),
                       train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, held_out=held)


def _curve(run, d) -> Predictions:
    every = torch.cat([d.x_train, d.x_val, d.x_test])[:, 0]
    lo, hi = every.min().item(), every.max().item()
    xs = torch.linspace(lo, hi, CURVE_POINTS, device=run.device).unsqueeze(1)
    ys = d.unscale_y(run.plain_model(xs).float())[:, 0]
    train_x, train_y = _sample(d.x_train[:, 0], d.unscale_y(d.y_train)[:, 0], SAMPLE_POINTS)
    held, (hx, hy) = _held_out(d)
    val_x, val_y = _sample(hx[:, 0], d.unscale_y(hy)[:, 0], SAMPLE_POINTS)
    return Predictions(run.run_id, run.step, run.epoch, "curve", lo, hi, curve_x=xs[:, 0].tolist(),
                       curve_y=ys.tolist(), train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y,
                       held_out=held)


def _series(run, d) -> Predictions:
    """Predicted against true (first output) over up to SERIES_POINTS held-out samples: in their order when
    the data was not shuffled (a time series reads left to right), else sorted by the true value."""
    held, (hx, hy) = _held_out(d)
    x = hx[:SERIES_POINTS]
    if not len(x):
        return Predictions(run.run_id, run.step, run.epoch, "series", held_out=held)
    predicted = d.unscale_y(run.plain_model(x).float()).reshape(len(x), -1)[:, 0]
    true = d.unscale_y(hy[:SERIES_POINTS].float()).reshape(len(x), -1)[:, 0]
    if getattr(run.config.data, "shuffle", True):
        order = torch.argsort(true)
        predicted, true = predicted[order], true[order]
    both = torch.stack([predicted.float(), true.float()]).tolist()  # one host sync for both
    return Predictions(run.run_id, run.step, run.epoch, "series", 0, len(x) - 1, val_x=list(range(len(x))),
                       val_y=both[1], curve_y=both[0], held_out=held)


def _images(run, d) -> Predictions:
    """A few held-out images (the same ones each time), scaled to 0..1 each, with predicted and true classes."""
    held, (hx, hy) = _held_out(d)
    index = torch.linspace(0, len(hx) - 1, min(len(hx), IMAGES), device=hx.device).round().long()
    x, y = hx[index], hy[index]
    predicted = run.predict(run.plain_model(x).float()) if len(x) else y
    pics = x.float()
    if max(pics.shape[-2:], default=0) > IMAGE_SIDE:
        pics = torch.nn.functional.adaptive_avg_pool2d(pics, IMAGE_SIDE)
    low = pics.amin(dim=(1, 2, 3), keepdim=True) if len(pics) else pics
    high = pics.amax(dim=(1, 2, 3), keepdim=True) if len(pics) else pics
    pics = ((pics - low) / (high - low).clamp_min(1e-8) * 1000).round() / 1000  # 3 decimals: a smaller pipe frame
    return Predictions(run.run_id, run.step, run.epoch, "images", images=pics.tolist(),
                       predicted=predicted.long().tolist(), val_y=y.long().tolist(), held_out=held)


def _text(run, d) -> Predictions:
    """A sample generated from predict.prompt (seeded: the same draw at each evaluation, so what changes is
    the model)."""
    from torchtui.engine.errors import DataError
    from torchtui.engine.run.generate import sample_text

    cfg = run.config.predict
    try:
        text, note = sample_text(run.plain_model, getattr(d, "tokenizer", None), cfg.prompt, cfg.length,
                                 d.input_shape[0], cfg.temperature, cfg.top_k, d.n_classes, seed=run.config.train.seed)
    except DataError as err:
        text, note = "", str(err)
    return Predictions(run.run_id, run.step, run.epoch, "text", text=text, prompt=cfg.prompt, note=note)


def _held_out(d) -> tuple[str, tuple[torch.Tensor, torch.Tensor]]:
    """The points plotted beside the train data: val, or test when there is no val split (line)."""
    return ("val", (d.x_val, d.y_val)) if len(d.x_val) else ("test", (d.x_test, d.y_test))
