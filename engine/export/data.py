"""The data sections of an exported script: one template per source family, then the split and standardising.

Each replicates the engine's reader exactly (engine/data/sources/, splits.py), so the script's train,
val and test tensors are the run's, sample for sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from torchtui.engine.export.parts import Part, fill, seed_expr, unsupported

# The defaults of fields another part of the engine adds for CSVs; any other value is refused for now.
CSV_DEFAULTS = {"missing": "error", "categorical": "auto"}

SYNTHETIC = {
    "line": ("Points on a straight line, y = weight·x + bias (the PyTorch workflow tutorial).", """
        def make_line(start, end, step, weight, bias, noise, gen):
            x = torch.arange(start, end, step, dtype=torch.float32).unsqueeze(1)
            y = weight * x + bias
            if noise > 0:
                y = y + noise * torch.randn(y.shape, generator=gen)
            return x, y
        """, "make_line(start, end, step, weight, bias, noise, gen)", ("start", "end", "step", "weight", "bias")),
    "moons": ("Two interleaving half-moons with Gaussian noise.", """
        def make_moons(n_samples, noise, gen):
            n_out = n_samples // 2
            n_in = n_samples - n_out
            outer = torch.linspace(0, math.pi, n_out)
            inner = torch.linspace(0, math.pi, n_in)
            x = torch.cat([
                torch.stack([outer.cos(), outer.sin()], 1),
                torch.stack([1 - inner.cos(), 0.5 - inner.sin()], 1),
            ])
            y = torch.cat([torch.zeros(n_out), torch.ones(n_in)]).long()
            return x + noise * torch.randn(x.shape, generator=gen), y
        """, "make_moons(n_samples, noise, gen)", ()),
    "circles": ("A ring around a smaller circle, with Gaussian noise.", """
        def make_circles(n_samples, noise, factor, gen):
            n_out = n_samples // 2
            n_in = n_samples - n_out
            # Angles stop short of 2π, as in scikit-learn, so the first and last points do not coincide.
            outer = torch.arange(n_out) * (2 * math.pi / max(n_out, 1))
            inner = torch.arange(n_in) * (2 * math.pi / max(n_in, 1))
            x = torch.cat([
                torch.stack([outer.cos(), outer.sin()], 1),
                factor * torch.stack([inner.cos(), inner.sin()], 1),
            ])
            y = torch.cat([torch.zeros(n_out), torch.ones(n_in)]).long()
            return x + noise * torch.randn(x.shape, generator=gen), y
        """, "make_circles(n_samples, noise, factor, gen)", ("factor",)),
    "xor": ("Points in the four quadrants, labelled by the sign of x0·x1.", """
        def make_xor(n_samples, noise, gen):
            x = torch.rand((n_samples, 2), generator=gen) * 2 - 1
            y = (x[:, 0] * x[:, 1] > 0).long()  # labels from the clean points: noise blurs the borders
            return x + noise * torch.randn(x.shape, generator=gen), y
        """, "make_xor(n_samples, noise, gen)", ()),
    "spiral": ("Spiral arms, one class each (CS231n's toy data).", """
        def make_spiral(n_samples, classes, noise, gen):
            xs, ys = [], []
            for j in range(classes):
                count = n_samples // classes + (1 if j < n_samples % classes else 0)
                r = torch.linspace(0.0, 1.0, count)
                theta = torch.linspace(j * 4.0, (j + 1) * 4.0, count) + noise * torch.randn(count, generator=gen)
                xs.append(torch.stack([r * theta.sin(), r * theta.cos()], 1))
                ys.append(torch.full((count,), j, dtype=torch.long))
            return torch.cat(xs), torch.cat(ys)
        """, "make_spiral(n_samples, classes, noise, gen)", ("classes",)),
    "blobs": ("Gaussian blobs around random centres, one class each.", """
        def make_blobs(n_samples, classes, features, noise, gen):
            centres = torch.rand((classes, features), generator=gen) * 20 - 10
            counts = torch.tensor([n_samples // classes + (1 if j < n_samples % classes else 0) for j in range(classes)])
            y = torch.repeat_interleave(torch.arange(classes), counts)
            x = centres[y] + (1.0 + noise) * torch.randn((n_samples, features), generator=gen)
            return x, y
        """, "make_blobs(n_samples, classes, features, noise, gen)", ("classes", "features")),  # noqa: E501
    "sine": ("Windows of a noisy sine wave; the target is the value after each window.", """
        def make_sine(n_samples, seq_len, noise, gen):
            phase = torch.rand((), generator=gen) * 2 * math.pi
            t = phase + 0.1 * torch.arange(n_samples + seq_len, dtype=torch.float32)
            series = t.sin() + noise * torch.randn(t.shape, generator=gen)
            x = series.unfold(0, seq_len, 1)[:n_samples].unsqueeze(-1).contiguous()  # (N, seq_len, 1)
            y = series[seq_len:seq_len + n_samples].unsqueeze(1)
            return x, y
        """, "make_sine(n_samples, seq_len, noise, gen)", ("seq_len",)),
}


@dataclass
class Facts:
    """What the engine made of the data, loaded at export time: the script hard-codes none of the samples."""

    task: str
    input_shape: tuple[int, ...]
    class_names: list[str]
    streamed: bool
    given: set[str]                 # the parts the source brought itself ("val", "test")
    scaled_targets: bool = False    # the engine scaled regression targets (a Splits field says so)
    n_classes: int = 0
    n_targets: int = 1
    sizes: dict = None              # samples in train, val and test


def load_facts(cfg) -> Facts:
    """Load the data the way a run does, remembering which parts the source brought."""
    from torchtui.engine.data import datasets as ds
    from torchtui.engine.data import sources
    from torchtui.engine.data import splits as sp
    from torchtui.engine.data.arrays import Arrays

    given: set[str] = set()
    if cfg.source in ("tensors", "code") and cfg.path.strip():
        result, _ = sources.read(cfg)
        if isinstance(result, Arrays):
            given = {name for name in ("val", "test") if getattr(result, name) is not None}
            splits = sp._from_arrays(result, [], cfg)
        else:
            given = {name for name, part in zip(("val", "test"), result[1:]) if part is not None}
            splits = sp._from_datasets(result, cfg, ds.memory_budget())
    else:
        splits = sp.load_data(cfg)
    scaled = splits.y_std is not None  # regression targets standardised on train (data.standardize_target)
    return Facts(splits.task, tuple(splits.input_shape), list(splits.class_names), splits.streamed, given, scaled,
                 splits.n_classes, splits.n_targets, splits.sizes())


def data_part(cfg, facts: Facts) -> Part:
    """The section that builds x_train … y_test on the CPU, as the run's data reader and split did."""
    check_data(cfg, facts)
    if cfg.source in SYNTHETIC:
        part = _synthetic(cfg)
    elif cfg.source in ("digits", "iris", "wine", "breast_cancer"):
        part = _bundled(cfg)
    elif cfg.source == "csv":
        part = _csv(cfg, facts)
    elif cfg.source == "tensors":
        part = _tensors(cfg, facts)
    elif cfg.source == "code":
        part = _code(cfg, facts)
    else:
        raise AssertionError(cfg.source)  # check_source refused it
    part.code += "\n" + _split(cfg, part.settings, facts.given)
    if cfg.standardize:
        part.code += "\n" + _standardize(len(facts.input_shape) + 1)
    return part


EXPORTED_SOURCES = (*SYNTHETIC, "digits", "iris", "wine", "breast_cancer", "csv", "tensors", "code")


def check_source(cfg) -> None:
    """Refuse a source the script cannot read, before any data is loaded."""
    if cfg.source not in EXPORTED_SOURCES:
        raise unsupported("data.source", cfg.source, f"export reads {', '.join(EXPORTED_SOURCES)}; "
                          "train this one with torchtui")
    if cfg.source == "csv" and Path(cfg.path).suffix.lower() in (".parquet", ".pq"):
        raise unsupported("data.path", cfg.path, "export reads CSV files, not Parquet; write the table as CSV "
                          "to export this run")


def check_data(cfg, facts) -> None:
    """Refuse what the script would not replicate, naming the field."""
    if facts.task == "tokens":  # its loop, loss and metrics are per sample; generation is not in it either
        raise unsupported("data.path", cfg.path, "export writes per-sample training, and this data is next-token "
                          "windows (logits (N, T, vocab) against (N, T) ids); train this one with torchtui")
    if cfg.stream or facts.streamed:
        raise unsupported("data.stream", True, "export holds the data in memory: set data.stream: false")
    if len(facts.input_shape) == 3 and (cfg.flip or cfg.crop):
        which = "data.flip" if cfg.flip else "data.crop"
        raise unsupported(which, getattr(cfg, which[5:]), "turn image augmentation off to export this run")
    for name, default in CSV_DEFAULTS.items():
        value = getattr(cfg, name, default)
        if cfg.source == "csv" and value != default:
            raise unsupported(f"data.{name}", value, f"export reads numeric CSV cells only: set data.{name}: {default}")
    scaled = getattr(cfg, "standardize_target", "never")
    if facts.task == "regression" and facts.scaled_targets:
        raise unsupported("data.standardize_target", scaled, "set data.standardize_target: never to export")


def _synthetic(cfg) -> Part:
    what, code, call, extra = SYNTHETIC[cfg.source]
    settings = [("data_seed", cfg.seed, "data.seed: generating and splitting")]
    if cfg.source != "line":
        settings.append(("n_samples", cfg.n_samples, ""))
    settings += [("noise", cfg.noise, "")] + [(name, getattr(cfg, name), "") for name in extra]
    gen = seed_expr("data_seed", cfg.seed)
    return Part(f"data: {what[0].lower()}{what[1:]}",
                fill(code) + f"\n\nx, y = {call.replace('gen)', f'torch.Generator().manual_seed({gen}))')}\n",
                settings, {"import math"} if "math." in code else set())


def _bundled(cfg) -> Part:
    load = f"bunch = datasets.load_{cfg.source}()  # shipped inside scikit-learn: nothing is downloaded\n"
    if cfg.source == "digits":
        load += "x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in 0–1\n"
    else:
        load += "x = torch.as_tensor(bunch.data, dtype=torch.float32)\n"
    load += "y = torch.as_tensor(bunch.target, dtype=torch.long)\n"
    if cfg.limit:
        load += "x, y = x[:limit], y[:limit]\n"
    settings = [("data_seed", cfg.seed, "data.seed: splitting")] + ([("limit", cfg.limit, "")] if cfg.limit else [])
    return Part(f"data: scikit-learn's {cfg.source} dataset", load, settings, {"from sklearn import datasets"})


def _csv(cfg, facts) -> Part:
    header, rows = _csv_rows(cfg.path)
    target = cfg.target or header[-1]
    drops = [c[1:].strip() for c in cfg.columns if c.startswith("-")]  # data.columns: ['-id'] drops a column
    features = [c for c in cfg.columns if not c.startswith("-")] or [
        name for name in header if name != target and name not in drops]
    for name in features:  # text or empty cells: the engine encodes or fills them, the script reads numbers
        column = header.index(name)
        if not all(_is_number(row[column]) for row in rows):
            raise unsupported("data.categorical", getattr(cfg, "categorical", "auto"), f"column '{name}' holds text "
                              "or missing cells; export reads numeric CSV columns only (drop it from data.columns)")
    code = fill("""
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
        header, rows = [name.strip() for name in rows[0]], rows[1:]
        x = torch.tensor([[float(row[header.index(name)]) for name in features] for row in rows], dtype=torch.float32)
        labels = [row[header.index(target)].strip() for row in rows]
        """)
    if facts.task == "regression":
        code += "y = torch.tensor([float(v) for v in labels], dtype=torch.float32).unsqueeze(1)\n"
    elif all(_is_int(name) for name in facts.class_names):
        code += ("classes = sorted({float(v) for v in labels})  # whole numbers: class k is the k-th smallest\n"
                 "y = torch.tensor([classes.index(float(v)) for v in labels])\n")
    else:
        code += ("classes = sorted(set(labels))  # text labels, sorted: class k is the k-th name\n"
                 "y = torch.tensor([classes.index(v) for v in labels])\n")
    if cfg.limit:
        code += "x, y = x[:limit], y[:limit]\n"
    settings = [("csv_path", str(Path(cfg.path).expanduser()), "data.path"), ("target", target, ""),
                ("features", features, ""), ("data_seed", cfg.seed, "data.seed: splitting")]
    settings += [("limit", cfg.limit, "")] if cfg.limit else []
    return Part(f"data: the CSV file, numeric columns as features, '{target}' as the target", code, settings,
                {"import csv"})


def _csv_rows(path: str) -> tuple[list[str], list[list[str]]]:
    import csv

    with open(Path(path).expanduser(), newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    return [name.strip() for name in rows[0]], rows[1:]


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


AS_TENSORS = """
    def as_tensors(x, y):
        \"\"\"Inputs as float32 (8-bit images scaled to 0–1, one channel added to H×W ones) and targets as given.\"\"\"
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if limit:
            x, y = x[:limit], y[:limit]
        if x.dim() == 1:
            x = x.unsqueeze(1)
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
            if x.dim() == 3:
                x = x.unsqueeze(1)
        return x.float().contiguous(), y
    """


def _tensors(cfg, facts) -> Part:
    from torchtui.engine.data.sources.files import X_KEYS, Y_KEYS, _load_mapping

    path = Path(cfg.path).expanduser()
    mapping = _load_mapping(path, cfg.path)
    lower = {str(k).lower(): k for k in mapping}
    keys = {}
    for suffix, part in (("", "train"), ("_val", "val"), ("_test", "test")):
        x = next((lower[k + suffix] for k in X_KEYS if k + suffix in lower), None)
        y = next((lower[k + suffix] for k in Y_KEYS if k + suffix in lower), None)
        if x is not None and y is not None:
            keys[part] = (x, y)
    if path.suffix == ".npz":
        code = "data = dict(np.load(tensors_path, allow_pickle=False))\n"
        imports = {"import numpy as np"}
    else:
        code = "data = torch.load(tensors_path, map_location=\"cpu\", weights_only=True)\n"
        imports = set()
        if set(mapping) == {"x", "y"}:
            code += ("if isinstance(data, (tuple, list)):  # a saved (X, y) pair\n"
                     "    data = {\"x\": data[0], \"y\": data[1]}\n")
    code += "\n" + fill(AS_TENSORS) + "\n\n"
    for part, (x, y) in keys.items():
        name = "x, y" if part == "train" else f"x_{part}, y_{part}"
        code += f"{name} = as_tensors(data[{x!r}], data[{y!r}])\n"
    code += _labels(facts, sorted(facts.given, reverse=True))
    settings = [("tensors_path", str(path), "data.path"), ("limit", cfg.limit, "data.limit: 0 = all"),
                ("data_seed", cfg.seed, "data.seed: splitting")]
    return Part("data: tensors read from a file", code, settings, imports)


def _labels(facts, given: list[str]) -> str:
    """Targets as the loop wants them: class labels as indices 0..k-1, values as (N, targets) floats."""
    ys = ", ".join(["y", *(f"y_{p}" for p in given)])
    if facts.task == "regression":
        lines = "".join(f"{y} = {y}.float().unsqueeze(1) if {y}.dim() == 1 else {y}.float().flatten(1)\n"
                        for y in ys.split(", "))
        return "\n# Float targets: regression, one column per target.\n" + lines
    out = "\n# Integer targets are class labels: the sorted distinct values become classes 0, 1, 2, …\n"
    out += f"values = torch.unique(torch.cat([{', '.join(f'{y}.long()' for y in ys.split(', '))}]))\n"
    out += "".join(f"{y} = torch.searchsorted(values, {y}.long())\n" for y in ys.split(", "))
    return out


def _code(cfg, facts) -> Part:
    from torchtui.engine.usercode import split_ref

    file, name = split_ref(cfg.path)
    path = Path(file).expanduser().resolve()
    code = fill("""
        def as_tensors(part):
            \"\"\"An (X, y) pair, or every (x, y) of a map-style Dataset stacked (inputs as float32).\"\"\"
            if isinstance(part, (tuple, list)) and len(part) == 2 and all(
                    isinstance(v, (torch.Tensor, np.ndarray)) for v in part):
                x, y = part
                if limit:
                    x, y = x[:limit], y[:limit]
                return torch.as_tensor(x).float(), torch.as_tensor(y)
            if limit:
                part = Subset(part, range(min(limit, len(part))))
            xs, ys = zip(*((torch.as_tensor(xb).float(), torch.as_tensor(yb))
                           for xb, yb in DataLoader(part, batch_size=512, shuffle=False)))
            return torch.cat(xs), torch.cat(ys)


        $fn = load_from_file(data_file, $name)
        parts = list($fn(**data_kwargs)) + [None]  # (train, val) or (train, val, test); None = cut from train
        x, y = as_tensors(parts[0])
        """, fn=name, name=repr(name))
    given = [p for p in ("val", "test") if p in facts.given]
    code += "".join(f"x_{p}, y_{p} = as_tensors(parts[{i}])\n" for i, p in ((1, "val"), (2, "test")) if p in given)
    code += _labels(facts, given)
    settings = [("data_file", str(path), "data.path"), ("data_kwargs", dict(cfg.kwargs), "data.kwargs"),
                ("limit", cfg.limit, "data.limit: 0 = all"), ("data_seed", cfg.seed, "data.seed: splitting")]
    imports = {"import numpy as np", "from torch.utils.data import DataLoader, Subset"}
    return Part(f"data: {name}() from {path.name}", code, settings, imports, {"load_from_file"})


def _split(cfg, settings, given: set[str]) -> str:
    """Shuffle once with the data seed (if asked), then the first samples train, the next val, the last test;
    a part the source brought itself is kept, and nothing is cut from train for it."""
    settings += [(f"{p}_fraction", getattr(cfg, f"{p}_fraction"), "") for p in ("val", "test") if p not in given]
    lines = ["# Split: the first samples train, the next val, the last test."]
    if cfg.shuffle:
        gen = seed_expr("data_seed", cfg.seed, "0x5EED")
        lines += [f"order = torch.randperm(len(x), generator=torch.Generator().manual_seed({gen}))",
                  "x, y = x[order], y[order]"]
    for p in ("val", "test"):
        lines.append(f"n_{p} = round(len(x) * {p}_fraction)" if p not in given
                     else f"n_{p} = 0  # the source brings its own {p} split")
    lines += ["n_train = len(x) - n_val - n_test", "x_train, y_train = x[:n_train], y[:n_train]"]
    if "val" not in given:
        lines.append("x_val, y_val = x[n_train:n_train + n_val], y[n_train:n_train + n_val]")
    if "test" not in given:
        lines.append("x_test, y_test = x[n_train + n_val:], y[n_train + n_val:]")
    return "\n".join(lines) + "\n"


def _standardize(dim: int) -> str:
    dims = {2: "0", 3: "(0, 1)", 4: "(0, 2, 3)"}.get(dim, "0")
    what = {3: "per feature over all steps", 4: "per channel"}.get(dim, "per feature")
    return fill("""
        # Standardise with the train split's mean and std ($what); val and test get train's scale.
        mean = x_train.mean($dims, keepdim=True)
        std = x_train.std($dims, unbiased=False, keepdim=True)
        std = torch.where(std > 1e-6, std, torch.ones_like(std))  # a constant feature keeps its scale
        x_train, x_val, x_test = (x_train - mean) / std, (x_val - mean) / std, (x_test - mean) / std
        """, dims=dims, what=what)
