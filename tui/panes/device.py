"""The Device pane: device, precision and threads, with the devices torch found and this run's memory use."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from torchtui.engine.formatting import DATA_WAIT_HINT, data_wait_text, fmt_bytes
from torchtui.engine.protocol import DevicesListed
from torchtui.engine.run.device_config import DeviceConfig, default_threads
from torchtui.tui.panes.form import ConfigForm
from torchtui.tui.panes.form_pane import FormPane

SECTION = "device"
# Offered before the engine has loaded torch and listed what is really there.
FALLBACK_DEVICES = [("auto", "auto"), ("cpu", "cpu")]
LOADING = "loading torch…"


def device_label(device: dict) -> str:
    """A Select label: the device name, and its model for a GPU (memory is listed below the form)."""
    name = device.get("name", "?")
    if device.get("kind") == "cuda":
        return f"{name} · {device.get('model', 'GPU')}"
    return name


def threads_text(setting: int, cores: int | None) -> str:
    """How many torch threads a run computes with: device.threads, or for 0 the default the engine applies."""
    n = setting or default_threads(cores)
    how = "device.threads" if setting else "auto: one per core less one"
    return f"a run uses {n} thread{'' if n == 1 else 's'} ({how})"


def device_line(device: dict, threads: int = 0) -> str:
    """One line of the device list: what the device is and how much memory it has and uses; for the CPU, the
    threads a run will use with device.threads `threads`."""
    kind, name = device.get("kind"), device.get("name", "?")
    if kind == "cpu":
        cores = device.get("cores")
        return f"{name}: {cores or '?'} cores, {threads_text(threads, cores if isinstance(cores, int) else None)}"
    if kind == "cuda":
        memory = " · ".join(f"{fmt_bytes(device[key])} {word}" for key, word in
                            (("memory_total", "total"), ("memory_used", "used"), ("memory_free", "free"))
                            if device.get(key) is not None)
        extra = f" (sm {device['capability']})" if device.get("capability") else ""
        if device.get("utilization") is not None:
            memory += f" · {device['utilization']}% busy · {device.get('temperature', '?')} °C"
        return f"{name}: {device.get('model', 'GPU')}{extra}" + (f"\n  {memory}" if memory else "")
    return f"{name}: {device.get('model', kind)}"


def parallel_line(device: DeviceConfig, batch_size: int, listed: list[dict] | None) -> str:
    """"data parallel: 2 processes × batch 64 = global batch 128 (DDP, gloo)", or "" for one device."""
    if not device.distributed:
        return ""
    gpus = sum(1 for d in listed or [] if d.get("kind") == "cuda") or None
    world = device.world_size(gpus)
    on_gpus = device.device.startswith("cuda") or device.device_list is not None or device.devices.strip() == "all" \
        or (device.device == "auto" and bool(gpus))
    how = "DistributedDataParallel, NCCL" if on_gpus else "DistributedDataParallel, gloo on the CPU"
    if world is None:
        return f"data parallel on every GPU × batch {batch_size or 'all'} each ({how})"
    if not batch_size:
        return f"data parallel: {world} processes, each a share of the full batch ({how})"
    return f"data parallel: {world} processes × batch {batch_size} = global batch {world * batch_size} ({how})"


class DevicePane(FormPane):
    """Edits `DeviceConfig`; `show_devices` fills the device choices once torch has been loaded."""

    SECTION = SECTION

    DEFAULT_CSS = """
    DevicePane { padding: 0 1; }
    DevicePane #device-list { margin-top: 1; color: $text-muted; }
    DevicePane #device-memory { margin-top: 1; }
    DevicePane #device-parallel { margin-top: 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.devices: list[dict] | None = None  # None until the engine has answered ListDevices
        self.form = ConfigForm(DeviceConfig, SECTION, choices={"device": FALLBACK_DEVICES}, id="device-form")
        self.listing = Static(LOADING, id="device-list")
        self.memory = Static("", id="device-memory")
        self.parallel = Static("", id="device-parallel")

    def compose(self) -> ComposeResult:
        yield self.form
        yield self.parallel
        yield self.listing
        yield self.memory

    def show_parallel(self, device: DeviceConfig, batch_size: int) -> None:
        """Say what several devices mean for the batch: train.batch_size is each process's, the step sees all."""
        self.parallel.update(Text(parallel_line(device, batch_size, self.devices)))


    def after_set(self) -> None:
        self.form.set_choices("device", self._options())
        self._list()

    def on_edit(self, path: str) -> None:
        if path.endswith("threads"):
            self._list()

    def show_devices(self, reply: DevicesListed) -> None:
        """Offer the devices torch found (auto first) and list them with their memory."""
        self.devices = list(reply.devices)
        self.form.set_choices("device", self._options())
        self._list()

    def _list(self) -> None:
        if self.devices is None:
            return
        try:
            threads = int(self.form.raw("threads") or 0)
        except (TypeError, ValueError):  # a half-typed value: the form shows its problem
            threads = 0
        lines = [device_line(d, threads) for d in self.devices] or ["no devices reported"]
        self.listing.update(Text("\n".join(lines)))

    def _options(self) -> list[tuple[str, str]]:
        current = self.form.raw("device")
        if self.devices is None:
            # Nothing is known to be missing yet: offer a preset's device as it is.
            return FALLBACK_DEVICES + ([(current, current)] if current not in dict(FALLBACK_DEVICES) else [])
        options = [("auto", "auto")] + [(device_label(d), d["name"]) for d in self.devices if d.get("name")]
        # Plain "cuda" (the current CUDA device) is valid too; offer it where it is the configured value.
        if current == "cuda" and any(d.get("kind") == "cuda" for d in self.devices):
            options.append(("cuda", "cuda"))
        return options

    def show_memory(self, allocated: int | None, reserved: int | None, data_wait: float | None = None) -> None:
        """This run's device memory and, for streamed data, its data wait (from the step statistics); all None
        clears the line."""
        parts = [f"{fmt_bytes(n)} {word}" for n, word in ((allocated, "allocated"), (reserved, "reserved"))
                 if n is not None]
        if data_wait is not None:
            parts.append(data_wait_text(data_wait))
        style = "bold yellow" if data_wait is not None and data_wait > DATA_WAIT_HINT else ""
        self.memory.update(Text(f"this run: {' · '.join(parts)}" if parts else "", style=style))
