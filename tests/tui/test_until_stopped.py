"""In the app, toy presets train until stopped so that pause, step and lr ×2 can be tried (issue 14 item 2)."""

from torchtui.engine import presets
from torchtui.tui.controllers.presets import steerable

from .conftest import until


def test_toy_presets_train_until_stopped_unless_epochs_are_given():
    moons = presets.load("moons")
    config, note = steerable(moons, "moons")
    assert config.train.epochs == 0 and f"runs its {moons.train.epochs} epochs" in note
    assert steerable(moons, "moons", epochs_given=True) == (moons, "")
    spiral = presets.load("spiral")  # a cosine schedule spans the run: it keeps its epochs
    assert steerable(spiral, "spiral") == (spiral, "")
    iris = presets.load("csv-iris")  # real data keeps its length
    assert steerable(iris, "csv-iris") == (iris, "")


async def test_opening_a_toy_preset_in_the_app_says_it_trains_until_stopped(fake_app):
    async with fake_app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes")
        assert fake_app.presets.open("xor")
        await pilot.pause()
        assert fake_app.config.train.epochs == 0
        assert any("trains until you stop it" in line for line in fake_app.log_pane.lines_written)
