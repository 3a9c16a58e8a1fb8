"""Property-based: any value in any config field, and any --set text, validates or raises ConfigError naming
the field; never another exception, never a hang (hypothesis deadlines)."""

from __future__ import annotations

import dataclasses
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchtui.engine.config import ConvConfig, ExperimentConfig, LayerConfig, from_dict, validate
from torchtui.engine.overrides import apply_overrides
from torchtui.engine.schema import ConfigError

SECTIONS = {"data", "model", "train", "device"}
ITEMS = {"layers": LayerConfig, "conv": ConvConfig}


def leaf_paths() -> list[tuple[str, str]]:
    """(dotted path, field name) of every leaf field, list items' fields through index 0."""
    out = [(f.name, f.name) for f in dataclasses.fields(ExperimentConfig) if f.name not in SECTIONS]
    defaults = ExperimentConfig()
    for section in SECTIONS:
        cls = type(getattr(defaults, section))
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            item = ITEMS.get(f.name) if typing.get_origin(hint) is list else None
            if item is not None:
                out += [(f"{section}.{f.name}[0].{g.name}", g.name) for g in dataclasses.fields(item)]
            out.append((f"{section}.{f.name}", f.name))
    return out


PATHS = leaf_paths()
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70), st.floats(), st.floats(-1e6, 1e6),
    st.text(max_size=20), st.sampled_from(["", "auto", "relu", "cuda:7", "1e-3", "nan", "-inf", "moons", "csv",
                                           "x.py:f", "🙂", "0x10", "yes", "~"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=12)


def _set(data: dict, path: str, value) -> dict:
    section, _, rest = path.partition(".")
    if not rest:
        return {**data, section: value}
    key, _, item_field = rest.partition("[0].")
    if item_field:
        return {**data, section: {key: [{item_field: value}]}}
    return {**data, section: {key: value}}


def check(data: dict, path: str, name: str) -> None:
    try:
        cfg = from_dict(data)
    except ConfigError as err:
        section = path.split(".")[0]
        for problem in err.problems:
            where = problem.split(": ", 1)[0]
            assert where.startswith(section), (path, problem)
            assert name in problem or where.startswith(path.split("[")[0]), (path, problem)
    else:
        assert validate(cfg) == []


@settings(max_examples=1500, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(PATHS), value=VALUES)
def test_any_value_in_any_field_validates_or_names_the_field(field, value):
    path, name = field
    check(_set({}, path, value), path, name)


@settings(max_examples=300, deadline=2000)
@given(field=st.sampled_from(PATHS), value=VALUES)
def test_a_valid_config_stays_valid_or_names_the_field(field, value):
    """The same on top of a full, valid preset (cross-field checks see real neighbours)."""
    path, name = field
    base = ExperimentConfig().to_dict()
    section, _, rest = path.partition(".")
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    if not rest:
        data[section] = value
    elif "[0]." in rest:
        key, _, item_field = rest.partition("[0].")
        data[section][key] = [dict(data[section][key][0], **{item_field: value})] if data[section][key] else \
            [{item_field: value}]
    else:
        data[section][rest] = value
    check(data, path, name)


YAML_TEXT = st.one_of(st.text(max_size=30), st.sampled_from(
    ["[64, 64]", "{units: 8}", "[1,", "!!python/object:os.system", "&a [*a]", "1e400", ".nan", "-.inf", "'", "{",
     "[[[[[[]]]]]]", "null", "~", "2024-01-01", "!!binary aGVsbG8=", "0b101", "yes", "- 1\n- 2"]))


@settings(max_examples=1000, deadline=2000)
@given(key=st.one_of(st.sampled_from([p for p, _ in PATHS]), st.text(max_size=30)), value=YAML_TEXT)
def test_any_set_text_validates_or_raises_config_error(key, value):
    try:
        data = apply_overrides({}, [f"{key}={value}"])
        from_dict(data)
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)
