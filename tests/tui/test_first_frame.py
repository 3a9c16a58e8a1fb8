"""The app's start-up: a first frame before the setup is read (issue 31), and what a bad setup does then."""

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
