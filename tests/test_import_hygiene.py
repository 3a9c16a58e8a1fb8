"""The engine never imports the UI; the engine host module never imports torch."""

import subprocess
import sys

UI = ("textual", "rich", "plotext")


def modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in out.split()}


def test_engine_imports_no_ui():
    loaded = modules_after("import torchtui.engine.run.engine, torchtui.engine.host, torchtui.engine.presets, "
                           "torchtui.engine.run.requests")
    assert "torch" in loaded
    assert not loaded & set(UI)


def test_protocol_config_and_host_are_torch_free():
    # A UI process hosts the engine in a worker; it must be able to talk to it without importing torch.
    loaded = modules_after("import torchtui.engine.protocol, torchtui.engine.config, torchtui.engine.host, "
                           "torchtui.engine.presets")
    assert "torch" not in loaded and not loaded & set(UI)


CLIENT = '''
import sys
from torchtui.engine import presets, protocol as p
from torchtui.engine.host import WorkerHost

if __name__ == "__main__":
    cfg = presets.load("moons", ["train.epochs=2", "device.device=cpu"]).to_dict()
    with WorkerHost(sys.argv[1]) as host:
        host.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=120)
        for i, request in enumerate((p.ListDevices, p.DescribeModel, p.PreviewData), start=1):
            host.send(request(request_id=i) if request is p.ListDevices else request(config=cfg, request_id=i))
        host.send(p.Start(config=cfg))
        host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=120)
        host.drain()
    print("torch" in sys.modules)
'''


def test_a_worker_client_never_imports_torch(tmp_path):
    """Every event of a whole run, unpickled in the client (the UI process), leaves torch unimported: an
    event holding a torch type (even a str subclass such as torch.__version__) would import it."""
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "runs")], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


FIRST_FRAME = '''
import os, sys
_, tty = os.openpty()
os.dup2(tty, 0)
os.dup2(tty, 1)
from textual.app import App

run, display = App.run, App._display

def headless(self, *args, **kwargs):
    return run(self, *args, **{**kwargs, "headless": True})

def first_frame(self, screen, renderable):
    display(self, screen, renderable)
    if renderable is not None and screen.query("FooterKey"):
        sys.__stderr__.write("\\n".join(sys.modules) + "\\n")
        os._exit(0)

App.run, App._display = headless, first_frame
from torchtui.cli.main import main
main(["moons", "--runs-dir", sys.argv[1]])
os._exit(3)
'''


def test_the_apps_first_frame_comes_before_the_protocol_the_config_and_yaml(tmp_path):
    """Issue 31: `torchtui` paints its first frame (the tab titles, the Footer's keys) before it imports what
    reading a preset and steering a run need; they were 700 M of its 2,300 M instructions to that frame
    (bench/bench_startup.py)."""
    done = subprocess.run([sys.executable, "-c", FIRST_FRAME, str(tmp_path / "runs")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stderr.split())
    assert "textual.widgets._footer" in loaded and "textual.widgets._tabbed_content" in loaded  # the frame came,
    # with the panes' tab titles (their own mount after the frame came 0.16 s after the Footer: bench_tui paint)
    early = {"yaml", "torch", "torchtui.engine.protocol", "torchtui.engine.config", "torchtui.engine.history",
             "torchtui.tui.controllers.setup", "torchtui.tui.panes.dataset", "plotext"} & loaded
    assert not early, f"imported before the first frame: {sorted(early)}"
