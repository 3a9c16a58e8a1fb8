"""Predictions from a trained run: its config and checkpoint (weights-only), the same preprocessing, new inputs
(CSV, .npz/.pt, an IDX folder or an image folder) under inference_mode, and a CSV of the answers."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from torchtui.engine.config import from_dict
from torchtui.engine.data import tabular
from torchtui.engine.data.sources import csvfile, files
from torchtui.engine.errors import DataError
from torchtui.engine.models import build as models
from torchtui.engine.models.tokens import TokenInput
from torchtui.engine.run import checkpoint as ckpt
from torchtui.engine.run import optim
from torchtui.engine.schema import ConfigError

CHUNK = 8192
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Inputs:
    """What was read: model inputs (preprocessed), the rows to echo in the output, and any known targets."""

    x: torch.Tensor
    header: list[str]
    rows: list[list[str]]
    targets: list[str] | None = None   # the true labels/values when the input carries them
    notes: list[str] = field(default_factory=list)


@dataclass
class Trained:
    """A run's model in eval mode and how its training data was treated."""

    model: torch.nn.Module
    data: dict                          # Splits.preprocessing(): task, shapes, names, standardisers, encoder
    loss: str
    columns: list = field(default_factory=list)  # data.columns: the features kept, or '-name' for those dropped
    tokens: Any = None                  # models.tokens.TokenInput: the model reads token ids
    sampling: Any = None                # config.PredictConfig: prompt, length, temperature, top_k (next-token data)

    def classes(self) -> list[str]:
        return list(self.data["class_names"])


def load_trained(run_dir: str, checkpoint: str = "best") -> Trained:
    """The run's model with its `best` or `last` weights (loaded weights-only) and its preprocessing."""
    folder = Path(run_dir).expanduser()
    path = folder / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        other = "last" if checkpoint == "best" else "best"
        hint = f" (use --checkpoint {other})" if (folder / "checkpoints" / f"{other}.pt").is_file() else ""
        raise ConfigError([f"--checkpoint: {folder} has no checkpoints/{checkpoint}.pt{hint}"])
    try:
        state = ckpt.load_checkpoint(path)
    except Exception as err:  # noqa: BLE001 - truncated zips, other formats, refused pickles
        raise ConfigError([f"--checkpoint: {path} is damaged ({ckpt.load_problem(err)})"]) from None
    _check_same_model(folder, path, state["config"])
    config = from_dict(state["config"])
    data = state.get("data") or _refit(config)
    loss = optim.resolve_loss(data["task"], config.train.loss)
    tokens = TokenInput.from_dict(state.get("tokens"))
    classes = tokens.vocab_size if data["task"] == "tokens" and tokens is not None else len(data["class_names"])
    n_out = models.output_size(data["task"], classes, data["n_targets"], loss)
    plain = from_dict({**config.to_dict(), "model": {**config.to_dict()["model"], "pretrained": "", "freeze": []}})
    model, _ = models.prepare_model(plain.model, tuple(data["input_shape"]), n_out, tokens=tokens)
    model.load_state_dict(state["model"])
    return Trained(model.eval(), data, loss, list(config.data.columns), tokens, config.predict)


def generate_text(trained: Trained, prompt: str, tokens: int | None = None, temperature: float | None = None,
                  top_k: int | None = None, seed: int | None = None) -> tuple[str, str]:
    """(text, note) a next-token run's model writes after `prompt`; the config's predict.* fill what is None."""
    from torchtui.engine.run.generate import sample_text

    if trained.data["task"] != "tokens" or trained.tokens is None:
        raise ConfigError([f"--prompt: this run predicts {trained.data['task']} targets from inputs, not the next "
                           "token of a text; give it inputs with --input"])
    s = trained.sampling
    try:
        return sample_text(trained.model, trained.data.get("tokenizer"), prompt, s.length if tokens is None else tokens,
                           int(trained.data["input_shape"][0]), s.temperature if temperature is None else temperature,
                           s.top_k if top_k is None else top_k, trained.tokens.vocab_size, seed)
    except DataError as err:
        raise ConfigError([str(err).replace("predict.prompt:", "--prompt:", 1)]) from None


