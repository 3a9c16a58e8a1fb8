"""Checkpoints as plain dicts, written atomically (temp file, fsync, rename) and loaded weights-only."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from torchtui.engine.files import atomic_write_bytes

CHECKPOINT_SCHEMA = 1


def run_state(run) -> dict:
    """What the next step depends on, by reference: weights, optimizer, schedule, position and RNG. A checkpoint
    holds it (engine/run/prepare.py checkpoint_payload) and so does an in-memory snapshot (snapshots.py)."""
    return {
        "model": run.plain_model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
        "plateau": run.plateau.state_dict() if run.plateau is not None else None,
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "step": run.step,
        "epoch": run.epoch,
        "batch_in_epoch": run.batch_in_epoch,
        "best": run.best,
        "loss_at_start": run.loss_at_start,  # where the run began, for the spike guard of a resumed run
        "grad_clip": run.grad_clip,
        "base_lr": run.base_lr,  # train.lr as live changes left it (config holds the one the run started with)
        "world_size": run.dist.world if run.dist is not None else 1,  # batch_in_epoch counts batches of this many
        "rng": rng_state(),
    }


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
    write_serialised(path, serialise(payload))


def serialise(payload: dict[str, Any]) -> bytes:
    """The checkpoint file's bytes (a copy: the live weights may change right after)."""
    buffer = io.BytesIO()
    torch.save({"schema": CHECKPOINT_SCHEMA, **payload}, buffer)
    return buffer.getvalue()


def snapshot(payload: Any) -> tuple[Any, Callable[[], None]]:
    """A copy of `payload` that the training can run on from: every tensor copied to the host (a CPU clone,
    or an asynchronous copy from the GPU into pinned memory), everything else as it is (plain values the
    run replaces rather than changes). Returns it with `ready()`, which waits for the GPU copies: serialising
    and writing then happen on the run's writer thread, and the training thread only queues the copies
    (torch.save of the 784-512-512-10 MLP's state took 10 ms of it each time, a sync per tensor on a GPU)."""
    devices: set = set()

    def copy(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            if value.is_cuda:
                devices.add(value.device)
                return value.detach().to("cpu", non_blocking=True)  # into pinned memory: asynchronous
            return value.detach().clone()
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(copy(v) for v in value)
        return value

    out = copy(payload)
    events = []
    for device in devices:  # each marks the end of the copies queued on its device's stream
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(device))
        events.append(event)

    def ready() -> None:
        for event in events:
            event.synchronize()

    return out, ready


def write_serialised(path: Path, data: bytes) -> None:
    """Write checkpoint bytes atomically (temp file, fsync, rename): a reader sees the old file or the new."""
    atomic_write_bytes(path, data)


def load_problem(err: BaseException) -> str:
    """What is wrong with a checkpoint torch.load refused, in a few words. Never torch's advice to retry
    with weights_only=False: that would run whatever code a tampered file holds."""
    text = str(err)
    if "weights_only" in text or "Unsupported global" in text or "UnpicklingError" in type(err).__name__:
        return "it holds objects a weights-only load refuses: not a plain torchtui checkpoint"
    if "central directory" in text or "zip archive" in text or isinstance(err, EOFError):
        return "the file is cut short or is not a checkpoint"
    first = (text.strip().splitlines() or [type(err).__name__])[0]
    return f"{type(err).__name__}: {first[:120]}"


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint without executing pickled code; refuses other schema versions."""
    data = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(data, dict) or data.get("schema") != CHECKPOINT_SCHEMA:
        raise ValueError(f"{path}: not a torchtui checkpoint of schema {CHECKPOINT_SCHEMA}")
    return data
