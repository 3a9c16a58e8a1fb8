"""The log pane's border can be seen: issue 14 item 11 found it at 1.06:1 in a 256-colour terminal."""

import pytest
from rich.color import Color as RichColor
from rich.color import ColorSystem
from textual.color import Color

from torchtui.tui.widgets.log_pane import LogPane

from .conftest import until


def in_256_colours(color: Color) -> Color:
    r, g, b = RichColor.parse(color.hex[:7]).downgrade(ColorSystem.EIGHT_BIT).get_truecolor()
    return Color(r, g, b)


def contrast(a: Color, b: Color) -> float:
    """WCAG 2 contrast ratio."""
    def luminance(c: Color) -> float:
        parts = [x / 255 for x in (c.r, c.g, c.b)]
        lin = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in parts]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
async def test_the_log_border_has_3_to_1_contrast_in_256_colours(fake_app, theme):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        fake_app.theme = theme
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        await pilot.pause()
        log = fake_app.query_one(LogPane)
        _, border = log.styles.border_top
        behind, _ = log.background_colors
        border = behind.blend(border.with_alpha(1.0), border.a) if border.a < 1 else border
        assert contrast(in_256_colours(border), in_256_colours(behind)) >= 3.0


async def test_a_long_line_wraps_at_120_columns_instead_of_being_cut(fake_app):
    """Issue 14 item 9: at 120x40 the log cut its lines at the pane's edge."""
    async with fake_app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        log = fake_app.query_one(LogPane)
        words = [f"word{i}" for i in range(60)]  # ~400 characters, several widths of the pane
        log.add("warning", " ".join(words))
        await until(pilot, lambda: len(log.lines) >= 2, what="the line written")
        shown = " ".join(strip.text for strip in log.lines)
        assert all(word in shown.split() for word in words)  # every word on screen, none cut at the edge
        assert max(strip.cell_length for strip in log.lines) <= log.scrollable_content_region.width


async def test_lines_wrap_again_when_the_pane_gets_wider(fake_app):
    """A line wrapped beside the setup (58 columns) was left in short pieces when the charts took the width."""
    async with fake_app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        log = fake_app.query_one(LogPane)
        narrow = log.scrollable_content_region.width
        log.add("info", " ".join(f"word{i}" for i in range(30)))
        await until(pilot, lambda: len(log.lines) >= 3, what="the line wrapped in the narrow pane")
        await pilot.resize_terminal(200, 50)
        await until(pilot, lambda: log.scrollable_content_region.width > narrow + 40, what="a wider pane")
        await until(pilot, lambda: max(s.cell_length for s in log.lines) > narrow, what="the lines wrapped again")
        wide = log.scrollable_content_region.width
        assert max(s.cell_length for s in log.lines) <= wide
        assert " ".join(s.text for s in log.lines).split()[-1] == "word29"
