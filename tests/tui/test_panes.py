"""Pilot tests of the four config panes: editing, inline problems, relevance, layer editing, round trips."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input, Select, Static

from torchtui.engine import protocol as p
from torchtui.engine.config import (
    DataConfig,
    DeviceConfig,
    ExperimentConfig,
    LayerConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
)
from torchtui.engine.schema import ConfigError, to_plain
from torchtui.tui.panes.dataset import DatasetPane
from torchtui.tui.panes.device import DevicePane
from torchtui.tui.panes.form import ConfigChanged
from torchtui.tui.panes.hparams import HparamsPane
from torchtui.tui.panes.model import ModelPane


class PaneApp(App):
    """Hosts one pane and records the ConfigChanged messages it posts."""

    def __init__(self, pane):
        super().__init__()
        self.pane = pane
        self.changes: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield self.pane

    def on_config_changed(self, message: ConfigChanged) -> None:
        self.changes.append((message.section, message.path))


def problems_of(section: str, values: dict) -> list[str]:
    """What the engine's validation says about a config whose `section` is what a pane holds."""
    data = ExperimentConfig().to_dict()
    data[section] = values
    try:
        from_dict(data)
    except ConfigError as err:
        return err.problems
    return []


def text_of(app: App, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


async def replace_text(pilot, selector: str, text: str) -> None:
    """Focus an input, delete what it holds and type `text`, as a user would."""
    field = pilot.app.query_one(selector, Input)
    field.focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * len(field.value), *text)
    await pilot.pause()


async def test_typing_lr_changes_value():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(80, 40)) as pilot:
        await replace_text(pilot, "#train-lr", "0.01")
        assert app.pane.value()["lr"] == 0.01
        assert ("train", "train.lr") in app.changes
        assert TrainConfig.LIVE == ("lr", "weight_decay", "grad_clip")


async def test_garbage_shows_problem_next_to_field_and_clears_when_fixed():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(80, 40)) as pilot:
        await replace_text(pilot, "#train-lr", "abc")
        assert app.pane.value()["lr"] == "abc"
        problems = problems_of("train", app.pane.value())
        assert any(line.startswith("train.lr:") for line in problems)
        app.pane.show_problems(problems + ["data.noise: must be zero or more, got -1",
                                           "train.bogus: unknown key (choose one of: …)"])
        await pilot.pause()
        assert text_of(app, "#train-problems") == "bogus: unknown key (choose one of: …)"
        field = app.query_one("#train-lr-field")
        assert field.has_class("-problem")
        assert "must be a positive number" in text_of(app, "#train-lr-error")
        assert app.query_one("#train-lr-error").display
        assert not app.query_one("#train-epochs-field").has_class("-problem")

        await replace_text(pilot, "#train-lr", "0.01")
        problems = problems_of("train", app.pane.value())
        assert problems == []
        app.pane.show_problems(problems)
        await pilot.pause()
        assert not field.has_class("-problem")
        assert text_of(app, "#train-lr-error") == ""


async def test_list_field_parses_yaml_and_reports_bad_items():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(80, 40)) as pilot:
        assert app.query_one("#train-betas", Input).value == "[0.9, 0.999]"
        await replace_text(pilot, "#train-betas", "[0.8, x]")
        assert app.pane.value()["betas"] == [0.8, "x"]
        app.pane.show_problems(problems_of("train", app.pane.value()))
        await pilot.pause()
        assert "[1]" in text_of(app, "#train-betas-error")


async def test_select_change_by_keyboard_updates_value_and_relevant_fields():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(80, 40)) as pilot:
        assert not app.query_one("#train-momentum-field").display
        assert app.query_one("#train-betas-field").display
        app.query_one("#train-optimizer", Select).focus()
        await pilot.press("enter", "up", "enter")  # adam → sgd, the option above it
        await pilot.pause()
        assert app.pane.value()["optimizer"] == "sgd"
        assert ("train", "train.optimizer") in app.changes
        assert app.query_one("#train-momentum-field").display
        assert not app.query_one("#train-betas-field").display