def _check_same_model(folder: Path, path: Path, saved: dict) -> None:
    """The checkpoint's model is the one the run folder's config.yaml describes, or a ConfigError naming both
    (a checkpoint copied from another run, a config.yaml edited since): predictions use the checkpoint's."""
    import yaml

    from torchtui.engine.catalog import changed_fields

    try:
        described = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return  # no readable config.yaml: the checkpoint's own config is all there is
    if not isinstance(described, dict) or not isinstance(described.get("model"), dict):
        return
    mine = from_dict(saved).to_dict()["model"]
    try:
        theirs = from_dict({**saved, "model": described["model"]}).to_dict()["model"]
    except ConfigError as err:
        raise ConfigError([f"{folder / 'config.yaml'}: {err.first_line}"]) from None
    fields = changed_fields({"model": theirs}, {"model": mine})
    if fields:
        shown = ", ".join(f"{f} {_value(theirs, f)} vs {_value(mine, f)}" for f in fields[:4])
        more = f" and {len(fields) - 4} more" if len(fields) > 4 else ""
        raise ConfigError([f"predict: {folder / 'config.yaml'} and {path} describe different models ({shown}{more}; "
                           f"config.yaml's first): the checkpoint is not this run's, or config.yaml was edited; use "
                           "the run folder the checkpoint came from"])


def _value(model: dict, dotted: str):
    from torchtui.engine.catalog import flatten

    return flatten({"model": model}).get(dotted, "(none)")


def _refit(config) -> dict:
    """A checkpoint from before preprocessing was saved: refit it on the run's own data (same seed, same split)."""
    from torchtui.engine.data.splits import load_data

    return load_data(config.data).preprocessing()


def read_inputs(path_text: str, trained: Trained) -> Inputs:
    """Inputs from a CSV, .npz/.pt, IDX folder/file or image folder, preprocessed as the training data was."""
    path = Path(path_text).expanduser()
    if path.is_dir():
        has_idx = any("idx" in p.name for p in path.iterdir())
        inputs = _idx(path, path_text) if has_idx else _images(path, trained)
    elif not path.is_file():
        raise DataError(f"--input: {files.not_a_file(path, repr(path_text))}")
    elif path.suffix.lower() == ".csv":
        return _csv(path_text, trained)
    elif path.suffix.lower() in (".npz", ".pt", ".pth"):
        inputs = _tensors(path, path_text)
    elif "idx" in path.name:
        inputs = _idx_file(path, path_text)
    else:
        raise DataError(f"--input: '{path_text}' is not a CSV, .npz, .pt, IDX file/folder or image folder")
    _check_shape(inputs.x, trained, path_text)
    inputs.x = _standardised(inputs.x, trained.data)
    return inputs


def _csv(path_text: str, trained: Trained) -> Inputs:
    header, rows = csvfile.read_rows(path_text)
    data = trained.data
    if (data.get("encoder") or {}).get("kind") == "text":
        return _text_csv(path_text, header, rows, trained)
    encoder = tabular.Encoder.from_dict(data["encoder"]) if data.get("encoder") else None
    wanted = encoder.source_columns if encoder else list(data["feature_names"])
    if not wanted:
        raise DataError("--input: this run was not trained on table rows; give it an .npz/.pt, IDX or image folder")
    target = encoder.target if encoder else ""
    _check_columns(header, wanted, target, path_text, trained.columns)
    index = {name: i for i, name in enumerate(header)}
    columns = {name: tabular.Column.of(name, pa.array([r[index[name]] for _, r in rows], pa.string()))
               for name in wanted}
    lines = [line for line, _ in rows]
    if encoder is None:  # rows of numbers from another source (iris, moons): parse them, fill nothing
        encoder = tabular.Encoder([{"name": n, "kind": "number", "fill": None, "categories": []} for n in wanted])
    _check_cells(encoder, columns, lines, path_text)
    x = torch.from_numpy(encoder.transform(columns))
    known = [r[index[target]].strip() for _, r in rows] if target in index else None
    return Inputs(_standardised(x, data), header, [r for _, r in rows], known)


