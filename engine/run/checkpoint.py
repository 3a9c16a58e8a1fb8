"""Checkpoints as plain dicts, written atomically (temp file, fsync, rename) and loaded weights-only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from torchtui.engine.files import atomic_write_bytes

CHECKPOINT_SCHEMA = 1


def rng_state() -> dict:
    """The global RNG states a resumed run needs to continue exactly (CPU and every CUDA device)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialise `payload` (model, optimizer, scheduler, config, step, epoch, best, rng …) atomically."""
    buffer = io.BytesIO()
    torch.save({"schema": CHECKPOINT_SCHEMA, **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint without executing pickled code; refuses other schema versions."""
    data = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(data, dict) or data.get("schema") != CHECKPOINT_SCHEMA:
        raise ValueError(f"{path}: not a torchtui checkpoint of schema {CHECKPOINT_SCHEMA}")
    return data
