"""A preset's `sweep:` section, validated: which fields to search, over what, for which metric.

Torch-free and Optuna-free (the app and the CLI validate with it); `sweep/study.py` runs it with Optuna.

    sweep:
      method: grid            # grid, random, tpe
      metric: accuracy        # a val metric or loss; loss, mse and mae are minimised, the others maximised
      trials: 10              # random/tpe: trials to finish; grid: at most this many points (default all)
      prune: none             # none, median, halving
      params:
        train.lr: [0.1, 0.01, 0.001]                 # a list: grid points, or choices
        train.momentum: {uniform: [0.85, 0.99]}
        train.weight_decay: {log_uniform: [1.0e-6, 1.0e-2]}
        model.layers[0].units: {choice: [32, 64, 128]}
        model.layers[0].dropout: {uniform: [0.0, 0.5], step: 0.1}
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field

from torchtui.engine.config import MAXIMISED, METRICS, from_dict
from torchtui.engine.overrides import apply_overrides
from torchtui.engine.schema import ConfigError, excerpt, suggest

METHODS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "halving")
KEYS = ("method", "metric", "trials", "prune", "params", "seed")
MAX_TRIALS = 100_000
SURPLUS = "torchtui:surplus"  # a trial's system attribute: no grid point was left for it (sweep/grid.py)
MAX_GRID = 100_000


@dataclass(frozen=True)
class Param:
    """One searched field: a list of `choices`, or a range (`low`, `high`, optional `step`, `log`)."""
    path: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    integer: bool = False  # the field is an int: sampled with suggest_int

    def grid(self) -> list | None:
        """The points a grid visits: the choices, or low..high by step; None for a continuous range."""
        if self.choices:
            return list(self.choices)
        if self.step is None:
            return None
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        points = [self.low + i * self.step for i in range(count)]
        return [int(round(v)) if self.integer else round(v, 12) for v in points]


@dataclass(frozen=True)
class SweepSpec:
    method: str = "random"
    metric: str = "loss"
    trials: int = 10
    prune: str = "none"
    seed: int = 0
    params: tuple = field(default_factory=tuple)  # of Param

    @property
    def direction(self) -> str:
        return "maximize" if self.metric in MAXIMISED else "minimize"

    def grid_points(self) -> list[dict]:
        """Every combination of the params' grid points, in order (method grid)."""
        names = [p.path for p in self.params]
        return [dict(zip(names, combo)) for combo in itertools.product(*(p.grid() for p in self.params))]

    def to_dict(self) -> dict:
        """The section as plain data, the way a preset writes it (sweep.yaml in the sweep folder)."""
        params = {}
        for p in self.params:
            if p.choices:
                params[p.path] = list(p.choices)
            else:
                spec = {"log_uniform" if p.log else "uniform": [p.low, p.high]}
                if p.step is not None:
                    spec["step"] = p.step
                params[p.path] = spec
        return {"method": self.method, "metric": self.metric, "trials": self.trials, "prune": self.prune,
                "seed": self.seed, "params": params}


def set_text(path: str, value) -> str:
    """A `--set` text for a value (JSON is YAML), so a sweep reaches exactly the fields --set reaches."""
    return f"{path}={json.dumps(value)}"


def apply(base: dict, params: dict) -> dict:
    """The base config (plain data) with each searched field set; raises ConfigError naming a bad path."""
    return apply_overrides(base, [set_text(k, v) for k, v in params.items()])


