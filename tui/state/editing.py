"""Turning pane values into a validated config, and telling live changes from ones that wait for a restart."""

from __future__ import annotations

from torchtui.engine.config import ExperimentConfig, TrainConfig, from_dict
from torchtui.engine.schema import ConfigError


def collect(sections: dict[str, dict], base: ExperimentConfig) -> tuple[ExperimentConfig | None, list[str]]:
    """The config the panes describe (name and description kept from `base`), or None and every problem."""
    data = base.to_dict()
    data.update(sections)
    try:
        return from_dict(data), []
    except ConfigError as err:
        return None, err.problems


def data_name(data) -> str:
    """What the data is called, for a run's name: a file's stem (iris for iris.csv), a torchvision dataset, the
    function of a `code` source, or the source (moons)."""
    from pathlib import PurePath

    if data.source == "torchvision" and getattr(data, "dataset", ""):
        return data.dataset.lower()
    path = data.path.strip()
    if data.source == "code" and ":" in path:
        return path.rsplit(":", 1)[1]
    if path:
        return PurePath(path.rstrip("/\\")).stem or data.source
    return data.source


def named_for_data(old: ExperimentConfig, new: ExperimentConfig) -> ExperimentConfig:
    """`new`, named after its data when the panes changed which data it trains on (source or file): a run of
    iris.csv set up from the spiral preset is an iris run, not a spiral one."""
    import dataclasses

    if (old.data.source, old.data.path, old.data.dataset) == (new.data.source, new.data.path, new.data.dataset):
        return new
    return dataclasses.replace(new, name=data_name(new.data))


def live_changes(old: ExperimentConfig, new: ExperimentConfig) -> tuple[dict, list[str]]:
    """(SetHparams keyword arguments, dotted paths of other changed fields that apply on restart)."""
    from torchtui.engine.catalog import changed_fields

    live = {name: getattr(new.train, name) for name in TrainConfig.LIVE
            if getattr(new.train, name) != getattr(old.train, name)}
    later = changed_fields(old.to_dict(), new.to_dict(),
                           {"name", "description", *(f"train.{name}" for name in TrainConfig.LIVE)})
    return live, later
