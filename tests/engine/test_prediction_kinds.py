"""The prediction view's data for what the grid and the curve do not fit: images, and regression on sequences."""

import pytest

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost

from .helpers import of, run_to_end


@pytest.fixture
def local(tmp_path):
    with InProcessHost(str(tmp_path / "runs")) as h:
        yield h


def preset(name: str, *overrides: str) -> dict:
    return presets.load(name, ["device.device=cpu", *overrides]).to_dict()


def test_view_kinds():
    from torchtui.engine.run.callbacks.predictions import view_kind

    assert view_kind("binary", (2,)) == "grid" and view_kind("regression", (1,)) == "curve"
    assert view_kind("multiclass", (1, 8, 8)) == "images" and view_kind("regression", (20, 1)) == "series"
    assert view_kind("regression", (4,)) == "series" and view_kind("multiclass", (4,)) is None  # iris: confusion only


def test_image_classification_sends_a_few_held_out_images_with_predicted_and_true_classes(local):
    events, done = run_to_end(local, preset("digits-cnn", "train.epochs=1"))
    assert done is not None
    pred = of(events, p.Predictions)[-1]
    assert pred.kind == "images" and len(pred.images) == len(pred.predicted) == len(pred.val_y) == 8
    channels, rows = len(pred.images[0]), len(pred.images[0][0])
    assert (channels, rows, len(pred.images[0][0][0])) == (1, 8, 8)
    assert all(0.0 <= v <= 1.0 for img in pred.images for ch in img for row in ch for v in row)
    assert all(isinstance(k, int) and 0 <= k < 10 for k in pred.predicted + pred.val_y)
    confusion = [e.confusion for e in of(events, p.EvalResult) if e.split == "val"][-1]
    assert len(confusion) == 10 and sum(map(sum, confusion)) > 0  # what the UI shows beside the images


def test_sequence_regression_sends_predicted_against_true_over_held_out_samples(local):
    events, done = run_to_end(local, preset("sine-lstm", "train.epochs=1", "data.n_samples=400"))
    assert done is not None
    pred = of(events, p.Predictions)[-1]
    assert pred.kind == "series" and pred.held_out == "val"
    assert len(pred.val_x) == len(pred.val_y) == len(pred.curve_y) > 10 and pred.val_x == sorted(pred.val_x)
    assert all(-3 < v < 3 for v in pred.val_y + pred.curve_y)  # in the data's units (a sine), not standardised


def test_without_a_val_split_epoch_ends_send_predictions_before_the_test_evaluation(local):
    line = {"data": {"source": "line", "shuffle": False, "val_fraction": 0.0}, "model": {"layers": []},
            "train": {"epochs": 3}, "device": {"device": "cpu"}}
    events, _ = run_to_end(local, line)
    sent = of(events, p.Predictions)
    assert len(sent) >= 2 and sent[0].epoch == 1 and sent[0].kind == "curve"  # live, not only at the end
    assert sent[-1].held_out == "test"
