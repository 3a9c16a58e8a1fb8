"""Setting up in the panes: a preset opened (also while the panes mount), values replaced typing like fresh
ones, data problems beside their fields, a run named after its data."""

import dataclasses

import pytest

from torchtui.engine import presets
from torchtui.engine import protocol as p

from .conftest import until


async def test_open_preset_fills_the_panes(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press(*"line")
        await pilot.press("enter")
        await until(pilot, lambda: fake_app.config.name == "line", what="line preset loaded")
        assert fake_app.pane("dataset").value()["source"] == "line"
        assert fake_app.pane("model").value()["layers"] == []


async def test_a_data_file_that_cannot_load_blocks_start_beside_its_field(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.bridge.ready, what="engine ready")
        preview = [c for c in fake_app.fake_host.sent if isinstance(c, p.PreviewData)][-1]
        fake_app.fake_host.emit(p.DataPreviewed(preview.request_id, error="data.path: no folder '/nowhere'"))
        await until(pilot, lambda: fake_app.problem.startswith("data.path"), what="load problem")
        assert "no folder" in str(fake_app.query_one("#data-path-error").content)
        assert "no folder" in str(fake_app.query_one("#status").render())
        await pilot.press("space")
        await pilot.pause()
        assert not [c for c in fake_app.fake_host.sent if isinstance(c, p.Start)]
        fake_app.fake_host.emit(p.DataPreviewed(preview.request_id, task="binary", sizes={"train": 10}))
        await until(pilot, lambda: not fake_app.problem, what="problem cleared")


async def test_a_data_problem_both_answers_report_shows_once_beside_its_field(fake_app):
    """Issue 14 item 11: the model summary loads the data too; when it answered first, the message showed twice."""
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.bridge.ready and fake_app.panes_ready, what="engine ready")
        sent = fake_app.fake_host.sent
        model = [c for c in sent if isinstance(c, p.DescribeModel)][-1]
        preview = [c for c in sent if isinstance(c, p.PreviewData)][-1]
        problem = "data.path: no such file '/nonexistent.csv'"
        fake_app.fake_host.emit(p.ModelDescribed(model.request_id, None, error=problem),
                                p.DataPreviewed(preview.request_id, error=problem))
        await until(pilot, lambda: len(fake_app.setup.load_problems) == 2, what="both answers")
        await pilot.pause()
        assert str(fake_app.query_one("#data-path-error").content).count("no such file") == 1


async def test_a_field_whose_value_was_replaced_types_like_a_fresh_one(fake_app):
    """Issue 14 item 1: moons → open spiral → tab into layer 1 units (128), type 9: it read 1298, because the
    cursor stayed where the old value ("64") ended. A replaced value puts the cursor at its end, as a
    freshly mounted field has it."""
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        await pilot.press("2")  # the Model pane: its layer fields mount
        await until(pilot, lambda: fake_app.query("#model-layers-0-units"), what="layer fields")
        units = fake_app.query_one("#model-layers-0-units")
        units.focus()
        await pilot.pause()
        assert units.cursor_position == len("64")
        fake_app.set_focus(None)
        assert fake_app.presets.open(str(presets.builtin_dir() / "spiral.yaml"))
        await until(pilot, lambda: units.value == "128", what="spiral's layer shown")
        units.focus()
        await pilot.press("9")
        assert units.value == "1289"  # appended, as in a fresh field; never 1298
        form = fake_app.query_one("#train-lr")
        fake_app.set_focus(None)
        assert fake_app.presets.open(str(presets.builtin_dir() / "moons.yaml"))
        await until(pilot, lambda: form.value == "0.003", what="moons' lr shown")
        assert form.cursor_position == len("0.003")


@pytest.mark.parametrize("when", ["before the panes are built", "while they mount"])
async def test_a_preset_opened_while_the_panes_mount_is_what_the_panes_hold(fake_app, when):
    """Controls mounted before a fill announce their old values after it: moons' 64 came back into spiral's
    first layer (the pane showed 128, the run would have trained 64) and its init and scheduler Selects
    reverted, with a false "applies on restart" notice. Before the panes were built, opening a preset (or
    attaching to a run) raised KeyError: 'dataset'."""
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        if when == "while they mount":
            await until(pilot, lambda: app.deck.built, what="panes built")
        assert not app.panes_ready
        assert app.presets.open(str(presets.builtin_dir() / "spiral.yaml"))
        expected = app.config
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        for key in "1234":
            await pilot.press(key)  # every pane and its fields on screen
            await pilot.pause(0.1)
        app.set_focus(None)
        app.setup.revalidate()
        assert app.config == expected
        assert "applies on restart" not in app.notice


async def test_a_run_is_named_after_the_data_the_panes_chose(fake_app):
    """Issue 14 item 11: iris.csv set up from another preset ran as `…-moons`; it is an iris run."""
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        csv = str(presets.builtin_dir() / "examples" / "iris.csv")
        dataset = fake_app.pane("dataset")
        dataset.set_values({**dataclasses.asdict(fake_app.config.data), "source": "csv", "path": csv,
                            "target": "species"})
        fake_app.setup.revalidate()
        assert fake_app.config.data.path == csv and fake_app.config.name == "iris"
        assert fake_app.sub_title == "iris" and "name" not in fake_app.notice


async def test_a_problem_shown_before_its_pane_is_composed_appears_beside_the_field_once_it_is():
    """A data file that cannot load is often reported before the Dataset pane has composed its fields (the
    panes mount one per tick after the first paint; on a loaded machine seconds later): the status bar said
    it, the field never did, since the form had no field to put it beside yet."""
    from textual.app import App

    from torchtui.tui.panes.dataset import DatasetPane

    pane = DatasetPane(id="dataset")
    pane.show_problems(["data.path: no folder '/nowhere'"])

    class Host(App):
        def compose(self):
            yield pane

    async with Host().run_test(size=(100, 60)) as pilot:
        await pilot.pause()
        assert "no folder" in str(pane.query_one("#data-path-error").content)
