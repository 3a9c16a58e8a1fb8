"""The Footer (issue 26 item 9): whole keys that fit the width, ending in the palette's, and only keys that act in
the run's state (n Step while paused; e, c, r while a run is active)."""

from textual.widgets._footer import FooterKey

from torchtui.engine import protocol as p

from .conftest import until
from .fakes import scripted_run

RUN = "20261122-120000-moons"


def footer_line(app) -> str:
    return app.screen._compositor.render_strips()[-1].text.rstrip()


def whole_keys(app) -> list[str]:
    return [f"{key.key_display} {key.description}" for key in app.main.footer.query(FooterKey)
            if "-command-palette" not in key.classes]


async def shows(pilot, app, width: int) -> str:
    """The Footer at `width` columns once it has recomposed for it."""
    await pilot.resize_terminal(width, 40)
    await until(pilot, lambda: app.size.width == width and footer_line(app).endswith("^p palette")
                and all(key in footer_line(app) for key in whole_keys(app)), timeout=10,
                what=f"a whole Footer at {width} columns: {footer_line(app)!r}")
    return footer_line(app)


async def test_the_footer_fits_each_width_and_shows_the_keys_that_act_now(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        for width in (120, 100, 80, 160):
            line = await shows(pilot, app, width)
            assert len(line) <= width
            # idle: n (a step) and the run's own keys would act on no run
            assert not any(key in line for key in ("n Step", "e Evaluate", "c Checkpoint", "r Restart", "d Detach"))
            assert "space Start/Pause" in line and "q Quit" in line
        app.fake_host.emit(*scripted_run()[:3])
        await until(pilot, lambda: app.history.state == p.RUNNING, what="running")
        line = await shows(pilot, app, 160)
        assert "x Stop" in line and "e Evaluate" in line and "n Step" not in line
        app.fake_host.emit(p.StateChanged(RUN, p.PAUSED))
        await until(pilot, lambda: "n Step" in footer_line(app), timeout=10, what="n Step while paused")
        line = await shows(pilot, app, 120)
        assert "n Step" in line and len(line) <= 120
