"""Pilot tests of the Hparams pane's optimizers: every registry entry offered, the chosen one's own settings
shown (and only those), inline errors under them, values that round-trip."""

from __future__ import annotations

from textual.widgets import Input, Select, Static, Switch

from torchtui.engine.config import ExperimentConfig, TrainConfig, from_dict
from torchtui.engine.run.optim import OPTIMIZERS
from torchtui.engine.schema import ConfigError, to_plain
from torchtui.tui.panes.hparams import HparamsPane

from .test_panes import PaneApp, replace_text


def problems_of(values: dict) -> list[str]:
    data = ExperimentConfig().to_dict()
    data["train"] = values
    try:
        from_dict(data)
    except ConfigError as err:
        return err.problems
    return []


def shown(app, selector: str) -> bool:
    """Whether the widget and every container above it are displayed."""
    node = app.query_one(selector)
    while node is not None and node is not app.screen:
        if not node.display:
            return False
        node = node.parent
    return True


async def choose(pilot, optimizer: str) -> None:
    pilot.app.query_one("#train-optimizer", Select).value = optimizer
    await pilot.pause()


async def test_the_dropdown_offers_every_registered_optimizer():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(90, 50)):
        select = app.query_one("#train-optimizer", Select)
        assert [value for _, value in select._options] == list(OPTIMIZERS)


async def test_adadelta_shows_its_rho_and_only_its_own_settings():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(90, 50)) as pilot:
        assert not shown(app, "#train-args-adadelta-rho")  # adam is chosen: its amsgrad shows instead
        assert shown(app, "#train-args-adam-amsgrad")
        await choose(pilot, "adadelta")
        rho = app.query_one("#train-args-adadelta-rho", Input)
        assert shown(app, "#train-args-adadelta-rho") and rho.value == "0.9"
        assert shown(app, "#train-args-adadelta-eps")  # its own eps (torch's 1e-6), not the shared one
        assert not shown(app, "#train-eps") and not shown(app, "#train-betas") and not shown(app, "#train-momentum")
        assert shown(app, "#train-weight_decay")
        assert not shown(app, "#train-args-adam-amsgrad") and not shown(app, "#train-args-asgd-alpha")
        assert "lr scales the computed update" in str(app.query_one("#train-args-adadelta .optimizer-note",
                                                                     Static).content)
        assert app.pane.value()["optimizer_args"] == {}  # defaults are not written out


async def test_an_invalid_rho_shows_its_error_under_the_field_and_clears_when_fixed():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(90, 50)) as pilot:
        await choose(pilot, "adadelta")
        await replace_text(pilot, "#train-args-adadelta-rho", "1.5")
        assert ("train", "train.optimizer_args.rho") in app.changes
        assert app.pane.value()["optimizer_args"] == {"rho": 1.5}
        problems = problems_of(app.pane.value())
        assert problems == ["train.optimizer_args.rho: must be a number at least 0 and at most 1, got 1.5"]
        app.pane.show_problems(problems)
        await pilot.pause()
        error = app.query_one("#train-args-adadelta-rho-error", Static)
        assert "must be a number at least 0 and at most 1" in str(error.content) and \
            shown(app, "#train-args-adadelta-rho-error")
        assert app.query_one("#train-args-adadelta-rho-field").has_class("-problem")
        assert str(app.query_one("#train-problems", Static).content) == ""  # once, under its field

        await replace_text(pilot, "#train-args-adadelta-rho", "0.95")
        problems = problems_of(app.pane.value())
        assert problems == [] and app.pane.value()["optimizer_args"] == {"rho": 0.95}
        app.pane.show_problems(problems)
        await pilot.pause()
        assert not app.query_one("#train-args-adadelta-rho-field").has_class("-problem")


async def test_switching_optimizers_keeps_each_ones_settings_apart():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(90, 50)) as pilot:
        await choose(pilot, "adadelta")
        await replace_text(pilot, "#train-args-adadelta-rho", "0.8")
        await choose(pilot, "adam")
        assert app.pane.value()["optimizer_args"] == {}  # adam does not take rho
        app.query_one("#train-args-adam-amsgrad", Switch).value = True
        await pilot.pause()
        assert app.pane.value()["optimizer_args"] == {"amsgrad": True}
        await choose(pilot, "adadelta")
        assert app.pane.value()["optimizer_args"] == {"rho": 0.8}
        assert problems_of(app.pane.value()) == []


async def test_a_config_with_optimizer_args_round_trips_without_change_messages():
    config = TrainConfig(optimizer="lbfgs", lr=1.0, optimizer_args={"max_iter": 5, "line_search_fn": "strong_wolfe",
                                                                    "history_size": 100})
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(90, 50)) as pilot:
        app.pane.set_values(config)
        await pilot.pause()
        assert app.query_one("#train-args-lbfgs-max_iter", Input).value == "5"
        assert app.query_one("#train-args-lbfgs-line_search_fn", Select).value == "strong_wolfe"
        assert app.pane.value() == to_plain(config)  # history_size stays although it is the default: it was set
        assert from_dict({"train": app.pane.value()}).train == config
        assert app.changes == []