def _text_csv(path_text: str, header: list[str], rows: list, trained: Trained) -> Inputs:
    """Rows whose free-text column(s) the run tokenised: the same tokenizer and block_size, saved with it."""
    from torchtui.engine.data.text.columns import TextEncoder

    encoder = TextEncoder.from_dict(trained.data["encoder"])
    _check_columns(header, encoder.source_columns, encoder.target, path_text, trained.columns)
    index = {name: i for i, name in enumerate(header)}
    columns = {name: tabular.Column.of(name, pa.array([r[index[name]] for _, r in rows], pa.string()))
               for name in encoder.source_columns}
    known = [r[index[encoder.target]].strip() for _, r in rows] if encoder.target in index else None
    return Inputs(torch.from_numpy(encoder.transform(columns)), header, [r for _, r in rows], known)


def _check_columns(header: list[str], wanted: list[str], target: str, path_text: str, chosen: list[str]) -> None:
    """The run's feature columns are all there; any other column is one training left out too (a `-name` in
    data.columns, or any when data.columns listed the features): ignored and echoed, so rows join back."""
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataError(f"--input: '{path_text}' lacks the column(s) {', '.join(map(repr, missing))} this run was "
                        f"trained on (it needs: {', '.join(wanted)})")
    dropped = {c[1:] for c in chosen if c.startswith("-")}
    listed = bool(chosen) and not dropped  # data.columns named the features: training ignored every other one
    extra = [name for name in header if name not in wanted and name != target and name not in dropped]
    if extra and not listed:
        raise DataError(f"--input: '{path_text}' has column(s) {', '.join(map(repr, extra))} this run was not "
                        f"trained on: remove them (the run's features: {', '.join(wanted)}; target: {target or '–'})")


def _check_cells(encoder: tabular.Encoder, columns: dict, lines: list[int], path_text: str) -> None:
    """Every cell that cannot be encoded, in one error: text in number columns, gaps with no fill value."""
    problems = tabular.Problems(path_text, lambda row: lines[row])
    for fitted in encoder.columns:
        col = columns[fitted["name"]]
        gap = col.missing if fitted["fill"] is None else np.zeros(len(col), bool)
        text = np.zeros(len(col), bool)  # a category column takes any text
        if fitted["kind"] == "number":
            text = ~col.missing if col.kind == "category" else col.bad
        for i in np.flatnonzero(gap | text).tolist():
            problems.add(fitted["name"], i, "missing value (the run had no fill value for it)" if gap[i]
                         else f"'{col.text(i)}' is not a number")
    problems.raise_if_any("fix those cells (missing values are filled only for runs trained with data.missing "
                          "mean, median or most_frequent)")


def _tensors(path: Path, path_text: str) -> Inputs:
    mapping = files._load_mapping(path, path_text)
    lower = {str(k).lower(): k for k in mapping}
    x = next((mapping[lower[k]] for k in files.X_KEYS if k in lower), None)
    if x is None:
        raise DataError(f"--input: '{path_text}' needs an array named X (found: {', '.join(map(str, mapping))})")
    y = next((mapping[lower[k]] for k in files.Y_KEYS if k in lower), None)
    x_t = files._as_tensor(x, "X", path_text)
    x_t, y_t = files._as_xy(x_t, torch.zeros(len(x_t)) if y is None else y, path_text, "", 0)
    return _indexed(x_t, None if y is None else [_text(v) for v in y_t.tolist()])


def _idx(folder: Path, path_text: str) -> Inputs:
    part = "test" if files._find(folder, "test", "images") is not None else "train"
    images, labels = files._find(folder, part, "images"), files._find(folder, part, "labels")
    if images is None:
        raise DataError(f"--input: '{path_text}' has no IDX images file (t10k-images-idx3-ubyte[.gz], …)")
    if labels is None:
        return _idx_file(images, path_text)
    x, y = files._idx_pair(images, labels, 0)
    return _indexed(x, [str(v) for v in y.tolist()])


