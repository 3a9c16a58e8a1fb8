"""CNN and RNN builders, custom modules, torchvision models and fine-tuning (load, replace head, freeze)."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from torchtui.engine import protocol as p
from torchtui.engine.config import ModelConfig, from_dict
from torchtui.engine.errors import ModelError
from torchtui.engine.host import InProcessHost
from torchtui.engine.models.build import build_model, prepare_model
from torchtui.engine.models.rnn import recurrent_parameters
from torchtui.engine.models.summary import summarize
from torchtui.engine.run.checkpoint import load_checkpoint
from torchtui.engine.schema import parse_dataclass

from .helpers import of, run_to_end


def model_cfg(data: dict) -> ModelConfig:
    """A validated ModelConfig on its own (the data-dependent checks of a whole config aside)."""
    problems: list[str] = []
    cfg = parse_dataclass(ModelConfig, data, "model", problems)
    assert not problems, problems
    return cfg


def cnn(*conv, layers=(), **kw) -> ModelConfig:
    return model_cfg({"kind": "cnn", "conv": list(conv), "layers": list(layers), **kw})


# --- CNN -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (2, 9, 13)])
def test_cnn_infers_shapes_for_any_image_size(shape):
    cfg = cnn({"channels": 8}, {"channels": 16, "kernel": 5, "padding": 2, "norm": "batch"}, layers=[32])
    model = build_model(cfg, shape, 10)
    summary = summarize(model, shape)
    out = {row.name: row.output_shape for row in summary.rows}
    h, w = shape[1] // 2 // 2, shape[2] // 2 // 2
    assert out["conv2_pool"] == [-1, 16, h, w] and out["flatten"] == [-1, 16 * h * w] and out["head"] == [-1, 10]
    assert model(torch.zeros(3, *shape)).shape == (3, 10)
    expected = (8 * shape[0] * 9 + 8) + (16 * 8 * 25 + 16) + 2 * 16 + (16 * h * w * 32 + 32) + (32 * 10 + 10)
    assert summary.total == expected


def test_cnn_that_shrinks_the_image_away_names_the_block():
    cfg = cnn(8, 8, 8, 8)
    with pytest.raises(ModelError, match=r"model.conv\[3\]: the image \(8×8\) shrinks to nothing"):
        build_model(cfg, (1, 8, 8), 10)


def test_cnn_on_rows_of_features_is_refused_with_the_reason():
    with pytest.raises(ModelError, match="cnn needs images"):
        build_model(cnn(8), (2,), 2)
    with pytest.raises(Exception, match="model.kind: cnn needs images"):
        from_dict({"data": {"source": "moons"}, "model": {"kind": "cnn"}})


def test_mlp_flattens_images():
    model = build_model(ModelConfig(layers=[]), (1, 28, 28), 10)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == 7850


# --- RNN -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("shape", [(20, 1), (12,), (1, 8, 8), (5, 3)])
def test_rnn_shapes_and_parameter_counts(cell, bidirectional, shape):
    cfg = from_dict({"model": {"kind": "rnn", "cell": cell, "hidden_size": 6, "num_layers": 2,
                               "bidirectional": bidirectional, "layers": [4]}}).model
    model = build_model(cfg, shape, 3)
    assert model(torch.randn(5, *shape)).shape == (5, 3)
    width = 6 * (2 if bidirectional else 1)
    head = (width * 4 + 4) + (4 * 3 + 3)
    assert sum(p.numel() for p in model.parameters()) == recurrent_parameters(cfg, shape) + head


def test_rnn_pooling_last_sees_the_whole_sequence_both_ways():
    cfg = from_dict({"model": {"kind": "rnn", "cell": "gru", "hidden_size": 4, "bidirectional": True,
                               "layers": []}}).model
    model = build_model(cfg, (6, 1), 1).eval()
    x = torch.randn(1, 6, 1)
    changed_first, changed_last = x.clone(), x.clone()
    changed_first[0, 0] += 5
    changed_last[0, -1] += 5
    base = model(x)
    assert not torch.allclose(model(changed_first), base) and not torch.allclose(model(changed_last), base)


def test_rnn_dropout_needs_stacked_layers():
    with pytest.raises(Exception, match="model.rnn_dropout: applies between stacked layers"):
        from_dict({"model": {"kind": "rnn", "rnn_dropout": 0.2}})


# --- custom modules --------------------------------------------------------------------------------------


GOOD = """
    from torch import nn

    class Net(nn.Module):
        def __init__(self, in_features, num_classes, width=8):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(in_features, width), nn.ReLU())
            self.head = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.head(self.body(x))

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 5)

        def forward(self, x):
            return self.fc(x)

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x)

    class Picky(nn.Module):
        def __init__(self, depth):
            super().__init__()
            raise ValueError(f"depth {depth} is too deep")

    class Tuple(nn.Module):
        def forward(self, x):
            return x, x

    def not_a_module():
        return 42
