"""Fine-tuning steps (the PyTorch recipe): load a state_dict, replace the head, freeze layers; and a shape check."""

from __future__ import annotations

import fnmatch
import inspect
from pathlib import Path

import torch
from torch import nn

from torchtui.engine.config import ModelConfig
from torchtui.engine.errors import ModelError
from torchtui.engine.usercode import where

SHOWN = 4  # names listed per kind of mismatch before "… and N more"


def _listed(names: list[str]) -> str:
    more = f" … and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def read_state_dict(path_text: str) -> dict[str, torch.Tensor]:
    """A state_dict from a file (weights-only): a plain one, a torchtui checkpoint's `model`, or `state_dict`."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ModelError(f"model.pretrained: no such file '{path_text}'")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling refusals, truncated zips, wrong formats
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ModelError(f"model.pretrained: cannot load '{path_text}' weights-only ({reason})") from None
    for key in ("model", "state_dict"):  # a torchtui (or Lightning-style) checkpoint wraps the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"model.pretrained: '{path_text}' holds no state_dict (a mapping of names to tensors)")
    # Weights saved from DataParallel or torch.compile carry a prefix on every name.
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def head_name(model: nn.Module) -> str | None:
    """The last Linear layer in the model: the head that maps features to outputs."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    return last


def load_pretrained(model: nn.Module, cfg: ModelConfig) -> list[str]:
    """Copy matching tensors from cfg.pretrained into the model; returns notes on what was skipped.

    With strict on, any missing or unexpected key or shape mismatch is a ModelError listing them. With
    replace_head on, the head's tensors are never loaded (it is replaced next).
    """
    state = read_state_dict(cfg.pretrained)
    own = model.state_dict()
    head = head_name(model) if cfg.replace_head else None
    skipped_head = [k for k in own if head and k.startswith(head + ".")]
    missing = [k for k in own if k not in state and k not in skipped_head]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and k not in skipped_head and state[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected {_listed(unexpected)}")
    if mismatched:
        shapes = [f"{k} {tuple(state[k].shape)} in the file vs {tuple(own[k].shape)} here" for k in mismatched]
        problems.append(f"shape {_listed(shapes)}")
    if problems and cfg.strict:
        raise ModelError(f"model.pretrained: '{cfg.pretrained}' does not match the model ({'; '.join(problems)}); "
                         "set model.strict: false to load what matches, or model.replace_head: true for a new head")
    loadable = {k: v for k, v in state.items() if k in own and k not in skipped_head and k not in mismatched}
    model.load_state_dict(loadable, strict=False)
    notes = [f"model.pretrained: loaded {len(loadable)} of {len(own)} tensors from {cfg.pretrained}"]
    if problems:
        notes.append("model.pretrained: not loaded (strict is off): " + "; ".join(problems))
    return notes


def replace_head(model: nn.Module, n_out: int) -> str:
    """Swap the last Linear for a fresh one with `n_out` outputs (seeded by the caller); returns its name."""
    name = head_name(model)
    if name is None:
        raise ModelError("model.replace_head: the model has no Linear layer to replace")
    old = model.get_submodule(name)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Linear(old.in_features, n_out, bias=old.bias is not None))
    return name


def freeze(model: nn.Module, patterns: list[str], first: int) -> list[str]:
    """Turn off gradients for parameters matching any glob pattern and for the first `first` layers.

    Returns the frozen parameter names. A pattern that matches nothing, or freezing everything, is a ModelError.
    """
    names = [n for n, _ in model.named_parameters()]
    chosen: set[str] = set()
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n, pattern + ".*")]
        if not hits:
            raise ModelError(f"model.freeze: '{pattern}' matches no parameter (names look like: "
                             f"{_listed(names)})")
        chosen.update(hits)
    layers = [(n, m) for n, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]
    if first > len(layers):
        raise ModelError(f"model.freeze_first: the model has {len(layers)} layers with parameters, got {first}")
    for layer, module in layers[:first]:
        chosen.update(f"{layer}.{n}" if layer else n for n, _ in module.named_parameters(recurse=False))
    if chosen and len(chosen) == len(names):
        raise ModelError("model.freeze: every parameter would be frozen; nothing would train "
                         "(freeze fewer layers, or set model.replace_head: true to train a new head)")
    for name, param in model.named_parameters():
        if name in chosen:
            param.requires_grad_(False)
    return [n for n in names if n in chosen]


def check_output(model: nn.Module, sample: torch.Tensor, n_out: int, cfg: ModelConfig, per_token: bool = False) -> None:
    """Run two samples through the model; its output must be a tensor of shape (2, n_out), or (2, T, n_out) for
    next-token data (`per_token`: a logit per vocabulary entry at each of the T positions).

    A failure names the place to fix: the user's file and line for a custom module, else the field.
    """
    field = {"custom": "model.module", "torchvision": "model.arch"}.get(cfg.kind, "model")
    cls = type(model).__name__
    was_training = model.training
    model.eval()  # BatchNorm must not learn from the probe, and batch statistics need no batch of 2
    try:
        with torch.no_grad():
            out = model(sample)
    except Exception as err:  # noqa: BLE001 - user code may raise anything
        path = _source_file(model)
        raise ModelError(f"{field}: {cls}.forward raised {type(err).__name__} at {where(err, path)} on a batch of "
                         f"shape {tuple(sample.shape)}: {err}") from err
    finally:
        model.train(was_training)
    expected = (len(sample), *sample.shape[1:2], n_out) if per_token else (len(sample), n_out)
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"{field}: {cls}.forward{_line(model)} returned a {type(out).__name__}; "
                         f"expected a tensor of shape {expected}")
    if per_token and out.dim() == 3 and tuple(out.shape[:2]) == expected[:2] and out.shape[2] > n_out:
        return  # logits over a larger vocabulary than the data's: ids past it are never targets (nor sampled)
    if tuple(out.shape) != expected:
        fix = "size its last layer to match, or set model.replace_head: true" if cfg.kind in (
            "custom", "torchvision") else "check model.layers"
        raise ModelError(f"{field}: {cls}.forward{_line(model)} returns shape {tuple(out.shape)} for input "
                         f"{tuple(sample.shape)}; this data needs {expected} ({fix})")


def _source_file(model: nn.Module) -> Path | None:
    try:
        return Path(inspect.getsourcefile(type(model)) or "")
    except TypeError:
        return None


def _line(model: nn.Module) -> str:
    """ (file:line) of the model's forward, for messages about what it returns."""
    try:
        file = inspect.getsourcefile(type(model).forward)
        line = inspect.getsourcelines(type(model).forward)[1]
    except (TypeError, OSError):
        return ""
    return f" ({file}:{line})"
