"""A next-token run's generated sample shows in the app's prediction view, and each evaluation's new sample
replaces the last (issue 28: "its generated sample is shown in the app")."""

import dataclasses

from torchtui.engine import protocol as p

from .conftest import until
from .fakes import scripted_run

RUN = "20261207-120000-char-lm"


def text_run(samples: list[str]) -> list:
    """The scripted run as a next-token one: its grid predictions replaced by generated samples."""
    events, n = [], 0
    for event in scripted_run(RUN):
        if isinstance(event, p.RunStarted):
            event = dataclasses.replace(event, name="char-lm", task="tokens", loss="cross_entropy", class_names=[])
        if isinstance(event, p.Predictions):
            event = p.Predictions(RUN, event.step, event.epoch, "text", text=samples[min(n, len(samples) - 1)],
                                  prompt="def ")
            n += 1
        events.append(event)
    return events


async def test_the_generated_sample_shows_in_the_prediction_view(fake_app):
    app = fake_app
    async with app.run_test(size=(160, 48)) as pilot:
        app.fake_host.emit(*text_run(["tne qick", "the quick", "the quick brown", "main():\n    return 42"]))
        await until(pilot, lambda: app.history.predictions is not None and app.history.predictions.step == 200,
                    what="the last sample")
        view = app.query_one("#prediction")
        await until(pilot, lambda: not view.dirty and "return 42" in view.render().plain, what="the sample drawn")
        shown = view.render().plain
        assert "def main():" in shown and "generated sample" in shown and "step 200" in shown
        assert "the quick brown" not in shown  # the newest sample replaces the one before