def parse(raw, base: dict, trials: int | None = None) -> SweepSpec:
    """The `sweep:` section validated against the preset's own config; every problem names its field
    (`sweep.params.train.lr: ...`) and the fix. `trials` (from --trials) replaces the section's."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(["sweep: must be a mapping (method, metric, trials, prune, params), "
                           f"got {type(raw).__name__}"])
    for key in raw:
        if key not in KEYS:
            problems.append(f"sweep.{key}: unknown key ({suggest(str(key), KEYS)})")
    method = _choice(raw.get("method", "random"), METHODS, "sweep.method", problems)
    metric = _choice(raw.get("metric", "loss"), METRICS, "sweep.metric", problems)
    prune = _choice(str(raw.get("prune", "none")).lower() if raw.get("prune") is not False else "none", PRUNERS,
                    "sweep.prune", problems)
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(f"sweep.seed: must be a whole number ≥ 0, got {seed!r}")
        seed = 0
    params = _params(raw.get("params"), base, problems)
    searched = raw.get("params") if isinstance(raw.get("params"), dict) else {}
    if (base.get("train") or {}).get("epochs") == 0 and "train.epochs" not in searched:
        problems.append("train.epochs: a sweep's trials must end, and 0 trains until stopped: set train.epochs")
    devices = str((base.get("device") or {}).get("devices", "1")).strip()
    if devices not in ("1", "") or "device.devices" in searched:
        problems.append(f"device.devices: a sweep trains each trial on one device ({devices!r} asked for); run "
                        "trials side by side with --parallel N instead")
    given = trials if trials is not None else raw.get("trials")
    if given is not None and (not isinstance(given, int) or isinstance(given, bool) or not 1 <= given <= MAX_TRIALS):
        where = "--trials" if trials is not None else "sweep.trials"
        problems.append(f"{where}: must be a whole number from 1 to {MAX_TRIALS:,}, got {given!r}")
        given = None
    spec = SweepSpec(method=method, metric=metric, trials=given or 10, prune=prune, seed=seed, params=tuple(params))
    if method == "grid" and params:
        continuous = [p.path for p in params if p.grid() is None]
        if continuous:
            problems.append(f"sweep.params.{continuous[0]}: a grid needs a list of points or a range with a step "
                            "(e.g. {uniform: [0.0, 0.5], step: 0.1}); or use method random or tpe")
        else:
            size = math.prod(len(p.grid()) for p in params)
            if size > MAX_GRID:
                problems.append(f"sweep.params: the grid has {size:,} points (limit {MAX_GRID:,}); use fewer points "
                                "or method random")
            else:
                spec = SweepSpec(method, metric, min(given or size, size), prune, seed, tuple(params))
    if problems:
        raise ConfigError(problems)
    return spec


def _choice(value, choices, where: str, problems: list[str]) -> str:
    if value in choices:
        return value
    problems.append(f"{where}: unknown '{value}' ({suggest(str(value), choices)}; one of {', '.join(choices)})")
    return choices[0]


def _params(raw, base: dict, problems: list[str]) -> list[Param]:
    if not isinstance(raw, dict) or not raw:
        problems.append("sweep.params: a mapping of fields to search, e.g. train.lr: [0.1, 0.01, 0.001]")
        return []
    out = []
    for path, spec in raw.items():
        where = f"sweep.params.{path}"
        param = _param(str(path), spec, where, problems)
        if param is None:
            continue
        # Every value the search can give must make a valid config: the choices, and a range's two ends.
        probes = list(param.choices) if param.choices else [param.low, param.high]
        for value in probes:
            try:
                from_dict(apply(base, {param.path: value}))
            except ConfigError as err:
                problems.append(f"{where}: {excerpt(value)} does not make a valid setup ({err.first_line})")
                break
        else:
            out.append(_typed(param, base))
    return out


def _param(path: str, spec, where: str, problems: list[str]) -> Param | None:
    if isinstance(spec, list):
        return _choices(path, spec, where, problems)
    if not isinstance(spec, dict):
        problems.append(f"{where}: a list of values, or {{choice: [...]}}, {{uniform: [low, high]}}, "
                        f"{{log_uniform: [low, high]}}; got {spec!r}")
        return None
    kinds = [k for k in ("choice", "uniform", "log_uniform") if k in spec]
    extra = [k for k in spec if k not in ("choice", "uniform", "log_uniform", "step")]
    if len(kinds) != 1 or extra:
        problems.append(f"{where}: give exactly one of choice, uniform, log_uniform (and step with uniform); "
                        f"got {', '.join(map(str, spec)) or 'nothing'}")
        return None
    kind = kinds[0]
    if kind == "choice":
        return _choices(path, spec["choice"], where, problems)
    bounds = spec[kind]
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)):
        problems.append(f"{where}: {kind} takes [low, high] (two finite numbers), got {bounds!r}")
        return None
    low, high = bounds
    if not low < high:
        problems.append(f"{where}: low must be below high, got [{low}, {high}]")
        return None
    if kind == "log_uniform" and low <= 0:
        problems.append(f"{where}: log_uniform needs low > 0 (a log scale), got {low}")
        return None
    step = spec.get("step")
    if step is not None:
        if kind == "log_uniform":
            problems.append(f"{where}: step works with uniform only (a log range has no even step)")
            return None
        if not isinstance(step, (int, float)) or isinstance(step, bool) or not 0 < step <= high - low:
            problems.append(f"{where}: step must be a number above 0 and at most high - low, got {step!r}")
            return None
    return Param(path, low=low, high=high, step=step, log=kind == "log_uniform")


def _choices(path: str, values, where: str, problems: list[str]) -> Param | None:
    if not isinstance(values, list) or not values:
        problems.append(f"{where}: a non-empty list of values, got {values!r}")
        return None
    if len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
        problems.append(f"{where}: a value is listed twice")
        return None
    if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
        problems.append(f"{where}: choices are single values (numbers, text, true/false), got {values!r}")
        return None
    return Param(path, choices=tuple(values))


def _typed(param: Param, base: dict) -> Param:
    """A range over an int field (layer units, batch size) is searched in whole numbers."""
    if param.choices:
        return param
    current = from_dict(apply(base, {param.path: param.low}))
    value = _lookup(current.to_dict(), param.path)
    if isinstance(value, int) and not isinstance(value, bool):
        return Param(param.path, low=int(math.ceil(param.low)), high=int(math.floor(param.high)),
                     step=int(param.step) if param.step else None, log=param.log, integer=True)
    return param


def _lookup(data, path: str):
    from torchtui.engine.overrides import parse_override

    keys, _ = parse_override(f"{path}=0")
    for key in keys:
        data = data[key]
    return data
