"""Config validation, overrides and preset round-trips."""

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from torchtui.engine import presets
from torchtui.engine.config import ExperimentConfig, TrainConfig, from_dict, validate
from torchtui.engine.overrides import apply_overrides, parse_override
from torchtui.engine.schema import ConfigError, field_docs


def error_of(data) -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    return str(info.value)


def test_empty_preset_is_valid_and_every_field_has_a_default():
    assert from_dict({}) == ExperimentConfig()
    assert from_dict(None) == ExperimentConfig()


@pytest.mark.parametrize("data, message", [
    ({"train": {"lr": "abc"}}, "train.lr: must be a positive number, got 'abc'"),
    ({"train": {"lr": -0.1}}, "train.lr: must be a positive number, got -0.1"),
    ({"train": {"epochs": 2.5}}, "train.epochs: must be a non-negative whole number, got 2.5"),
    ({"model": {"layers": [64, {"activation": "relux"}]}},
     "model.layers[1].activation: unknown 'relux' (did you mean 'relu'?)"),
    ({"trian": {}}, "trian: unknown key (did you mean 'train'?)"),
    ({"train": {"learning_rate": 0.1}}, "train.learning_rate: unknown key"),
    ({"data": {"val_fraction": 0.6, "test_fraction": 0.5}}, "data.val_fraction: val_fraction + test_fraction"),
    ({"data": {"source": "code", "path": "make.py"}}, "data.path: expected path/to/file.py:function, got 'make.py'"),
    ({"device": {"device": "cdua"}}, "device.device: unknown 'cdua' (did you mean 'cuda'?)"),
    ({"train": {"shuffle": True}}, "train.shuffle: unknown key"),
    ({"data": {"shuffle": "yes"}}, "data.shuffle: must be true or false, got 'yes'"),
    ({"model": {"layers": 64}}, "model.layers: must be a list, got 64"),
    ({"schema": 2}, "schema: version 2 is not supported"),
    ({"train": {"betas": [0.9]}}, "train.betas: must be two numbers"),
])
def test_errors_name_path_value_and_fix(data, message):
    assert message in error_of(data)


def test_loss_must_fit_the_task():
    msg = error_of({"data": {"source": "line"}, "train": {"loss": "cross_entropy"}})
    assert msg.startswith("train.loss: 'cross_entropy' needs class labels") and "regression" in msg
    msg = error_of({"data": {"source": "moons"}, "train": {"loss": "mse"}})
    assert msg.startswith("train.loss: 'mse' treats class labels as numbers")
    assert "bce_with_logits" in error_of({"data": {"source": "spiral"}, "train": {"loss": "bce_with_logits"}})
    from_dict({"data": {"source": "moons"}, "train": {"loss": "bce_with_logits"}})


def test_every_problem_is_reported_not_just_the_first():
    err = pytest.raises(ConfigError, from_dict, {"train": {"lr": 0, "epochs": -1}, "model": {"init": "x"}}).value
    assert len(err.problems) == 3 and "(and 2 more)" in err.first_line


def test_overrides_parse_values_as_yaml():
    data = apply_overrides({"train": {"lr": 0.1}}, ["train.lr=0.01", "model.layers=[64, 64]", "data.shuffle=false"])
    cfg = from_dict(data)
    assert cfg.train.lr == 0.01 and [layer.units for layer in cfg.model.layers] == [64, 64] and \
        cfg.data.shuffle is False
    assert from_dict(apply_overrides({}, ["train.lr=1e-3"])).train.lr == 0.001  # YAML 1.1 reads 1e-3 as text


@pytest.mark.parametrize("text, fragment", [
    ("train.lr", "expected KEY=VALUE"), ("=3", "expected KEY=VALUE"), ("train..lr=1", "expected KEY=VALUE"),
    ("model.layers=[64,", "not valid YAML"),
])
def test_bad_overrides(text, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")):
        apply_overrides({}, [text])


def test_override_into_a_value_is_an_error():
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"train": {"lr": 0.1}}, ["train.lr.x=1"])


def test_fields_have_docstrings():
    for cls in (TrainConfig,):
        docs = field_docs(cls)
        assert docs["lr"].startswith("Learning rate")
        import dataclasses
        assert {f.name for f in dataclasses.fields(cls)} <= set(docs)


@pytest.mark.parametrize("info", presets.list_presets(), ids=lambda i: i.name)
def test_builtin_presets_round_trip(info):
    cfg = presets.load(str(info.path))
    assert info.description and cfg.description == info.description
    dumped = cfg.to_yaml()
    assert from_dict(yaml.safe_load(dumped)) == cfg
    assert yaml.safe_load(from_dict(yaml.safe_load(dumped)).to_yaml()) == yaml.safe_load(dumped)
    assert validate(cfg) == []


