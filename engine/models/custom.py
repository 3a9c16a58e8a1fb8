"""Models from outside torchtui: the user's own nn.Module class, or a torchvision architecture by name."""

from __future__ import annotations

import difflib
import inspect
import math

from torch import nn

from torchtui.engine.config import ModelConfig
from torchtui.engine.errors import ModelError
from torchtui.engine.usercode import UserCodeError, call, load_object


def size_arguments(shape: tuple[int, ...], n_out: int, tokens=None) -> dict:
    """Sizes a constructor may ask for by name; each is passed only where its signature has that parameter."""
    sizes = {"input_shape": tuple(shape), "in_features": math.prod(shape), "out_features": n_out,
             "num_classes": n_out, "num_outputs": n_out, "n_outputs": n_out}
    if tokens is not None:  # token ids: the vocabulary the embedding needs, and the longest sequence
        sizes.update(vocab_size=tokens.vocab_size, block_size=shape[0])
    if len(shape) == 3:
        sizes["in_channels"] = shape[0]
    return sizes


def build_custom(cfg: ModelConfig, shape: tuple[int, ...], n_out: int, tokens=None) -> nn.Module:
    """Instantiate `path/to/model.py:ClassName` with the preset's kwargs plus the sizes its signature names."""
    try:
        cls, path = load_object(cfg.module, "model.module", "class")
    except UserCodeError as err:
        raise ModelError(str(err)) from err.__cause__
    name = getattr(cls, "__name__", cfg.module)
    if not callable(cls):
        raise ModelError(f"model.module: '{name}' in {path} is a {type(cls).__name__}, not a class")
    kwargs = dict(cfg.kwargs)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    for key, value in size_arguments(shape, n_out, tokens).items():
        if key in params and key not in kwargs:
            kwargs[key] = value
    try:
        model = call(cls, path, "model.module", f"{name}(...)", **kwargs)
    except UserCodeError as err:
        raise ModelError(str(err)) from err.__cause__
    if not isinstance(model, nn.Module):
        raise ModelError(f"model.module: {name}(...) returned a {type(model).__name__}, not an nn.Module")
    return model


def build_torchvision(cfg: ModelConfig, shape: tuple[int, ...], n_out: int) -> nn.Module:
    """A torchvision model by name, randomly initialised (weights come only from model.pretrained)."""
    from torchtui.engine.data.sources.vision import import_torchvision

    try:
        tv = import_torchvision("model.arch")
    except ValueError as err:
        raise ModelError(str(err)) from None
    names = tv.models.list_models()
    if cfg.arch not in names:
        close = difflib.get_close_matches(cfg.arch, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "see torchvision.models.list_models()"
        raise ModelError(f"model.arch: unknown torchvision model '{cfg.arch}' ({hint})")
    kwargs = dict(cfg.kwargs)
    if kwargs.get("weights") not in (None, ""):
        raise ModelError("model.kwargs.weights: torchtui never downloads weights; save a state_dict to a file and "
                         "set model.pretrained to it")
    kwargs["weights"] = None
    if not (cfg.pretrained and cfg.replace_head):
        # Sized for this data, unless a checkpoint with its own head is loaded first and the head replaced after.
        kwargs.setdefault("num_classes", n_out)
    try:
        return tv.models.get_model(cfg.arch, **kwargs)
    except Exception as err:  # noqa: BLE001 - any constructor error is the user's to fix in kwargs
        raise ModelError(f"model.kwargs: torchvision {cfg.arch}(...) raised {type(err).__name__}: {err}") from err
