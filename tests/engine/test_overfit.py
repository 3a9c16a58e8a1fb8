"""train.overfit_batches: the overfit-one-batch check (issue 13 item 1)."""

import pytest

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.host import InProcessHost
from torchtui.engine.presets import load
from torchtui.engine.schema import ConfigError

from .helpers import of, run_to_end


def test_spiral_memorises_one_batch(tmp_path):
    config = load("spiral").to_dict()
    config["train"].update(overfit_batches=1, epochs=150)
    host = InProcessHost(str(tmp_path / "runs"))
    try:
        events, done = run_to_end(host, config)
    finally:
        host.close()
    assert done is not None and done.state == p.FINISHED
    batch = config["train"]["batch_size"]
    assert of(events, p.RunStarted)[0].splits == {"train": batch, "val": batch, "test": 0}
    train_losses = [loss for e in of(events, p.StepStats) for loss in e.loss]
    assert train_losses[-1] < 0.05 < train_losses[0], (train_losses[0], train_losses[-1])
    assert done.summary["val"]["loss"] < 0.05 and done.summary["val"]["accuracy"] == 1.0


def test_the_same_batches_come_every_epoch_without_augmentation(tmp_path):
    from torchtui.engine.data.splits import load_data

    splits = load_data(from_dict({"data": {"source": "digits", "flip": True, "crop": 2}}).data)
    small = splits.overfit(40)
    assert len(small.train) == 40 and small.x_val is small.x_train and len(small.test) == 0
    assert not small.flip and not small.crop


def test_negative_overfit_batches_is_refused():
    with pytest.raises(ConfigError) as err:
        from_dict({"train": {"overfit_batches": -1}})
    assert "train.overfit_batches" in str(err.value)