def _idx_file(path: Path, path_text: str) -> Inputs:
    raw = files.read_idx_file(path)
    x = torch.from_numpy(raw.astype("float32")) / (255.0 if raw.dtype.name == "uint8" else 1.0)
    return _indexed(x.unsqueeze(1) if x.dim() == 3 else x, None)


def _images(folder: Path, trained: Trained) -> Inputs:
    """Every image under the folder (class subfolders name the true labels), sized as the run's inputs."""
    from torchtui.engine.data.sources.vision import decode_image, import_torchvision

    tv = import_torchvision("--input")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"--input: '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    channels, height, width = trained.data["input_shape"]
    # Decoded and resized as training's ImageFolder does (engine/data/sources/vision.py), grey images through PIL.
    transform = tv.transforms.Compose([tv.transforms.Resize((height, width), antialias=True),
                                       tv.transforms.ConvertImageDtype(torch.float32)])

    def decoded(path: Path) -> torch.Tensor:
        if channels != 1:
            return decode_image(str(path))
        return tv.transforms.functional.pil_to_tensor(tv.datasets.folder.pil_loader(str(path)).convert("L"))

    x = torch.stack([transform(decoded(p)) for p in paths])
    labels = [p.parent.name for p in paths] if any(p.parent != folder for p in paths) else None
    inputs = Inputs(x, ["file"], [[str(p.relative_to(folder))] for p in paths], labels)
    return inputs


def _indexed(x: torch.Tensor, targets: list[str] | None) -> Inputs:
    return Inputs(x, ["index"], [[str(i)] for i in range(len(x))], targets)


def _text(value) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_shape(x: torch.Tensor, trained: Trained, path_text: str) -> None:
    want = tuple(trained.data["input_shape"])
    if tuple(x.shape[1:]) != want:
        raise DataError(f"--input: samples in '{path_text}' have shape {tuple(x.shape[1:])}, this run was trained "
                        f"on {want}")


def _standardised(x: torch.Tensor, data: dict) -> torch.Tensor:
    x = x.float()
    return x if data.get("mean") is None else (x - data["mean"]) / data["std"]


def predict(trained: Trained, x: torch.Tensor) -> tuple[list[str], list[list[float]]]:
    """Predicted labels (class names, or values in the data's units) and per-class probabilities."""
    data, outs = trained.data, []
    with torch.inference_mode():
        for start in range(0, len(x), CHUNK):
            outs.append(trained.model(x[start:start + CHUNK]).float())
    out = torch.cat(outs) if outs else torch.zeros(0, 1)
    if data["task"] == "regression":
        if data.get("y_std") is not None:
            out = out * data["y_std"] + data["y_mean"]
        return [";".join(f"{v:.6g}" for v in row) for row in out.tolist()], []
    names = trained.classes()
    probs = torch.sigmoid(out) if out.shape[1] == 1 else torch.softmax(out, dim=1)
    if out.shape[1] == 1:
        probs = torch.cat([1 - probs, probs], dim=1)
    return [names[k] for k in probs.argmax(1).tolist()], probs.tolist()


def to_csv(inputs: Inputs, labels: list[str], probs: list[list[float]], classes: list[str]) -> str:
    """The input's rows with `prediction` and `p_<class>` columns (regression: the predicted value)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*inputs.header, "prediction", *(f"p_{c}" for c in (classes if probs else []))])
    for row, label, p in zip(inputs.rows, labels, probs or [[]] * len(labels)):
        writer.writerow([*row, label, *(f"{v:.6f}" for v in p)])
    return buffer.getvalue()


def agreement(inputs: Inputs, labels: list[str], task: str) -> dict:
    """Accuracy (classes) or mean absolute error (values) against the input's own targets, when it has them."""
    if not inputs.targets:
        return {}
    if task != "regression":
        hits = sum(str(t) == p for t, p in zip(inputs.targets, labels))
        return {"accuracy": hits / len(labels)}
    pairs = [(tabular.as_number(t), float(p.split(";")[0])) for t, p in zip(inputs.targets, labels)]
    known = [(t, p) for t, p in pairs if t is not None]
    return {"mae": sum(abs(t - p) for t, p in known) / len(known)} if known else {}
