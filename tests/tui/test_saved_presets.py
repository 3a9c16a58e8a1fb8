"""Saved presets hold what was chosen, and a description that is still true (issue 14 item 11)."""

import dataclasses

import yaml

from torchtui.engine import presets
from torchtui.engine.config import from_dict


def test_a_saved_preset_holds_only_what_differs_from_the_defaults_and_loads_back_equal():
    spiral = presets.load("spiral")
    path = presets.save(spiral, "my-spiral")
    text = path.read_text()
    assert len(text.splitlines()) < 40, text
    saved = yaml.safe_load(text)
    assert list(saved)[:3] == ["schema", "name", "description"]
    assert "device" not in saved and "seed" not in saved["data"]  # all defaults: left out
    assert from_dict(saved) == spiral


async def test_the_description_says_what_changed_since_the_preset_was_opened(fake_app):
    async with fake_app.run_test(size=(120, 40)):
        fake_app.setup.preset_ref = "moons"
        moons = presets.load("moons")
        assert fake_app.presets.saved_description() == moons.description
        fake_app.config = dataclasses.replace(moons, train=dataclasses.replace(moons.train, lr=0.05))
        assert fake_app.presets.saved_description() == "moons with train.lr 0.05"


async def test_quitting_after_a_stop_prints_how_to_resume(fake_app):
    from torchtui.engine import protocol as p

    from .conftest import until
    from .fakes import scripted_run

    async with fake_app.run_test(size=(120, 40)) as pilot:
        fake_app.fake_host.emit(*scripted_run()[:3], p.StateChanged("20261122-120000-moons", p.STOPPED))
        await until(pilot, lambda: fake_app.history.state == p.STOPPED, what="stopped")
        await pilot.press("q")
        await until(pilot, lambda: not fake_app.is_running, what="exit")
    assert "continue it: torchtui resume runs/20261122-120000-moons" in fake_app.farewell
