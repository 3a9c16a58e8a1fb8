"""Tests for engine.models: layer names, init schemes, RNG isolation, parameter groups and the summary."""

import json
import math

import pytest
import torch
from torch import nn

from torchtui.engine.config import ACTIVATIONS, INITS, NORMS, LayerConfig, ModelConfig
from torchtui.engine.models.build import activation_modules, build_model, output_size, param_groups_by_layer
from torchtui.engine.models.summary import LayerRow, ModelSummary, format_summary, summarize


def mlp(*layers, **model) -> ModelConfig:
    """A ModelConfig whose hidden layers are LayerConfigs built from dicts or unit counts."""
    built = [LayerConfig(units=x) if isinstance(x, int) else LayerConfig(**x) for x in layers]
    return ModelConfig(layers=built, **model)


def linear_weights(model) -> list[torch.Tensor]:
    return [m.weight.detach().clone() for m in model if isinstance(m, nn.Linear)]


# --- output_size ----------------------------------------------------------------------------------

@pytest.mark.parametrize("task, loss, expected", [
    ("binary", "bce_with_logits", 1),
    ("binary", "cross_entropy", 2),
    ("multiclass", "cross_entropy", 5),
    ("multiclass", "nll", 5),
    ("regression", "mse", 3),
    ("regression", "huber", 3),
])
def test_output_size(task, loss, expected):
    n_classes = 2 if task == "binary" else 5
    assert output_size(task, n_classes, 3, loss) == expected


# --- structure ------------------------------------------------------------------------------------

def test_names_in_order_with_every_part():
    cfg = mlp({"units": 8, "norm": "batch", "dropout": 0.5}, {"units": 4, "activation": "tanh"})
    model = build_model(cfg, 3, 2)
    assert isinstance(model, nn.Sequential)
    assert [n for n, _ in model.named_children()] == ["fc1", "norm1", "act1", "drop1", "fc2", "act2", "head"]
    assert isinstance(model.norm1, nn.BatchNorm1d) and isinstance(model.act2, nn.Tanh)
    assert model.fc1.in_features == 3 and model.fc2.in_features == 8 and model.head.out_features == 2


def test_no_hidden_layers_is_one_linear():
    model = build_model(ModelConfig(layers=[]), 5, 3)
    assert [n for n, _ in model.named_children()] == ["head"]
    assert isinstance(model.head, nn.Linear) and (model.head.in_features, model.head.out_features) == (5, 3)


def test_dropout_only_when_positive():
    model = build_model(mlp({"units": 4, "dropout": 0.0}, {"units": 4, "dropout": 0.25}), 2, 1)
    names = [n for n, _ in model.named_children()]
    assert "drop1" not in names and "drop2" in names
    assert model.drop2.p == 0.25


def test_activation_none_has_no_act_module():
    model = build_model(mlp({"units": 4, "activation": "none"}), 2, 1)
    assert [n for n, _ in model.named_children()] == ["fc1", "head"]


def test_leaky_relu_slope():
    model = build_model(mlp({"units": 4, "activation": "leaky_relu", "negative_slope": 0.2}), 2, 1)
    assert isinstance(model.act1, nn.LeakyReLU) and model.act1.negative_slope == 0.2


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_and_norm_trains_a_step(activation, norm):
    cfg = mlp({"units": 6, "activation": activation, "norm": norm, "dropout": 0.1}, 5)
    model = build_model(cfg, 3, 2)
    out = model(torch.randn(4, 3))
    assert out.shape == (4, 2)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_kind_names_the_field():
    with pytest.raises(ValueError, match="model.kind"):
        build_model(ModelConfig(kind="cnn"), 2, 1)


# --- initialisation -------------------------------------------------------------------------------

