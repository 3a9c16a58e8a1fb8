"""Keyboard focus (issue 26 item 1): the focused field stands out in every theme at 256 colours, and keys that move
focus do what they say however fast they come (a burst of keys, as a terminal delivers them, before the panes
are mounted)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.color import Color

from torchtui.tui.panes.model import ModelPane

from .conftest import burst, until
from .test_log_pane import contrast, in_256_colours


def opaque(widget) -> Color:
    """The background a widget shows, its translucent layers blended onto what is behind them."""
    _, color = widget.background_colors
    return color


def themes(app: App) -> list[str]:
    """The built-in themes given in RGB (the ANSI ones leave the colours to the terminal)."""
    names = []
    for name, theme in sorted(app.available_themes.items()):
        colours = theme.to_color_system().generate()
        if Color.parse(colours["background"]).ansi is None and Color.parse(colours["primary"]).ansi is None:
            names.append(name)
    return names


class PaneApp(App):
    def compose(self) -> ComposeResult:
        yield ModelPane()


def test_the_focus_colour_is_3_to_1_against_the_background_in_every_theme_at_256_colours():
    """The colour that marks focus ($text-primary) against the panes' backgrounds, in each built-in RGB theme."""
    app = App()
    checked = themes(app)
    assert len(checked) >= 15
    for theme in checked:
        colours = app.available_themes[theme].to_color_system().generate()
        mark = in_256_colours(Color.parse(colours["text-primary"]))
        for behind in ("background", "surface"):
            ratio = contrast(mark, in_256_colours(Color.parse(colours[behind])))
            assert ratio >= 3.0, f"{theme}: {ratio:.2f}:1 against ${behind}"


async def test_the_focused_field_and_layer_stand_out_at_3_to_1():
    """Issue 26 item 1: the focused field differed from the rest by background 235 against 234. Three themes on
    screen (the default, a light one, and the one whose text has the least contrast); the test above covers the
    colour in the others."""
    app = PaneApp()
    async with app.run_test(size=(80, 40)) as pilot:
        for theme in ("textual-dark", "textual-light", "solarized-dark"):
            app.theme = theme
            app.query_one("#model-seed").focus()  # a form field: its label shows focus
            await pilot.pause()
            focused = app.query_one("#model-seed-field .field-label")
            other = app.query_one("#model-kind-field .field-label")
            ratio = contrast(in_256_colours(opaque(focused)), in_256_colours(opaque(other)))
            assert ratio >= 3.0, f"{theme}: the focused field's label at {ratio:.2f}:1"
            app.query_one("#model-layers-1-units").focus()  # a layer row: its number shows focus
            await pilot.pause()
            focused = app.query_one("#model-layers-1 .col-index")
            other = app.query_one("#model-layers-0 .col-index")
            ratio = contrast(in_256_colours(opaque(focused)), in_256_colours(opaque(other)))
            assert ratio >= 3.0, f"{theme}: the focused layer's number at {ratio:.2f}:1"


def focused_id(app) -> str | None:
    return app.focused.id if app.focused is not None else None


async def test_tab_and_pane_keys_land_however_fast_they_come(fake_app):
    """Issue 26 item 1: a tab before the panes were mounted was lost, and so was a tab right after a pane key
    (2 then tab: the Model pane was still mounting). Keys come in bursts here, none waiting for the last."""
    app = fake_app
    async with app.run_test(size=(80, 24)) as pilot:
        burst(app, "tab")  # at start-up, before the panes exist
        await until(pilot, lambda: focused_id(app) == "data-source", timeout=10, what="dataset's first field")
        burst(app, "escape", "2", "tab")  # the Model pane may still be mounting
        await until(pilot, lambda: focused_id(app) == "model-kind", timeout=10, what="model's first field")
        burst(app, "escape", "v", "3", "tab")  # from the charts view, a pane key, then into it
        await until(pilot, lambda: focused_id(app) == "train-loss", timeout=10, what="hparams' first field")
        burst(app, "escape", "v")  # the charts view (waited for: train-loss had focus before these keys too)
        await until(pilot, lambda: app.main.has_class("show-charts") and app.focused is None, what="the charts view")
        burst(app, "tab")  # tab from the charts view goes back into the pane shown
        await until(pilot, lambda: focused_id(app) == "train-loss" and not app.main.has_class("show-charts"),
                    what="hparams' first field again")


async def test_a_adds_a_layer_in_the_model_pane_and_elsewhere_says_where(fake_app, monkeypatch):
    """Issue 26 item 1: a did nothing unless the layer list had focus, and nothing said so."""
    app = fake_app
    said: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **kwargs: said.append(str(message)))
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        layers = len(app.pane("model").value()["layers"])
        await pilot.press("a")  # the Dataset pane is shown
        await until(pilot, lambda: said, what="a answered")
        assert "Model pane" in said[0] and len(app.pane("model").value()["layers"]) == layers
        burst(app, "2", "a")  # nothing focused: the layer is added, and focus goes to it (d, [ and ] act on it)
        await until(pilot, lambda: len(app.pane("model").value()["layers"]) == layers + 1, what="a layer added")
        await until(pilot, lambda: (focused_id(app) or "").startswith(f"model-layers-{layers}-"), what="its row")


async def test_a_tab_waiting_for_its_pane_shows_no_widget_name(fake_app):
    """Issue 26 item 9: `TabPane#tab-dataset` (Textual's text for an empty widget) flashed in the Dataset pane
    while it waited for its pane (longest when attaching: the run's charts come first)."""
    app = fake_app
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "dataset" in app.deck.tab_panes, what="the tabs (just after the first frame)")
        tab = app.deck.tab_panes["dataset"]
        assert not tab.children  # the pane is mounted after the tabs
        assert "TabPane" not in str(tab.render())
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
