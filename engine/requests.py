"""Answers to requests that need torch but no run: model summary, device list, data preview."""

from __future__ import annotations

import torch

from . import data as data_mod, devices, models, protocol as p
from .config import from_dict, loss_problem, resolve_loss
from .schema import ConfigError


def describe_model(cmd: p.DescribeModel) -> p.ModelDescribed:
    """Build the config's model on the CPU (data shapes from a tiny sample) and summarise it."""
    try:
        config = from_dict(cmd.config)
        n_in, n_out = _io_sizes(config)
        model = models.build_model(config.model, n_in, n_out)
        summary = models.summarize(model, n_in)
    except (ConfigError, data_mod.DataError, ValueError) as err:
        return p.ModelDescribed(cmd.request_id, None, error=str(err))
    return p.ModelDescribed(cmd.request_id, summary.to_dict(), text=models.format_summary(summary))


def _io_sizes(config) -> tuple[int, int]:
    """Input and output sizes the model gets for this config's data."""
    splits = data_mod.load_data(config.data)
    problem = loss_problem(splits.task, config.train.loss)
    if problem:
        raise ConfigError([f"train.loss: {problem}"])
    loss = resolve_loss(splits.task, config.train.loss)
    return splits.n_features, models.output_size(splits.task, splits.n_classes, splits.n_targets, loss)


def list_devices_reply(cmd: p.ListDevices) -> p.DevicesListed:
    return p.DevicesListed(cmd.request_id, devices.list_devices())


def preview_data(cmd: p.PreviewData) -> p.DataPreviewed:
    """Split sizes and an evenly spaced sample of the train split (features and targets as lists)."""
    try:
        config = from_dict(cmd.config)
        splits = data_mod.load_data(config.data)
    except (ConfigError, data_mod.DataError, ValueError) as err:
        return p.DataPreviewed(cmd.request_id, error=str(err))
    x, y = splits.x_train, splits.y_train
    n = len(x)
    index = torch.linspace(0, n - 1, min(n, max(1, cmd.max_points))).round().long() if n else torch.zeros(0).long()
    return p.DataPreviewed(
        cmd.request_id, task=splits.task, sizes=splits.sizes(), x=x[index].tolist(), y=y[index].tolist(),
        class_names=list(splits.class_names),
    )
