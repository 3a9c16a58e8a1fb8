"""Device choice, precision and their warnings; CUDA paths run only where a GPU is present."""

import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.config import DeviceConfig
from torchtui.engine.host import InProcessHost
from torchtui.engine.run.devices import list_devices, precision_settings, resolve_device

from .helpers import of, run_to_end, tiny

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def local(tmp_path):
    with InProcessHost(str(tmp_path / "runs")) as h:
        yield h


def with_device(**device):
    cfg = tiny(epochs=1)
    cfg["device"] = device
    return cfg


def test_auto_picks_what_is_there():
    dev, warnings = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type) and not warnings


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback without CUDA")
def test_cuda_without_a_gpu_falls_back_with_a_warning(local):
    dev, warnings = resolve_device("cuda:1")
    assert dev.type == "cpu" and "CUDA is not available" in warnings[0]
    events, done = run_to_end(local, with_device(device="cuda", precision="fp16", tf32=True))
    assert done.state == p.FINISHED
    text = " ".join(e.message for e in of(events, p.Log))
    assert "device.device" in text and "device.precision: fp16 needs a CUDA GPU" in text and "device.tf32" in text


def test_bf16_autocast_runs_on_cpu(local):
    assert precision_settings(DeviceConfig(precision="bf16"), torch.device("cpu"))[0] == torch.bfloat16
    _, done = run_to_end(local, with_device(device="cpu", precision="bf16"))
    assert done.state == p.FINISHED and done.summary["val"]["accuracy"] > 0


def test_device_list_has_the_cpu():
    cpu = list_devices()[0]
    assert cpu["kind"] == "cpu" and cpu["cores"] >= 1 and cpu["threads"] >= 1


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_run_reports_memory(local, precision):
    events, done = run_to_end(local, with_device(device="cuda", precision=precision, tf32=True))
    assert done.state == p.FINISHED and done.summary["device"].startswith("cuda")
    stats = of(events, p.StepStats)
    assert stats[-1].mem_allocated > 0 and stats[-1].mem_reserved >= stats[-1].mem_allocated


@needs_cuda
def test_cuda_devices_listed_with_memory():
    gpus = [d for d in list_devices() if d["kind"] == "cuda"]
    assert gpus and gpus[0]["memory_total"] > gpus[0]["memory_free"] > 0