async def test_scheduler_settings_show_only_for_their_scheduler():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(80, 40)) as pilot:
        assert not app.query_one("#train-milestones-field").display
        app.query_one("#train-scheduler", Select).value = "multistep"
        await pilot.pause()
        assert app.query_one("#train-milestones-field").display
        assert not app.query_one("#train-step_size-field").display


async def test_dataset_pane_shows_fields_for_the_chosen_source():
    app = PaneApp(DatasetPane())
    async with app.run_test(size=(80, 40)) as pilot:
        line_only = ("weight", "bias", "start", "end", "step")
        assert app.pane.value()["source"] == "moons"
        assert not any(app.query_one(f"#data-{name}-field").display for name in line_only)
        assert app.query_one("#data-n_samples-field").display
        app.query_one("#data-source", Select).value = "line"
        await pilot.pause()
        assert all(app.query_one(f"#data-{name}-field").display for name in line_only)
        assert not app.query_one("#data-n_samples-field").display
        assert app.changes == [("data", "data.source")]
        assert app.pane.value()["weight"] == 0.7  # hidden fields keep their values either way


async def test_hidden_field_with_a_problem_is_shown():
    app = PaneApp(DatasetPane())
    async with app.run_test(size=(80, 40)) as pilot:
        app.pane.show_problems(["data.factor: must be between 0 and 1, got 2.0"])
        await pilot.pause()
        assert app.query_one("#data-factor-field").display