@pytest.mark.parametrize("init", INITS)
def test_same_seed_same_weights_different_seed_different(init):
    cfg = mlp(16, {"units": 8, "activation": "tanh"}, init=init, seed=3)
    a, b = linear_weights(build_model(cfg, 4, 2)), linear_weights(build_model(cfg, 4, 2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    other = linear_weights(build_model(mlp(16, {"units": 8, "activation": "tanh"}, init=init, seed=4), 4, 2))
    # every scheme here draws at random, so a new seed changes every weight matrix
    assert all(not torch.equal(x, y) for x, y in zip(a, other))


@pytest.mark.parametrize("init", INITS)
def test_building_leaves_global_rng_alone(init):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    build_model(mlp(32, 32, init=init, seed=9), 8, 3)
    assert torch.equal(torch.get_rng_state(), before)


def test_default_init_is_pytorch_init_seeded():
    model = build_model(mlp(16, init="default", seed=5), 4, 2)
    torch.manual_seed(5)
    fc1 = nn.Linear(4, 16)
    assert torch.equal(model.fc1.weight, fc1.weight) and torch.equal(model.fc1.bias, fc1.bias)
    assert model.fc1.bias.abs().sum() > 0


@pytest.mark.parametrize("init", [i for i in INITS if i != "default"])
def test_non_default_schemes_zero_biases(init):
    model = build_model(mlp(16, 16, init=init), 4, 2)
    assert all(torch.count_nonzero(m.bias) == 0 for m in model if isinstance(m, nn.Linear))


def test_uniform_init_within_bounds():
    model = build_model(mlp(64, init="uniform", init_a=-0.3, init_b=0.05), 32, 4)
    for w in linear_weights(model):
        assert w.min() >= -0.3 and w.max() <= 0.05
    assert model.fc1.weight.min() < -0.25 and model.fc1.weight.max() > 0.0


def test_normal_init_std_on_a_big_layer():
    model = build_model(mlp(512, init="normal", init_std=0.05), 512, 1)
    w = model.fc1.weight
    assert abs(w.std().item() - 0.05) < 0.002
    assert abs(w.mean().item()) < 0.002


def test_xavier_uniform_bound_uses_activation_gain():
    model = build_model(mlp({"units": 200, "activation": "tanh"}, init="xavier_uniform"), 100, 10)
    bound = (5 / 3) * math.sqrt(6 / (100 + 200))
    w = model.fc1.weight
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    # the head feeds the loss directly: plain Glorot (gain 1)
    head_bound = math.sqrt(6 / (200 + 10))
    assert model.head.weight.abs().max() <= head_bound


def test_xavier_normal_std():
    model = build_model(mlp({"units": 400, "activation": "sigmoid"}, init="xavier_normal"), 400, 1)
    assert model.fc1.weight.std().item() == pytest.approx(math.sqrt(2 / 800), rel=0.05)


def test_kaiming_uniform_bound_for_relu_and_leaky_relu():
    cfg = mlp({"units": 300}, {"units": 300, "activation": "leaky_relu", "negative_slope": 0.2},
              init="kaiming_uniform")
    model = build_model(cfg, 150, 2)
    relu_bound = math.sqrt(2) * math.sqrt(3 / 150)
    leaky_bound = math.sqrt(2 / (1 + 0.2 ** 2)) * math.sqrt(3 / 300)
    assert relu_bound * 0.95 < model.fc1.weight.abs().max() <= relu_bound
    assert leaky_bound * 0.95 < model.fc2.weight.abs().max() <= leaky_bound


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
def test_kaiming_normal_std_uses_relu_gain_where_torch_has_none(activation):
    model = build_model(mlp({"units": 500, "activation": activation}, init="kaiming_normal"), 400, 1)
    assert model.fc1.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.05)


# --- groups and activations -----------------------------------------------------------------------

def test_param_groups_by_layer():
    model = build_model(mlp({"units": 8, "norm": "batch"}, {"units": 4, "dropout": 0.2}), 3, 2)
    names, groups = param_groups_by_layer(model)
    assert names == ["fc1", "norm1", "fc2", "head"]
    assert [[id(p) for p in g] for g in groups] == [
        [id(model.fc1.weight), id(model.fc1.bias)], [id(model.norm1.weight), id(model.norm1.bias)],
        [id(model.fc2.weight), id(model.fc2.bias)], [id(model.head.weight), id(model.head.bias)],
    ]


def test_param_groups_skip_frozen_params():
    model = build_model(mlp(8, 4), 3, 2)
    model.fc1.requires_grad_(False)
    model.fc2.bias.requires_grad_(False)
    names, groups = param_groups_by_layer(model)
    assert names == ["fc2", "head"]
    assert groups[0] == [model.fc2.weight]


def test_activation_modules_are_relu_like_only():
    cfg = mlp(8, {"units": 8, "activation": "leaky_relu"}, {"units": 8, "activation": "gelu"},
              {"units": 8, "activation": "tanh"})
    acts = activation_modules(build_model(cfg, 2, 1))
    assert list(acts) == ["act1", "act2"]
    assert isinstance(acts["act1"], nn.ReLU) and isinstance(acts["act2"], nn.LeakyReLU)


# --- summary --------------------------------------------------------------------------------------

def test_summary_of_the_mnist_mlp():
    summary = summarize(build_model(mlp(128), 784, 10), 784)
    assert summary.total == summary.trainable == 101_770
    assert [(r.name, r.type, r.output_shape, r.params) for r in summary.rows] == [
        ("fc1", "Linear", [-1, 128], 100_480), ("act1", "ReLU", [-1, 128], 0), ("head", "Linear", [-1, 10], 1_290),
    ]
    assert summary.input_shape == [-1, 784]
    text = format_summary(summary)
    assert "Total params: 101,770" in text
    assert "Trainable params: 101,770" in text and "Non-trainable params: 0" in text
    assert "(N, 128)" in text


def test_summary_of_the_small_linear_stack():
    summary = summarize(build_model(mlp({"units": 4, "activation": "none"}), 8, 2), 8)
    assert summary.total == 46
    assert [r.name for r in summary.rows] == ["fc1", "head"]
    assert "Total params: 46" in format_summary(summary)


def test_summary_shapes_with_norm_layers_and_mode_restored():
    model = build_model(mlp({"units": 6, "norm": "batch", "dropout": 0.3}, {"units": 5, "norm": "layer"}), 3, 2)
    running_mean = model.norm1.running_mean.clone()
    model.train()
    summary = summarize(model, 3)
    shapes = {r.name: r.output_shape for r in summary.rows}
    assert shapes == {"fc1": [-1, 6], "norm1": [-1, 6], "act1": [-1, 6], "drop1": [-1, 6],
                      "fc2": [-1, 5], "norm2": [-1, 5], "act2": [-1, 5], "head": [-1, 2]}
    rows = {r.name: r for r in summary.rows}
    assert rows["norm1"].params == 12 and rows["norm2"].params == 10
    assert model.training
    assert torch.equal(model.norm1.running_mean, running_mean)  # the dummy batch left no trace
    # BatchNorm's running statistics are buffers, not parameters
    assert summary.total == sum(p.numel() for p in model.parameters())

    model.eval()
    summarize(model, 3)
    assert not model.training


def test_summary_counts_frozen_params():
    model = build_model(mlp(128), 784, 10)
    model.fc1.requires_grad_(False)
    summary = summarize(model, 784)
    assert (summary.total, summary.trainable) == (101_770, 1_290)
    assert summary.rows[0].trainable == 0
    text = format_summary(summary)
    assert "Trainable params: 1,290" in text and "Non-trainable params: 100,480" in text


def test_summary_to_dict_is_plain_json():
    summary = summarize(build_model(mlp(4), 2, 1), 2)
    data = summary.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["rows"][0] == {"name": "fc1", "type": "Linear", "output_shape": [-1, 4], "params": 12, "trainable": 12}
    assert isinstance(summary.rows[0], LayerRow) and isinstance(summary, ModelSummary)


def test_format_summary_has_the_columns():
    text = format_summary(summarize(build_model(mlp(4), 2, 1), 2))
    header = text.splitlines()[1]
    for column in ("Layer", "Type", "Output shape", "Params", "Trainable"):
        assert column in header
