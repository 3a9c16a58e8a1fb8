"""The engine never imports the UI; the engine host module never imports torch."""

import subprocess
import sys

UI = ("textual", "rich", "plotext")


def modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in out.split()}


def test_engine_imports_no_ui():
    loaded = modules_after("import torchtui.engine.engine, torchtui.engine.host, torchtui.engine.presets, "
                           "torchtui.engine.requests")
    assert "torch" in loaded
    assert not loaded & set(UI)


def test_protocol_config_and_host_are_torch_free():
    # A UI process hosts the engine in a worker; it must be able to talk to it without importing torch.
    loaded = modules_after("import torchtui.engine.protocol, torchtui.engine.config, torchtui.engine.host, "
                           "torchtui.engine.presets")
    assert "torch" not in loaded and not loaded & set(UI)
