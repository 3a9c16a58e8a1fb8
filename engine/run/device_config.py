"""The Device pane's config: where a run trains (device, precision, compile, threads) and on how many devices,
with `devices` kept as text: a number of processes ("2"), CUDA indices ("[0, 1]", "0,1") or "all". Imports no
torch: the app validates with it before torch is loaded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from torchtui.engine.schema import excerpt, suggest

PRECISIONS = ("fp32", "bf16", "fp16")
STRATEGIES = ("auto", "ddp")  # ddp: torch.nn.parallel.DistributedDataParallel, one process per device


@dataclass
class DeviceConfig:
    CHOICES: ClassVar = {"precision": PRECISIONS, "strategy": STRATEGIES}
    NON_NEGATIVE: ClassVar = ("threads",)
    MAXIMUM: ClassVar = {"threads": 4096}

    device: str = "auto"
    """auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps."""
    precision: str = "fp32"
    """fp32, or mixed precision: bf16, or fp16 (with a gradient scaler)."""
    tf32: bool = False
    """Allow TensorFloat-32 matmuls on Ampere or newer GPUs."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    threads: int = 0
    """CPU threads for torch (0 = auto: one per core less one; with several devices on the CPU, shared)."""
    devices: str = "1"
    """How many devices train together, one process each (data parallel): a number, CUDA indices such as
    0,1, or all (every GPU). train.batch_size is per device."""
    strategy: str = "auto"
    """auto (DistributedDataParallel when devices is more than 1) or ddp (also on one device)."""

    @classmethod
    def from_shorthand(cls, data: Any) -> Any:
        return shorthand(data)  # devices: [0, 1] as the text "[0, 1]"

    @property
    def device_list(self) -> list[int] | None:
        """The CUDA indices `devices` lists ([1], [0, 1] or 0,1), else None (a count, or all)."""
        return listed(self.devices)

    def world_size(self, cuda_count: int | None = None) -> int | None:
        """Processes a run trains with; None for `all` when the number of GPUs is not known (or is 0)."""
        return world_size(self.devices, cuda_count)

    @property
    def distributed(self) -> bool:
        """Whether runs train with DistributedDataParallel: several processes, listed GPUs, or strategy ddp."""
        return self.strategy == "ddp" or several(self.devices)

    def check(self) -> Iterator[tuple[str, str]]:
        yield from problems(self.devices, self.device, self.strategy)
        dev = self.device
        ok = dev in ("auto", "cpu", "cuda", "mps") or (
            dev.startswith("cuda:") and dev[5:].isdigit()
        )
        if not ok:
            hint = "did you mean 'cuda'?" if dev.lower() in ("gpu", "nvidia", "cuda0") else suggest(
                dev, ('auto', 'cpu', 'cuda', 'cuda:0', 'mps'))
            yield "device", f"unknown {excerpt(dev)} ({hint})"


def default_threads(cores: int | None = None) -> int:
    """Torch threads when device.threads is 0, in the app, the CLI, sweeps and exported scripts alike: one per
    core less one, which is left to the UI, the data reader or the rest of the machine (on 2 shared cores, 2
    threads trained the presets many times slower than 1: bench/bench_threads.py, figures in the README)."""
    import os

    return max(1, (cores or os.cpu_count() or 2) - 1)


MAX_DEVICES = 1024
HOW = "a number such as 2, CUDA indices such as [0, 1], or all"


def shorthand(data: Any) -> Any:
    """A device section as YAML may give it, with `devices: [0, 1]` kept as the text "[0, 1]"."""
    if isinstance(data, dict) and isinstance(data.get("devices"), (list, tuple)):
        items = data["devices"]
        if all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            return {**data, "devices": "[" + ", ".join(str(i) for i in items) + "]"}
    return data


def listed(devices: str) -> list[int] | None:
    """The CUDA indices a list names ([1], [0, 1] or 0,1); None for a count or all."""
    text = devices.replace(" ", "")
    if not (text.startswith("[") or "," in text):
        return None
    return [int(i) for i in text.strip("[]").split(",") if i]


def world_size(devices: str, cuda_count: int | None = None) -> int | None:
    """Processes a run trains with; None for all when the number of GPUs is not known (or is 0)."""
    if devices.strip() == "all":
        return cuda_count or None
    indices = listed(devices)
    return len(indices) if indices is not None else int(devices)


def several(devices: str) -> bool:
    """Whether `devices` asks for data parallel training: more than one process, a list of GPUs, or all."""
    return devices.strip() == "all" or listed(devices) is not None or world_size(devices) != 1


def problems(devices: str, device: str, strategy: str) -> Iterator[tuple[str, str]]:
    """(field, problem) pairs of a device section's devices, in the terms of the section's fields."""
    text = devices.replace(" ", "")
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if devices.strip() == "all":
        indices, count = None, None
    elif inner and all(part.isdigit() and len(part) <= 6 for part in inner.split(",")):
        indices = listed(devices)
        count = len(indices) if indices is not None else int(inner)
    else:
        yield "devices", f"{excerpt(devices)} is not {HOW}"
        return
    if indices is not None and len(set(indices)) != len(indices):
        yield "devices", f"lists a GPU twice ({devices}); give each index once"
    elif count is not None and not 1 <= count <= MAX_DEVICES:
        yield "devices", f"must be between 1 and {MAX_DEVICES}, got {count}"
    if not (indices is not None or count is None or count > 1 or strategy == "ddp"):
        return
    if device == "mps":
        yield "devices", "mps trains on one device; several need CUDA GPUs (or cpu, one process each)"
    elif device.startswith("cuda:"):
        yield "device", (f"'{device}' names one GPU; to train on several set device: cuda and devices: "
                         f"{indices or count or 'all'} (or a list of indices such as [0, 1])")
    elif device == "cpu" and (indices is not None or count is None):
        yield "devices", f"{devices!r} picks GPUs, but device is cpu: give a number of processes, such as 2"