async def test_dataset_preview_fills_sizes_and_plot():
    app = PaneApp(DatasetPane())
    async with app.run_test(size=(80, 40)) as pilot:
        app.pane.show_preview(p.DataPreviewed(1, task="binary", sizes={"train": 600, "val": 200, "test": 0},
                                              x=[[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], y=[0, 1, 1],
                                              class_names=["0", "1"], input_shape=[2]))
        await pilot.pause()
        # Issue 26 item 9: "(binary, samples 2)" meant two features
        assert "train 600 · val 200 · test 0   (binary, 2 features)" in text_of(app, "#data-sizes")
        app.pane.show_preview(p.DataPreviewed(2, task="regression", sizes={"train": 40, "val": 10, "test": 0},
                                              x=[[0.0], [0.5], [1.0]], y=[[0.3], [0.65], [1.0]]))
        await pilot.pause()
        assert "train 40" in text_of(app, "#data-sizes")
        app.pane.show_preview(p.DataPreviewed(3, error="data.path: file not found"))
        await pilot.pause()
        assert "file not found" in text_of(app, "#data-sizes")


async def test_dataset_pane_lists_a_csvs_columns_even_when_loading_failed():
    app = PaneApp(DatasetPane())
    async with app.run_test(size=(80, 40)) as pilot:
        assert not app.query_one("#data-columns").display
        columns = ["species: text, 3 distinct", "bill_length_mm: number, 10 missing, 190 distinct",
                   "body_mass_g (target): number, 300 distinct"]
        app.pane.show_preview(p.DataPreviewed(1, error="data.path: 10 bad cell(s)", columns=columns))
        await pilot.pause()
        shown = text_of(app, "#data-columns")
        assert app.query_one("#data-columns").display and "bill_length_mm: number, 10 missing" in shown
        app.pane.set_values({"source": "csv"})
        await pilot.pause()
        assert app.query_one("#data-missing-field").display and app.query_one("#data-categorical-field").display
        app.pane.show_preview(p.DataPreviewed(2, task="binary", sizes={"train": 4}))
        await pilot.pause()
        assert not app.query_one("#data-columns").display


async def test_model_pane_add_remove_move_layers():
    app = PaneApp(ModelPane())
    async with app.run_test(size=(80, 40)) as pilot:
        pane = app.pane
        assert [layer["units"] for layer in pane.value()["layers"]] == [64, 64]
        await replace_text(pilot, "#model-layers-1-units", "32")
        assert [layer["units"] for layer in pane.value()["layers"]] == [64, 32]
        assert ("model", "model.layers[1].units") in app.changes

        pane.add_layer()
        await pilot.pause()
        assert [layer["units"] for layer in pane.value()["layers"]] == [64, 32, 32]
        assert app.query_one("#model-layers-2-units", Input).value == "32"
        await replace_text(pilot, "#model-layers-2-units", "8")

        pane.move_layer(2, -2)
        await pilot.pause()
        assert [layer["units"] for layer in pane.value()["layers"]] == [8, 64, 32]
        assert app.query_one("#model-layers-0-units", Input).value == "8"

        pane.remove_layer(1)
        await pilot.pause()
        assert [layer["units"] for layer in pane.value()["layers"]] == [8, 32]
        assert not app.query_one("#model-layers-2").display
        assert ("model", "model.layers") in app.changes


async def test_model_pane_keys_act_on_the_focused_layer():
    app = PaneApp(ModelPane())
    async with app.run_test(size=(80, 40)) as pilot:
        pane = app.pane
        pane.set_values(ModelConfig(layers=[LayerConfig(units=16), LayerConfig(units=32)]))
        await pilot.pause()
        app.query_one("#model-layers-0-activation", Select).focus()
        await pilot.press("shift+down")
        await pilot.pause()
        assert [layer["units"] for layer in pane.value()["layers"]] == [32, 16]
        assert pane.current == 1
        await pilot.press("a")
        await pilot.pause()
        assert [layer["units"] for layer in pane.value()["layers"]] == [32, 16, 16]
        await pilot.press("d")
        await pilot.pause()
        assert len(pane.value()["layers"]) == 2
        await pilot.click("#model-layers-add")
        await pilot.pause()
        assert len(pane.value()["layers"]) == 3


async def test_model_pane_problems_summary_and_leaky_slope():
    app = PaneApp(ModelPane())
    async with app.run_test(size=(80, 40)) as pilot:
        pane = app.pane
        assert not app.query_one("#model-layers-0-negative_slope").display
        app.query_one("#model-layers-0-activation", Select).value = "leaky_relu"
        await pilot.pause()
        assert app.query_one("#model-layers-0-negative_slope").display
        assert pane.value()["layers"][0]["activation"] == "leaky_relu"

        pane.show_problems(["model.layers[1].dropout: must be at least 0 and below 1, got 1.5",
                            "model.init_b: must be greater than init_a (0.5), got 0.1"])
        await pilot.pause()
        assert "dropout: must be at least 0" in text_of(app, "#model-layers-1-error")
        assert app.query_one("#model-layers-1-dropout").has_class("-error")
        assert "greater than init_a" in text_of(app, "#model-init_b-error")
        assert app.query_one("#model-init_b-field").display  # shown though init is not uniform

        summary = {"rows": [{"name": "net.0", "type": "Linear", "output_shape": [-1, 64], "params": 192,
                             "trainable": 192}], "total": 192, "trainable": 192, "input_shape": [-1, 2]}
        pane.show_summary(p.ModelDescribed(1, summary, text=""))
        await pilot.pause()
        assert app.query_one("#model-summary", DataTable).row_count == 1
        assert "192 parameters" in text_of(app, "#model-totals")
        pane.show_summary(p.ModelDescribed(2, None, error="train.loss: 'mse' treats class labels…"))
        await pilot.pause()
        assert app.query_one("#model-summary", DataTable).row_count == 0
        assert "can't build the model" in text_of(app, "#model-totals")


SECTIONS = [
    (DatasetPane, "data", DataConfig(source="csv", path="data/x.csv", target="y", columns=["a", "b"],
                                     val_fraction=0.25, shuffle=False, noise=0.0)),
    (ModelPane, "model", ModelConfig(layers=[LayerConfig(32, "leaky_relu", 0.2, 0.1, "batch"), LayerConfig(8)],
                                     init="uniform", init_a=-0.5, init_b=0.5, seed=3)),
    (HparamsPane, "train", TrainConfig(lr=0.05, betas=[0.8, 0.95], eps=1e-6, milestones=[3, 7], scheduler="multistep",
                                       early_stop_metric="accuracy", deterministic=True, loss="cross_entropy")),
    (DevicePane, "device", DeviceConfig(device="cuda:1", precision="bf16", compile=True, threads=4)),
]


@pytest.mark.parametrize(("pane_cls", "section", "config"), SECTIONS, ids=[s for _, s, _ in SECTIONS])
async def test_set_values_round_trips_without_change_messages(pane_cls, section, config):
    app = PaneApp(pane_cls())
    async with app.run_test(size=(80, 40)) as pilot:
        app.pane.set_values(config)
        await pilot.pause()
        assert app.pane.value() == to_plain(config)
        assert getattr(from_dict({section: app.pane.value()}), section) == config
        assert app.changes == []


async def test_device_pane_loading_then_devices():
    app = PaneApp(DevicePane())
    async with app.run_test(size=(80, 40)) as pilot:
        assert "loading torch…" in text_of(app, "#device-list")
        device = app.query_one("#device-device", Select)
        assert [value for _, value in device._options] == ["auto", "cpu"]
        app.pane.show_devices(p.DevicesListed(1, [
            {"kind": "cpu", "name": "cpu", "cores": 16, "threads": 8},
            {"kind": "cuda", "name": "cuda:0", "model": "NVIDIA H100", "memory_total": 80 * 2**30,
             "memory_free": 79 * 2**30, "memory_used": 2**30, "capability": "9.0", "bf16": True},
        ]))
        await pilot.pause()
        listing = text_of(app, "#device-list")
        assert "loading torch" not in listing
        assert "cuda:0: NVIDIA H100" in listing and "80.0 GiB total" in listing
        assert [value for _, value in device._options] == ["auto", "cpu", "cuda:0"]
        assert app.changes == []
        device.value = "cuda:0"
        await pilot.pause()
        assert app.pane.value()["device"] == "cuda:0"
        assert app.changes == [("device", "device.device")]
        app.pane.show_memory(512 * 2**20, 2**30)
        await pilot.pause()
        assert text_of(app, "#device-memory") == "this run: 512.0 MiB allocated · 1.0 GiB reserved"


@pytest.mark.parametrize(("pane_cls", "section", "config"), SECTIONS, ids=[s for _, s, _ in SECTIONS])
async def test_set_values_before_mount(pane_cls, section, config):
    pane = pane_cls()
    pane.set_values(config)
    app = PaneApp(pane)
    async with app.run_test(size=(80, 40)) as pilot:
        await pilot.pause()
        assert pane.value() == to_plain(config)
        assert app.changes == []


async def test_echoed_live_value_keeps_what_the_user_typed():
    app = PaneApp(HparamsPane())
    async with app.run_test(size=(80, 40)) as pilot:
        await replace_text(pilot, "#train-lr", "0.0100")
        app.pane.set_values(TrainConfig(lr=0.01))
        await pilot.pause()
        assert app.query_one("#train-lr", Input).value == "0.0100"
        # Nor does another value while they are in the field: an echo of an earlier keystroke's change turned
        # `5e-3` into `05-3`. What they typed waits for Enter (or escape, which forces the run's value back).
        app.pane.set_values(TrainConfig(lr=0.02))
        await pilot.pause()
        assert app.query_one("#train-lr", Input).value == "0.0100"
        app.pane.set_values(TrainConfig(lr=0.02), force=True)
        await pilot.pause()
        assert app.query_one("#train-lr", Input).value == "0.02"


async def test_model_pane_without_layers_says_so_and_can_add_one():
    app = PaneApp(ModelPane())
    async with app.run_test(size=(80, 40)) as pilot:
        app.pane.set_values(ModelConfig(layers=[]))
        await pilot.pause()
        assert app.pane.value()["layers"] == []
        assert app.query_one("#model-layers-empty").display
        app.pane.add_layer()
        await pilot.pause()
        assert app.pane.value()["layers"] == [to_plain(LayerConfig())]
        assert not app.query_one("#model-layers-empty").display


# --- real data and architectures (issue: CSV, IDX, images, CNN, RNN, custom modules) -------------------


async def test_dataset_pane_shows_the_fields_of_file_sources():
    app = PaneApp(DatasetPane())
    async with app.run_test(size=(80, 60)) as pilot:
        assert not app.query_one("#data-path-field").display and not app.query_one("#data-flip-field").display
        app.query_one("#data-source", Select).value = "idx"
        await pilot.pause()
        assert app.query_one("#data-path-field").display and app.query_one("#data-flip-field").display
        assert not app.query_one("#data-n_samples-field").display and not app.query_one("#data-kwargs-field").display
        app.query_one("#data-source", Select).value = "code"
        await pilot.pause()
        assert app.query_one("#data-kwargs-field").display and app.query_one("#data-stream-field").display
        await replace_text(pilot, "#data-kwargs", "{n: 50, shift: 0.5}")
        assert app.pane.value()["kwargs"] == {"n": 50, "shift": 0.5}


async def test_dataset_pane_previews_images_and_class_counts():
    app = PaneApp(DatasetPane())
    async with app.run_test(size=(80, 60)) as pilot:
        image = [[[(r + c) / 14 for c in range(8)] for r in range(8)]]
        app.pane.show_preview(p.DataPreviewed(1, task="multiclass", sizes={"train": 1258, "val": 359, "test": 180},
                                              class_names=[str(i) for i in range(10)], input_shape=[1, 8, 8],
                                              images=[image] * 3, image_labels=[3, 1, 4], class_counts=[120] * 10))
        await pilot.pause()
        assert "(multiclass, each sample 1×8×8)" in text_of(app, "#data-sizes")
        strip = app.query_one("#data-images")
        assert strip.display and "▀" in str(strip.content) and "3" in str(strip.content)
        app.pane.show_preview(p.DataPreviewed(2, error="data.path: no folder '/x'"))
        await pilot.pause()
        assert not strip.display and "no folder" in text_of(app, "#data-sizes")


async def test_model_pane_kinds_show_their_settings_and_conv_blocks():
    app = PaneApp(ModelPane())
    async with app.run_test(size=(80, 80)) as pilot:
        assert not app.query_one("#model-conv-list").display and not app.query_one("#model-cell-field").display
        app.query_one("#model-kind", Select).value = "cnn"
        await pilot.pause()
        assert app.query_one("#model-conv-list").display
        assert [b["channels"] for b in app.pane.value()["conv"]] == [32, 64]
        await replace_text(pilot, "#model-conv-1-channels", "48")
        app.query_one("#model-conv-0-pool", Select).value = "none"
        await pilot.pause()
        assert [b["channels"] for b in app.pane.value()["conv"]] == [32, 48]
        assert not app.query_one("#model-conv-0-pool_size").display
        assert ("model", "model.conv[1].channels") in app.changes
        app.pane.conv_list.add()
        await pilot.pause()
        assert len(app.pane.value()["conv"]) == 3
        app.pane.show_problems(["model.conv[2]: the image (8×8) shrinks to nothing at this block"])
        await pilot.pause()
        assert "shrinks to nothing" in text_of(app, "#model-conv-2-error")
        app.query_one("#model-kind", Select).value = "rnn"
        await pilot.pause()
        assert not app.query_one("#model-conv-list").display and app.query_one("#model-cell-field").display
        assert "recurrent" in str(app.pane.layer_list._title.content)
        app.query_one("#model-kind", Select).value = "custom"
        await pilot.pause()
        assert app.query_one("#model-module-field").display and not app.query_one("#model-layers-list").display


async def test_model_pane_round_trips_a_cnn_with_fine_tuning():
    config = from_dict({"data": {"source": "digits"}, "model": {
        "kind": "cnn", "conv": [{"channels": 8, "norm": "batch"}, {"channels": 16, "pool": "avg"}], "layers": [32],
        "pretrained": "/w/pre.pt", "strict": False, "replace_head": True, "freeze": ["conv1.*"]}}).model
    app = PaneApp(ModelPane())
    async with app.run_test(size=(80, 80)) as pilot:
        app.pane.set_values(config)
        await pilot.pause()
        assert app.pane.value() == to_plain(config) and app.changes == []
        assert app.query_one("#model-strict-field").display