def test_preset_lookup_order_and_safe_save(tmp_path):
    cfg = presets.load("moons")
    with pytest.raises(ConfigError, match="built-in"):
        presets.save(cfg, "moons")
    path = presets.save(cfg, "mine")
    assert presets.find("mine") == (path, False)
    assert presets.load("mine") == cfg
    with pytest.raises(FileExistsError):
        presets.save(cfg, "mine")
    presets.save(from_dict({**cfg.to_dict(), "name": "changed"}), "mine", overwrite=True)
    assert presets.load("mine").name == "changed"
    # a user preset with a built-in's name shadows it; a path wins over both
    (presets.user_dir() / "line.yaml").write_text("name: shadow\n")
    assert presets.load("line").name == "shadow"
    assert presets.load(str(presets.builtin_dir() / "line.yaml")).name == "line"
    assert not list(presets.user_dir().glob(".*.tmp"))


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match="did you mean 'moons'"):
        presets.find("moon")


def test_bad_preset_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        presets.load(str(bad))
    bad.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        presets.load(str(bad))
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        presets.load(str(bad))
    bad.write_text("train:\n  lr: fast\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: train.lr: must be a positive number, got 'fast'"):
        presets.load(str(bad))


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=8), st.lists(st.integers(-3, 200), max_size=3))


@settings(max_examples=300, deadline=None)
@given(section=st.sampled_from(["data", "model", "train", "device"]), key=st.text(max_size=12) | st.sampled_from(
    ["lr", "epochs", "layers", "source", "batch_size", "device", "noise", "betas", "units", "init"]), value=LEAVES)
def test_any_value_validates_or_names_the_field(section, key, value):
    try:
        cfg = from_dict({section: {key: value}})
    except ConfigError as err:
        assert all(line.startswith(f"{section}") for line in err.problems), err.problems
    else:
        assert validate(cfg) == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_any_override_text_parses_or_raises_config_error(text):
    try:
        parse_override(text)
    except ConfigError:
        pass


def test_relative_paths_in_a_preset_are_relative_to_the_file(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "exp.yaml").write_text("data: {source: code, path: 'src/data.py:make'}\n"
                                     "model: {kind: custom, module: nets.py:Net, pretrained: ~/w.pt}\n")
    cfg = presets.load(str(folder / "exp.yaml"))
    assert cfg.data.path == f"{folder}/src/data.py:make" and cfg.model.module == f"{folder}/nets.py:Net"
    assert cfg.model.pretrained == "~/w.pt"  # home-relative stays as written
    # --set values are the user's own, relative to where they run torchtui
    assert presets.load(str(folder / "exp.yaml"), ["model.module=other.py:Net"]).model.module == "other.py:Net"


def test_kwargs_must_be_plain_values():
    assert from_dict({"model": {"kwargs": {"width": 3, "names": ["a"]}}}).model.kwargs == {"width": 3, "names": ["a"]}
    assert "model.kwargs: keys must be Python argument names" in error_of({"model": {"kwargs": {"not valid": 1}}})
    assert "model.kwargs: must be a mapping" in error_of({"model": {"kwargs": [1, 2]}})
    import datetime
    assert "date values are not allowed" in error_of({"data": {"kwargs": {"when": datetime.date(2024, 1, 1)}}})


def test_overrides_reach_into_lists():
    data = apply_overrides({"model": {"layers": [64, 64]}}, ["model.layers[1].activation=gelu"])
    assert from_dict(data).model.layers[1].activation == "gelu" and from_dict(data).model.layers[1].units == 64
    data = apply_overrides({}, ["model.layers[0].units=8", "model.conv[1].channels=12"])  # from the defaults
    cfg = from_dict(data).model
    assert [layer.units for layer in cfg.layers] == [8, 64] and [c.channels for c in cfg.conv] == [32, 12]
    assert "model.layers[1].activation: unknown 'relux'" in error_of(
        apply_overrides({}, ["model.layers[1].activation=relux"]))


@pytest.mark.parametrize("text, fragment", [
    ("model.layers[5].units=3", "index 5 is past the end (model.layers has 2 items)"),
    ("train.lr[0]=1", "'train.lr' is not a list"),
    ("model.layers.units=3", "'model.layers' is a list, not a section"),
    ("a[b]=1", "expected KEY=VALUE"),
])
def test_bad_list_overrides(text, fragment):
    with pytest.raises(ConfigError) as info:
        apply_overrides({"model": {"layers": [64, 64]}}, [text])
    assert fragment in str(info.value)


@pytest.mark.parametrize("text", ["guard: off", "guard: Off", "guard: no", "guard: false", "guard: 'off'"])
def test_an_unquoted_off_in_a_preset_is_the_word_not_a_boolean(tmp_path, text):
    """YAML 1.1 (PyYAML) reads an unquoted off, no or false as False: `guard: off`, the natural way to write it, was
    refused with 'train.guard: must be text, got False'; --set train.guard=off too."""
    assert yaml.safe_load(text)["guard"] in (False, "off")  # the reference: what PyYAML makes of the text
    path = tmp_path / "p.yaml"
    path.write_text(f"train:\n  {text}\n")
    assert presets.load(str(path)).train.guard == "off"
    assert presets.load("moons", ["train.guard=off"]).train.guard == "off"


def test_a_boolean_for_a_text_field_is_still_refused():
    """Only False for a choice that has off is read as the word; True there, and any boolean elsewhere, are not."""
    assert "train.guard: must be text, got True" in error_of({"train": {"guard": True}})
    assert "train.optimizer: must be text, got False" in error_of({"train": {"optimizer": False}})
