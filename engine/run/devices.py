"""Device choice and discovery: resolve `auto`/`cuda:N`, list devices with memory, check AMP support."""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch

from torchtui.engine.run.device_config import DeviceConfig, default_threads


def resolve_device(name: str) -> tuple[torch.device, list[str]]:
    """The torch.device for a config value, falling back to cpu with a warning when it is not there."""
    warnings: list[str] = []
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device()), warnings
        if _mps_available():
            return torch.device("mps"), warnings
        return torch.device("cpu"), warnings
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            warnings.append(f"device.device: '{name}' asked for, but CUDA is not available here; using cpu")
            return torch.device("cpu"), warnings
        dev = torch.device(name)
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            warnings.append(f"device.device: '{name}' does not exist ({count} CUDA device(s)); using cuda:0")
            index = 0
        return torch.device("cuda", index), warnings
    if name == "mps" and not _mps_available():
        warnings.append("device.device: 'mps' asked for, but MPS is not available here; using cpu")
        return torch.device("cpu"), warnings
    return torch.device(name), warnings


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def precision_settings(cfg: DeviceConfig, device: torch.device) -> tuple[torch.dtype | None, bool, list[str]]:
    """(autocast dtype or None, whether fp16 needs a grad scaler, warnings) for the run's precision."""
    warnings: list[str] = []
    if cfg.precision == "fp32":
        return None, False, warnings
    if cfg.precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            warnings.append("device.precision: this GPU has no bf16 support; training in fp32")
            return None, False, warnings
        if device.type == "mps":
            warnings.append("device.precision: bf16 autocast is not supported on mps here; training in fp32")
            return None, False, warnings
        return torch.bfloat16, False, warnings
    if device.type != "cuda":
        warnings.append(f"device.precision: fp16 needs a CUDA GPU (this run is on {device.type}); training in fp32")
        return None, False, warnings
    return torch.float16, True, warnings


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for mixed precision, or a no-op context for fp32."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def apply_backend_flags(cfg: DeviceConfig, device: torch.device, threads: bool = True) -> list[str]:
    """Set TF32 and (unless `threads` is False: a data-parallel rank, whose launcher shares the cores out)
    the thread count; return warnings for switches that do nothing on this device."""
    warnings: list[str] = []
    if cfg.tf32:
        if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        else:
            warnings.append("device.tf32: TF32 needs an Ampere or newer NVIDIA GPU; ignored")
    if threads:  # device.threads 0: the same default the app's worker starts with
        torch.set_num_threads(cfg.threads or default_threads())
    return warnings


def memory_stats(device: torch.device) -> tuple[int | None, int | None]:
    """Allocated and reserved bytes on a CUDA device (host-side counters: no sync); None elsewhere."""
    if device.type != "cuda":
        return None, None
    return torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device)


def list_devices() -> list[dict]:
    """Every device torch can use here, as plain dicts (kind, name, memory in bytes where known)."""
    devices = [{
        "kind": "cpu", "name": "cpu", "cores": os.cpu_count() or 1,
        "threads": torch.get_num_threads(),
    }]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            devices.append({
                "kind": "cuda", "name": f"cuda:{i}", "model": props.name, "memory_total": total,
                "memory_free": free, "memory_used": total - free,
                "capability": f"{props.major}.{props.minor}", "bf16": torch.cuda.is_bf16_supported(),
            })
        _add_nvml(devices)
    if _mps_available():
        devices.append({"kind": "mps", "name": "mps"})
    return devices


def _add_nvml(devices: list[dict]) -> None:
    """GPU utilisation (%) and temperature (°C) where nvidia-ml-py (pynvml) is installed; optional."""
    try:
        import pynvml
    except ImportError:
        return
    try:
        pynvml.nvmlInit()
        for device in devices:
            if device["kind"] != "cuda":
                continue
            handle = pynvml.nvmlDeviceGetHandleByIndex(int(device["name"].split(":")[1]))
            device["utilization"] = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            device["temperature"] = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - NVML missing or refusing is no reason to hide the devices
        return
