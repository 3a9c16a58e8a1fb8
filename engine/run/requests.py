"""Answers to requests that need torch but no run: model summary, device list, data preview, lr range test."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.data.sources import csvfile
from torchtui.engine.data.splits import load_data
from torchtui.engine.errors import DataError
from torchtui.engine.models.summary import format_summary, summarize
from torchtui.engine.run import devices, lr_find
from torchtui.engine.run.prepare import build_data_and_model
from torchtui.engine.schema import ConfigError, to_plain

# The data of the latest request: a config change sends DescribeModel and PreviewData together, and both
# need the same data. Keyed by the data settings and the data file's mtime; dropped when a run starts.
_last_data: dict = {}


PREVIEW_BYTES = 64 << 20  # a table file past this size is previewed from its first rows
PREVIEW_ROWS = 100_000


def previewed(config):
    """(the config the panes load, what it leaves out): a big table's first PREVIEW_ROWS rows only (the panes
    stay quick and light; a run reads every row)."""
    data = config.data
    if data.source != "csv" or data.limit:
        return config, ""
    try:
        size = Path(data.path).expanduser().stat().st_size
    except OSError:
        return config, ""
    if size <= PREVIEW_BYTES:
        return config, ""
    sample = dataclasses.replace(config, data=dataclasses.replace(data, limit=PREVIEW_ROWS))
    return sample, f"preview: the first {PREVIEW_ROWS:,} rows of {size / 1e6:,.0f} MB (a run reads every row)"


def cached_data(config):
    """The config's data, loaded once for the requests that follow one change (raises DataError)."""
    config, _ = previewed(config)
    try:
        mtime = os.stat(config.data.path).st_mtime_ns if config.data.path else None
    except OSError:
        mtime = None
    key = (json.dumps(to_plain(config.data), sort_keys=True, default=str), mtime)
    if _last_data.get("key") != key:
        _last_data.clear()
        _last_data.update(key=key, splits=load_data(config.data))
    return _last_data["splits"]


def forget_data() -> None:
    _last_data.clear()


def describe_model(cmd: p.DescribeModel) -> p.ModelDescribed:
    """Build the config's model on the CPU for its data's shapes and summarise it."""
    try:
        config = from_dict(cmd.config)
        splits, model, _, _, _ = build_data_and_model(config, cached_data)
        summary = summarize(model, splits.input_shape, splits.train.sample(1)[0].dtype)
    except ConfigError as err:
        return p.ModelDescribed(cmd.request_id, None, error=str(err))
    return p.ModelDescribed(cmd.request_id, summary.to_dict(), text=format_summary(summary))


def list_devices_reply(cmd: p.ListDevices) -> p.DevicesListed:
    return p.DevicesListed(cmd.request_id, devices.list_devices())


PREVIEW_IMAGES = 8
MAX_IMAGE_SIDE = 32  # images are shrunk to this for the preview (a terminal cell is coarse anyway)


def preview_data(cmd: p.PreviewData) -> p.DataPreviewed:
    """Split sizes, per-class counts and a sample of the train split: points for rows, a few pictures for images."""
    columns = []
    try:
        config = from_dict(cmd.config)
        sample, note = previewed(config)
        columns = csvfile.column_summary(sample.data) if config.data.source == "csv" else []
        columns = [note, *columns] if note and columns else columns
        splits = cached_data(config)
        x, y = splits.train.sample(cmd.max_points)
        columns = [*columns, *_text_lines(splits, config.data)]
    except (ConfigError, DataError, ValueError) as err:
        return p.DataPreviewed(cmd.request_id, error=str(err), columns=columns)
    if splits.task == "tokens":
        x, y = x[:0], y[:0]  # token ids are no points to plot: the lines say what the text is
    counts = _class_counts(splits) if splits.task not in ("regression", "tokens") else []
    images, labels = [], []
    if len(splits.input_shape) == 3:
        images, labels = _pictures(x, y)
        x, y = x[:0], y[:0]
    return p.DataPreviewed(
        cmd.request_id, task=splits.task, sizes=splits.sizes(), x=x.flatten(1).tolist(), y=y.tolist(),
        class_names=list(splits.class_names), input_shape=list(splits.input_shape), images=images,
        image_labels=labels, class_counts=counts, columns=columns,
    )


def _text_lines(splits, data) -> list[str]:
    """The corpus (size, vocabulary, tokens per character, a sample), or a CSV's tokenised text columns."""
    from torchtui.engine.data.text import corpus, preview

    if data.source == "text" and splits.tokenizer is not None:
        return preview.corpus_lines(splits, corpus.find(data.path, data.files))
    if (splits.encoder or {}).get("kind") == "text":
        return preview.column_lines(splits)
    return []


def _class_counts(splits) -> list[int]:
    if splits.streamed:
        return []
    return torch.bincount(splits.y_train.long(), minlength=splits.n_classes).tolist()


def _pictures(x: torch.Tensor, y: torch.Tensor) -> tuple[list, list]:
    """Up to PREVIEW_IMAGES images as [C][H][W] lists scaled to 0..1 each (standardised data included)."""
    index = torch.linspace(0, len(x) - 1, min(len(x), PREVIEW_IMAGES)).round().long() if len(x) else []
    pics = x[index].float()
    if max(pics.shape[-2:]) > MAX_IMAGE_SIDE:
        pics = torch.nn.functional.adaptive_avg_pool2d(pics, MAX_IMAGE_SIDE)
    low = pics.amin(dim=(1, 2, 3), keepdim=True)
    high = pics.amax(dim=(1, 2, 3), keepdim=True)
    pics = (pics - low) / (high - low).clamp_min(1e-8)
    return [[[[round(v, 3) for v in row] for row in channel] for channel in pic] for pic in pics.tolist()], \
        y[index].tolist()


HANDLERS = {p.DescribeModel: describe_model, p.ListDevices: list_devices_reply, p.PreviewData: preview_data,
            p.FindLr: lambda cmd: lr_find.answer(cmd, load=cached_data)}  # with a run active, Controls answers


def answer(command, emit) -> bool:
    """Reply to a request that needs torch but no run (emitted); False if `command` is not such a request."""
    handler = HANDLERS.get(type(command))
    if handler is None:
        return False
    emit(handler(command))
    return True