"""


def custom(tmp_path, name: str, **kw) -> ModelConfig:
    path = tmp_path / "mymodel.py"
    path.write_text(textwrap.dedent(GOOD))
    return from_dict({"model": {"kind": "custom", "module": f"{path}:{name}", **kw}}).model


def test_custom_module_gets_sizes_by_name_and_kwargs(tmp_path):
    model, _ = prepare_model(custom(tmp_path, "Net", kwargs={"width": 5}), (2,), 3)
    assert model.body[0].in_features == 2 and model.body[0].out_features == 5 and model.head.out_features == 3


def test_custom_module_is_seeded(tmp_path):
    a = build_model(custom(tmp_path, "Net", seed=3), (2,), 3)
    b = build_model(custom(tmp_path, "Net", seed=3), (2,), 3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name, kwargs, needle", [
    ("Nope", {}, "has no 'Nope' (it defines: Net, Fixed, Broken, Picky, Tuple, not_a_module)"),
    ("Picky", {"depth": 9}, "Picky(...) raised ValueError at {path}:32: depth 9 is too deep"),
    ("Picky", {}, "Picky(...) raised TypeError"),
    ("Fixed", {}, "Fixed.forward ({path}:18) returns shape (2, 5) for input (2, 2); this data needs (2, 3)"),
    ("Broken", {}, "Broken.forward raised RuntimeError at {path}:27"),
    ("Tuple", {}, "Tuple.forward ({path}:35) returned a tuple"),
    ("not_a_module", {}, "not_a_module(...) returned a int, not an nn.Module"),
])
def test_custom_module_errors_name_the_file_and_line(tmp_path, name, kwargs, needle):
    cfg = custom(tmp_path, name, kwargs=kwargs)
    with pytest.raises(ModelError) as info:
        prepare_model(cfg, (2,), 3)
    path = tmp_path / "mymodel.py"
    assert str(info.value).startswith("model.module: ") and needle.format(path=path) in str(info.value)


def test_missing_module_file(tmp_path):
    cfg = from_dict({"model": {"kind": "custom", "module": f"{tmp_path}/gone.py:Net"}}).model
    with pytest.raises(ModelError, match="model.module: no such file"):
        prepare_model(cfg, (2,), 3)


def test_custom_module_error_reaches_the_engine_with_a_traceback(tmp_path):
    cfg = custom(tmp_path, "Broken")
    config = {"data": {"source": "moons", "n_samples": 64}, "model": {"kind": "custom", "module": cfg.module},
              "device": {"device": "cpu"}}
    with InProcessHost(str(tmp_path / "runs")) as host:
        events, done = run_to_end(host, config)
        assert done is None
        error = of(events, p.Error)[0]
        assert "Broken.forward raised RuntimeError" in error.message and "Traceback" in error.traceback
        _, ok = run_to_end(host, {"data": {"source": "moons", "n_samples": 64}, "train": {"epochs": 1},
                                  "device": {"device": "cpu"}})
        assert ok.state == p.FINISHED


# --- fine-tuning ----------------------------------------------------------------------------------------


def trained_state(tmp_path, n_classes=2):
    """A small MLP's weights saved as a plain state_dict (as a user would from another run)."""
    model = build_model(from_dict({"model": {"layers": [8, 8]}}).model, (2,), n_classes)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)  # distinguishable from any fresh init
    torch.save(model.state_dict(), tmp_path / "pre.pt")
    return model.state_dict(), str(tmp_path / "pre.pt")


def test_pretrained_weights_load_and_head_is_replaced(tmp_path):
    state, path = trained_state(tmp_path, n_classes=2)
    cfg = from_dict({"model": {"layers": [8, 8], "pretrained": path, "replace_head": True}}).model
    model, notes = prepare_model(cfg, (2,), 5)
    assert torch.equal(model.fc1.weight, state["fc1.weight"]) and torch.equal(model.fc2.bias, state["fc2.bias"])
    assert model.head.out_features == 5 and "loaded 4 of 6 tensors" in notes[0]


def test_strict_mismatch_lists_keys_and_shapes(tmp_path):
    _, path = trained_state(tmp_path)
    cfg = from_dict({"model": {"layers": [8, 16], "pretrained": path}}).model
    with pytest.raises(ModelError) as info:
        prepare_model(cfg, (2,), 3)
    message = str(info.value)
    assert message.startswith("model.pretrained: ") and "fc2.weight (8, 8) in the file vs (16, 8) here" in message
    assert "set model.strict: false" in message
    loose = from_dict({"model": {"layers": [8, 16], "pretrained": path, "strict": False}}).model
    model, notes = prepare_model(loose, (2,), 3)
    assert "not loaded (strict is off)" in notes[1] and "fc2.weight" in notes[1]


