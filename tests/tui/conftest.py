"""UI test helpers: build the app on a fake or real engine, and wait for conditions without blind sleeps."""

import time
from contextlib import asynccontextmanager

import pytest

from torchtui.engine import presets
from torchtui.tui.app import TorchTUI
from torchtui.tui.bridge import EngineBridge

from .fakes import FakeHost


async def until(pilot, condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until `condition()` holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def burst(app, *keys: str) -> None:
    """Send keys as a terminal delivers a quick burst: all queued at once, none waiting for the one before to be
    handled (pilot.press waits after each key, which hides the races a person typing fast meets)."""
    from textual import events

    for key in keys:
        char = {"tab": "\t", "space": " ", "escape": "\x1b", "enter": "\r"}.get(key, key if len(key) == 1 else None)
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


def settles(app: TorchTUI) -> TorchTUI:
    """Make `app.run_test` wait, before tearing the app down, for the panes it mounts after the first
    paint: Textual's teardown of a half-mounted pane raises (the app itself defers exit() likewise)."""
    original = app.run_test

    @asynccontextmanager
    async def run_test(*args, **kwargs):
        async with original(*args, **kwargs) as pilot:
            yield pilot
            await until(pilot, lambda: app.panes_ready, what="panes mounted")

    app.run_test = run_test
    return app


@pytest.fixture
def fake_app():
    host = FakeHost()
    app = settles(TorchTUI(presets.load("moons"), EngineBridge(host)))
    app.fake_host = host
    return app


@pytest.fixture
def real_app(tmp_path):
    from torchtui.engine.host import InProcessHost

    host = InProcessHost(str(tmp_path / "runs"))
    # Long enough that no pause or key press can race the run ending on its own (500 epochs did, under load).
    cfg = presets.load("moons", ["train.epochs=100000", "data.n_samples=400"])
    app = settles(TorchTUI(cfg, EngineBridge(host), runs_dir=str(tmp_path / "runs")))
    yield app
    host.close()
