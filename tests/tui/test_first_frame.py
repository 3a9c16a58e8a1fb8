"""The app's start-up: a first frame before the setup is read (issue 31), and what a bad setup does then."""

import pytest

from torchtui.engine import presets
from torchtui.tui.app import TorchTUI
from torchtui.tui.bridge import EngineBridge

from .conftest import settles, until
from .fakes import FakeHost


async def test_the_cli_s_preset_is_read_after_the_first_frame_and_a_bad_one_ends_the_app_with_code_2(tmp_path):
    """Issue 31: `torchtui PRESET` paints first and reads its preset after; a preset that does not validate
    ends the app with return code 2, its one line kept for the CLI to print (nothing started)."""
    from tests.engine.test_bad_presets import CORPUS

    host = FakeHost()
    app = TorchTUI(lambda: (presets.load(str(CORPUS / "negative-epochs.yaml")), {}, ()), EngineBridge(host))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: not app.is_running, what="the app ending")
    assert app.return_code == 2 and "epochs" in app.load_error.first_line
    assert not app.built and not host.sent

    good = settles(TorchTUI(lambda: (presets.load("spiral"), {"preset_ref": "spiral"}, ("a note",)),
                            EngineBridge(FakeHost())))
    async with good.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: good.built and "a note" in good.log_pane.lines_written, what="the setup read")
        assert good.config.name == "spiral" and good.setup.preset_ref == "spiral"


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_an_attaching_app_draws_the_run_s_charts_before_it_reads_its_setup(size):
    """Issue 31: `torchtui attach` shows the run's charts before anything else loads: its History is on them
    when the setup is read and the controllers built; the events drawn then reach those controllers after,
    so the panes show the run's own setup and the charts hold what a client that watched the run holds. At 80
    columns the charts are the view shown (they were one `v` away, behind the setup)."""
    import dataclasses

    from torchtui.engine import protocol as p
    from torchtui.engine.history import RunHistory

    from .fakes import scripted_run

    events = scripted_run()
    start = dataclasses.replace(events[0], config=presets.load("spiral").to_dict(), name="spiral")
    watched = RunHistory()
    for event in (start, *events[1:]):
        watched.apply(event)
    host = FakeHost()
    host.emit(start, p.History(start.run_id, watched.to_plain()), p.StateChanged(start.run_id, p.PAUSED))
    seen = {}

    def load():
        loss = app.charts.get("loss-chart")
        seen["drawn"] = loss is not None and loss._text is not None and not loss.dirty
        seen["steps"] = {**app.history.to_plain(), "state": ""} == {**watched.to_plain(), "state": ""}
        return presets.load("moons"), {}, ()

    app = settles(TorchTUI(load, EngineBridge(lambda: host, attaching=True)))
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.panes_ready and app.config.name == "spiral", what="the run's setup shown")
        assert app.main.has_class("show-charts") and app.charts["loss-chart"].display
        assert seen == {"drawn": True, "steps": True}
        assert app.pane("dataset").value()["source"] == "spiral" and app.main.state == p.PAUSED
        assert "200" in app.charts["loss-chart"]._text.plain  # the last step's tick: the whole run drawn