def test_pretrained_from_a_torchtui_checkpoint_and_bad_files(tmp_path):
    state, _ = trained_state(tmp_path)
    torch.save({"schema": 1, "model": state, "step": 3}, tmp_path / "last.pt")
    cfg = from_dict({"model": {"layers": [8, 8], "pretrained": str(tmp_path / "last.pt")}}).model
    model, _ = prepare_model(cfg, (2,), 2)
    assert torch.equal(model.head.weight, state["head.weight"])
    (tmp_path / "junk.pt").write_bytes(b"junk")
    for bad, needle in ((tmp_path / "junk.pt", "cannot load"), (tmp_path / "none.pt", "no such file")):
        with pytest.raises(ModelError, match=needle):
            prepare_model(from_dict({"model": {"pretrained": str(bad)}}).model, (2,), 2)


def test_freeze_by_pattern_and_first_n(tmp_path):
    cfg = from_dict({"model": {"layers": [8, 8], "freeze": ["fc1.*"], "freeze_first": 2}}).model
    model, notes = prepare_model(cfg, (2,), 2)
    frozen = {n for n, q in model.named_parameters() if not q.requires_grad}
    assert frozen == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"} and "4 tensors frozen" in notes[-1]


@pytest.mark.parametrize("model_cfg, needle", [
    ({"freeze": ["conv9.*"]}, "model.freeze: 'conv9.*' matches no parameter (names look like: fc1.weight"),
    ({"freeze": ["*"]}, "every parameter would be frozen"),
    ({"freeze_first": 9}, "model.freeze_first: the model has 3 layers with parameters, got 9"),
])
def test_freeze_mistakes_are_clear(model_cfg, needle):
    with pytest.raises(ModelError) as info:
        prepare_model(from_dict({"model": model_cfg}).model, (2,), 2)
    assert needle in str(info.value)


def test_frozen_weights_do_not_change_while_the_rest_trains(tmp_path):
    state, path = trained_state(tmp_path)
    config = {"data": {"source": "moons", "n_samples": 256}, "device": {"device": "cpu"},
              "model": {"layers": [8, 8], "pretrained": path, "replace_head": True, "freeze": ["fc1.*", "fc2.*"]},
              "train": {"epochs": 3, "lr": 0.05, "weight_decay": 0.1, "optimizer": "adamw"}}
    with InProcessHost(str(tmp_path / "runs")) as host:
        events, done = run_to_end(host, config)
    assert done.state == p.FINISHED
    started = of(events, p.RunStarted)[0]
    assert started.trainable == 8 + 1 and started.params == 2 * 8 + 8 + 8 * 8 + 8 + 8 + 1
    trained = load_checkpoint(tmp_path / "runs" / started.run_id / "checkpoints" / "last.pt")["model"]
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        assert torch.equal(trained[name], state[name]), name
    assert not torch.equal(trained["head.weight"], build_model(
        from_dict({"model": {"layers": [8, 8]}}).model, (2,), 1).head.weight)
    assert any("tensors frozen" in e.message for e in of(events, p.Log))


# --- torchvision models ------------------------------------------------------------------------------------


def test_torchvision_model_by_name_with_local_weights(tmp_path):
    tv = pytest.importorskip("torchvision")
    donor = tv.models.resnet18(weights=None, num_classes=7)
    torch.save(donor.state_dict(), tmp_path / "r18.pt")
    cfg = from_dict({"model": {"kind": "torchvision", "arch": "resnet18", "pretrained": str(tmp_path / "r18.pt"),
                               "replace_head": True, "freeze": ["conv1.*", "layer1.*"]}}).model
    model, _ = prepare_model(cfg, (3, 32, 32), 10)
    assert model.fc.out_features == 10 and torch.equal(model.conv1.weight, donor.conv1.weight)
    assert not model.layer1[0].conv1.weight.requires_grad and model.layer4[0].conv1.weight.requires_grad


def test_torchvision_unknown_name_and_download_refused():
    pytest.importorskip("torchvision")
    with pytest.raises(ModelError, match="did you mean 'resnet18'"):
        prepare_model(from_dict({"model": {"kind": "torchvision", "arch": "resnt18"}}).model, (3, 32, 32), 10)
    with pytest.raises(ModelError, match="never downloads"):
        prepare_model(from_dict({"model": {"kind": "torchvision", "arch": "resnet18",
                                           "kwargs": {"weights": "DEFAULT"}}}).model, (3, 32, 32), 10)


def test_head_of_nested_models_is_found():
    from torchtui.engine.models.finetune import head_name, replace_head

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)))
    assert head_name(model) == "2.2"
    replace_head(model, 9)
    assert model[2][2].out_features == 9 and model[2][2].in_features == 4
