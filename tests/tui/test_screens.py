"""Pilot tests for the modal screens: each is pushed with a callback and its result checked."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.geometry import Region
from textual.widgets import Input, OptionList, TextArea

from torchtui.engine import presets
from torchtui.engine.config import ExperimentConfig
from torchtui.tui.screens.confirm import ConfirmScreen
from torchtui.tui.screens.help import HelpScreen
from torchtui.tui.screens.open_preset import OpenPresetScreen
from torchtui.tui.screens.save_preset import SavePresetScreen
from torchtui.tui.screens.traceback import TracebackScreen

BUILTINS = {i.name for i in presets.list_presets() if i.builtin}
UNSET = object()


class Host(App):
    """Pushes one screen on mount and records what it dismisses with."""

    def __init__(self, make_screen):
        super().__init__()
        self.make_screen = make_screen
        self.result = UNSET

    def on_mount(self) -> None:
        self.push_screen(self.make_screen(), self.record)

    def record(self, result) -> None:
        self.result = result


def text_of(screen, selector: str) -> str:
    """The text a widget shows on screen, as rendered (works for Rich tables too)."""
    widget = screen.query_one(selector)
    lines = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return "\n".join(line.text.rstrip() for line in lines)


async def test_confirm_y_and_enter_answer_yes():
    for key in ("y", "enter"):
        app = Host(lambda: ConfirmScreen("Quit?"))
        async with app.run_test() as pilot:
            await pilot.press(key)
            await pilot.pause()
            assert app.result is True, key


async def test_confirm_n_and_escape_answer_no():
    for key in ("n", "escape"):
        app = Host(lambda: ConfirmScreen("Quit?"))
        async with app.run_test() as pilot:
            await pilot.press(key)
            await pilot.pause()
            assert app.result is False, key


async def test_confirm_enter_on_focused_no_answers_no():
    app = Host(lambda: ConfirmScreen("Quit?"))
    async with app.run_test() as pilot:
        await pilot.press("tab", "enter")
        await pilot.pause()
        assert app.result is False


async def type_name(pilot, name: str) -> None:
    pilot.app.screen.query_one("#name", Input).value = name
    await pilot.press("enter")
    await pilot.pause()


async def test_save_preset_empty_name_shows_error_and_stays_open():
    app = Host(lambda: SavePresetScreen())
    async with app.run_test() as pilot:
        await type_name(pilot, "  ")
        assert isinstance(app.screen, SavePresetScreen) and app.result is UNSET
        assert "Type a name" in text_of(app.screen, "#error")


async def test_save_preset_rejects_bad_characters_and_builtin_names():
    app = Host(lambda: SavePresetScreen("moons"))
    async with app.run_test() as pilot:
        await type_name(pilot, "a/b")
        assert "letters, digits" in text_of(app.screen, "#error")
        await type_name(pilot, ".hidden")
        assert "letters, digits" in text_of(app.screen, "#error")
        await type_name(pilot, "moons")
        assert "'moons' is a built-in preset; choose another name" in text_of(app.screen, "#error")
        assert isinstance(app.screen, SavePresetScreen) and app.result is UNSET


async def test_save_preset_prefills_and_returns_a_new_name():
    app = Host(lambda: SavePresetScreen("moons-wide"))
    async with app.run_test() as pilot:
        assert app.screen.query_one("#name", Input).value == "moons-wide"
        await pilot.press("enter")
        await pilot.pause()
        assert app.result == "moons-wide"


async def test_save_preset_escape_cancels():
    app = Host(lambda: SavePresetScreen("x"))
    async with app.run_test() as pilot:
        await pilot.press("escape")
        await pilot.pause()
        assert app.result is None


async def test_save_preset_existing_user_preset_asks_before_overwriting():
    presets.save(ExperimentConfig(), "mine")
    app = Host(lambda: SavePresetScreen("mine"))
    async with app.run_test() as pilot:
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, SavePresetScreen) and app.result is UNSET
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert app.result == "mine"
        assert not isinstance(app.screen, (ConfirmScreen, SavePresetScreen))


def listed_ids(screen) -> list[str]:
    options = screen.query_one(OptionList)
    return [options.get_option_at_index(i).id for i in range(options.option_count)]


async def test_open_preset_lists_builtins_and_user_presets_and_returns_a_path():
    user_path = presets.save(ExperimentConfig(), "mine")
    app = Host(lambda: OpenPresetScreen())
    async with app.run_test() as pilot:
        names = {Path(p).stem for p in listed_ids(app.screen)}
        assert names == BUILTINS | {"mine"}
        await pilot.press(*"mine")
        await pilot.pause()
        assert listed_ids(app.screen) == [str(user_path)]
        await pilot.press("enter")
        await pilot.pause()
        assert app.result == str(user_path)


async def test_open_preset_filter_narrows_and_arrows_pick():
    app = Host(lambda: OpenPresetScreen())
    async with app.run_test() as pilot:
        await pilot.press(*"built-in")
        await pilot.pause()
        assert len(listed_ids(app.screen)) == len(BUILTINS)
        app.screen.query_one(Input).value = "zzz-no-such"
        await pilot.pause()
        assert listed_ids(app.screen) == []
        assert "No preset matches" in text_of(app.screen, "#empty")
        await pilot.press("enter")  # nothing to open: stays
        assert app.result is UNSET
        app.screen.query_one(Input).value = ""
        await pilot.pause()
        second = listed_ids(app.screen)[1]
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.result == second


async def test_open_preset_lists_unreadable_presets_and_escape_cancels():
    broken = presets.user_dir() / "broken.yaml"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("data: [unclosed\n")
    app = Host(lambda: OpenPresetScreen())
    async with app.run_test() as pilot:
        assert str(broken) in listed_ids(app.screen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.result is None


async def test_help_lists_given_bindings_and_closes():
    keys = [("space", "Start / pause"), ("ctrl+s", "Save preset"), ("r", "Restart")]
    for close in ("escape", "q", "question_mark"):
        app = Host(lambda: HelpScreen(keys))
        async with app.run_test() as pilot:
            text = text_of(app.screen, "#keys")
            for key, description in keys:
                assert key in text and description in text
            assert "apply live" in " ".join(text_of(app.screen, "#about").split())
            await pilot.press(close)
            await pilot.pause()
            assert app.result is None and not isinstance(app.screen, HelpScreen), close


async def test_traceback_shows_message_and_full_text():
    tb = "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: shape [2, 3] mismatch"
    app = Host(lambda: TracebackScreen("RuntimeError: shape [2, 3] mismatch", tb))
    async with app.run_test() as pilot:
        assert app.screen.query_one(TextArea).text == tb
        assert "shape [2, 3]" in text_of(app.screen, "#message")
        await pilot.press("c")
        await pilot.pause()
        assert tb in app.clipboard and isinstance(app.screen, TracebackScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.result is None


async def test_screens_fit_an_80x24_terminal():
    # The last row of each dialog (hint or buttons) must be on screen, not clipped below it.
    keys = [(f"k{i}", f"binding number {i}") for i in range(30)]
    cases = [(lambda: ConfirmScreen("Quit?"), "#no"), (lambda: SavePresetScreen("x"), "#cancel"),
             (lambda: OpenPresetScreen(), "#hint"), (lambda: HelpScreen(keys), "#hint"),
             (lambda: TracebackScreen("boom", "line\n" * 200), "#close")]
    for make, last in cases:
        app = Host(make)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            region = app.screen.query_one(last).region
            assert region.area and app.screen.region.contains_region(region), (make, region)


async def test_a_key_that_also_says_yes_is_named_on_the_yes_button_not_a_second_one():
    """Issue 26 item 9: run_control's ask (r r restarts) showed "Restart (y)" and "Restart (r)" side by side."""
    from textual.widgets import Button

    app = Host(lambda: ConfirmScreen("Restart?", yes="Restart", no="Cancel", extra=("r", "Restart", True)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        labels = [str(b.label) for b in app.screen.query(Button)]
        assert labels == ["Restart (y, r)", "Cancel (n)"]
        await pilot.press("r")
        await pilot.pause()
        assert app.result is True


async def test_three_long_buttons_show_whole_at_120_and_80_columns():
    """Issue 26 item 9: at 120 columns the open-preset question's Cancel was one character wide (three buttons
    in a 64-column dialog)."""
    from textual.widgets import Button

    def make():
        return ConfirmScreen("A run is running. Stop it and open x.yaml, or open it for the next start?",
                             title="A run is active", yes="Stop it and open", no="Cancel",
                             extra=("o", "Open for the next start", "later"))

    for size in ((120, 40), (80, 24), (60, 20)):
        app = Host(make)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            for button in app.screen.query(Button):
                label = str(button.label)
                assert button.content_region.width >= len(label), (size, label, button.content_region)
                dialog = app.screen.query_one("#dialog").content_region
                assert dialog.contains_region(button.region), (size, label, button.region, dialog)


async def test_save_preset_prefills_a_name_that_shadows_no_builtin():
    """Issue 26 item 9: the dialog offered `moons`, the built-in's own name, which Enter then refused."""
    app = Host(lambda: SavePresetScreen("moons"))
    async with app.run_test() as pilot:
        name = app.screen.query_one("#name", Input).value
        assert name.startswith("moons-") and name not in BUILTINS
        await pilot.press("enter")
        await pilot.pause()
        assert app.result == name
