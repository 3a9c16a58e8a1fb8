"""Export a run or a preset as one plain PyTorch script: the same data, model, loss, optimizer, schedule and
loop, with the run's live changes replayed as a schedule. The script imports torch (and numpy or
scikit-learn where the data needs them), never torchtui.

`export(ref)` takes a run folder or a preset reference; the sections come from data.py, model.py and
training.py, each a small template per concern. Whatever the script could not replicate faithfully is
refused with a ConfigError naming the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from torchtui.engine.export.data import check_source, data_part, load_facts
from torchtui.engine.export.model import check_model, model_part
from torchtui.engine.export.parts import HELPERS, Part, fill, unsupported
from torchtui.engine.export.training import check_train, live_part, loop_part, loss_part, optimizer_part, scheduler_part
from torchtui.engine.runs import HPARAMS, RunFolder, hparams_values, row_kind
from torchtui.engine.schema import ConfigError

RULE = "# " + "-" * 78


@dataclass
class Export:
    """The script's text, a file name for it, and what the user should hear (the run stopped early, …)."""

    script: str
    name: str
    notes: list[str] = field(default_factory=list)
    changes: dict[int, dict] = field(default_factory=dict)


def export(ref: str, overrides: list[str] | None = None) -> Export:
    """The script for a run folder (its config.yaml and recorded live changes) or a preset (none)."""
    from torchtui.engine import presets

    folder = Path(ref).expanduser()
    if folder.is_dir():
        if not (folder / "config.yaml").is_file():
            raise ConfigError([f"export: {ref} is a folder without config.yaml (give a run folder or a preset)"])
        config = presets.load(str(folder / "config.yaml"), overrides)
        changes, damaged = lineage_changes(folder)
        summary = _summary(folder / "summary.json")
        origin = f"torchtui run {folder.resolve().name}"
    else:
        config, changes, summary, origin = presets.load(ref, overrides), {}, {}, f"torchtui preset {ref}"
        damaged = 0
    # A run trained until stopped (train.epochs 0, the app's way to try a toy preset): the script trains the
    # steps the run did, which its summary records.
    max_steps = _steps_trained(config, summary) if folder.is_dir() and not config.train.epochs else 0
    notes = _notes(config, summary, max_steps)
    if damaged:
        notes.append(f"metrics.jsonl has {damaged} damaged line(s), skipped: any live change recorded "
                     "on them is missing from the script")
    if folder.is_dir():
        notes += _guard_notes(folder)
    script = render(config, changes, origin, summary, max_steps)
    compile(script, f"{config.name}.py", "exec")  # a template bug is ours: fail here, not in the user's hands
    return Export(script, f"{_slug(config.name)}.py", notes, changes)


def live_changes(path: Path) -> tuple[dict[int, dict], int]:
    """{step: {field: new value}} from the hparams rows of metrics.jsonl (rows at one step merged in order), and
    how many lines before the last were damaged (skipped: a change on one of them is lost; the note says so)."""
    changes: dict[int, dict] = {}
    try:
        rows, damaged = RunFolder(path.parent).read_metrics(HPARAMS)
    except OSError:
        return changes, 0
    for row in rows:
        if row_kind(row) == HPARAMS and isinstance(row.get("step"), int):
            # base_lr moves with lr by the same factor: the script scales its schedule by lr's (new ÷ current)
            values = hparams_values(row)
            changes.setdefault(row["step"], {}).update({k: v for k, v in values.items() if k != "base_lr"})
    return changes, len(damaged)


def lineage_changes(folder: Path, depth: int = 0) -> tuple[dict[int, dict], int]:
    """The live changes a run trained with: a branch's (a rewind, origin.json's branch_of) are its parent's up to the
    branch point, then its own, so the script replays the parent's steps and then the branch's. A branch whose
    parent's folder is gone is refused by name: the steps before the branch point cannot be known."""
    changes, damaged = live_changes(folder / "metrics.jsonl")
    branch = _summary(folder / "origin.json").get("branch_of")
    if not isinstance(branch, dict):
        return changes, damaged
    parent, step = Path(str(branch.get("run_dir", ""))), branch.get("step")
    if not isinstance(step, int) or depth > 100 or not (parent / "config.yaml").is_file():
        raise ConfigError([f"export: {folder.name} is a branch of run {branch.get('run_id', '?')} at step {step}, "
                           f"whose folder ({parent}) is gone: the live changes before the branch point cannot be "
                           "replayed (put the parent's folder back, or export the branch's config: torchtui export "
                           f"{folder}/config.yaml)"])
    before, more = lineage_changes(parent, depth + 1)
    merged = {s: dict(v) for s, v in before.items() if s <= step}
    for s, values in changes.items():
        merged.setdefault(s, {}).update(values)
    return dict(sorted(merged.items())), damaged + more


def _guard_notes(folder: Path) -> list[str]:
    """What of the run the script cannot replay: batches the spike guard rolled back over and skipped."""
    try:
        rows, _ = RunFolder(folder).read_metrics("guard")
    except OSError:
        return []
    skipped = [row for row in rows if row.get("skipped")]
    if not skipped:
        return []
    return [f"the run's spike guard rolled back {len(skipped)} time(s) and skipped the batches of the bad step(s) "
            f"(metrics.jsonl's guard rows, first at step {skipped[0].get('step')}): the script trains every batch, so "
            "it follows the run only up to there"]


def _summary(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _steps_trained(config, summary: dict) -> int:
    steps = summary.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        raise ConfigError(["train.epochs: this run trained until stopped (epochs 0) and its summary.json does not say "
                           "how many steps it took (it is running, or was killed); export it once it has stopped, or "
                           "give a length: --set train.epochs=N"])
    return steps


def _notes(config, summary: dict, max_steps: int = 0) -> list[str]:
    notes = []
    if max_steps:
        notes.append(f"the run trained until stopped (train.epochs 0): the script trains its {max_steps} steps")
    elif summary.get("state") and summary.get("state") != "finished":
        notes.append(f"the run ended {summary['state']} after {summary.get('steps', '?')} steps; the script trains "
                     f"all {config.train.epochs} epochs")
    if config.device.compile:
        notes.append("device.compile is left out (it changes speed, not results): add model = torch.compile(model)")
    return notes


def _slug(name: str) -> str:
    text = "".join(c if c.isalnum() else "_" for c in name.strip().lower()).strip("_")
    return (text if text and not text[0].isdigit() else f"train_{text}") or "train"


def check_device(device) -> None:
    if device.precision != "fp32":
        raise unsupported("device.precision", device.precision, "export trains in fp32: set device.precision: fp32")
    if device.distributed:
        raise unsupported("device.devices", device.devices, "export writes a one-process script: set device.devices: "
                          "1 (and train.batch_size to the global batch, devices × batch_size, for the same training)")


def render(config, changes: dict[int, dict], origin: str, summary: dict | None = None, max_steps: int = 0) -> str:
    """The whole script as text; `max_steps` (a run that trained until stopped) ends it after that many steps."""
    from torchtui.engine.models.build import output_size
    from torchtui.engine.run.optim import loss_problem, resolve_loss

    check_device(config.device)
    check_source(config.data)
    check_model(config.model)
    facts = _facts(config)
    problem = loss_problem(facts.task, config.train.loss)
    if problem:
        raise ConfigError([f"train.loss: {problem}"])
    loss_name = resolve_loss(facts.task, config.train.loss)
    if max_steps:  # the epochs those steps take: the loop breaks at max_steps in the last of them
        import dataclasses

        config = dataclasses.replace(config, train=dataclasses.replace(
            config.train, epochs=-(-max_steps // _steps_per_epoch(config.train, facts.sizes["train"]))))
    check_train(config.train)
    n_out = output_size(facts.task, facts.n_classes, facts.n_targets, loss_name)
    train = config.train
    data = data_part(config.data, facts)
    model = model_part(config.model, facts.input_shape, n_out)
    sections = [data, model, loss_part(train, loss_name, facts.task, n_out), optimizer_part(train),
                _batches(train), scheduler_part(train), live_part(train, changes),
                loop_part(train, changes, _has_val(config, facts), max_steps)]
    sections = [s for s in sections if s.code]
    data.code += "\n" + _to_device(train)
    helpers = sorted({h for s in sections for h in s.helpers})
    imports = {"import os", "import torch"} | {i for s in sections for i in s.imports} | {"from pathlib import Path"}
    imports |= {i for h in helpers for i in HELPERS[h][0]}
    parts = [_docstring(config, origin, summary or {}, changes), _imports(imports),
             f"{RULE}\n# settings (from the run's config.yaml)\n\n"
             + _settings(config, sections) + "\n" + _setup(config),
             *(fill(HELPERS[h][1]) for h in helpers)]
    for section in sections:
        parts.append((f"{RULE}\n# {section.title}\n\n" if section.title else "") + section.code)
    parts.append("torch.save(model.state_dict(), out_path)\nprint(f\"saved the weights to {out_path}\")\n")
    return "\n\n".join(p.strip("\n") + "\n" for p in parts if p.strip())


def _steps_per_epoch(train, n_train: int) -> int:
    batches = 1 if train.batch_size <= 0 else -(-n_train // train.batch_size)
    return max(1, -(-batches // train.accumulate))


def _facts(config):
    from torchtui.engine.errors import DataError

    try:
        return load_facts(config.data)
    except DataError as err:
        raise ConfigError([str(err)]) from None


def _has_val(config, facts) -> bool:
    return facts.sizes["val"] > 0


def _batches(train) -> Part:
    code = ""
    if train.batch_size == 0:
        code += "batch_size = len(x_train)  # train.batch_size 0: the whole train split in one batch\n"
    return Part("", code, [])


def _to_device(train) -> str:
    return ("x_train, y_train = x_train.to(device), y_train.to(device)\n"
            "x_val, y_val = x_val.to(device), y_val.to(device)\n"
            "x_test, y_test = x_test.to(device), y_test.to(device)\n")


def _docstring(config, origin: str, summary: dict, changes: dict) -> str:
    what = f"\n\n{config.description}" if config.description else ""
    val = summary.get("val") or {}
    reached = ", ".join(f"{k} {v:.4f}" for k, v in val.items() if isinstance(v, (int, float)) and k != "loss")
    result = f"\nThe run ended with val {reached} (val loss {val['loss']:.4f}).\n" if reached and "loss" in val else ""
    replay = (f" The {len(changes)} live change(s) the run recorded are replayed at the steps they were made."
              if changes else "")
    return (f'"""{config.name}: plain PyTorch, exported from {origin}.{what}\n\n'
            "The same data split, model, loss, optimizer, lr schedule and training loop as the run." + replay +
            "\nIt prints the val metrics after each epoch and saves the state_dict beside this file.\n" + result
            + "\n    python " + f"{_slug(config.name)}.py\n" + '"""\n')


def _imports(lines: set[str]) -> str:
    third = ("numpy", "sklearn", "torch")
    def group(line): return 1 if line.split()[1].split(".")[0] in third else 0
    def key(line): return (line.startswith("from"), line.split()[1])
    std = sorted((line for line in lines if not group(line)), key=key)
    other = sorted((line for line in lines if group(line)), key=key)
    return "\n".join(std) + ("\n\n" if std else "") + "\n".join(other) + "\n"


def _settings(config, sections: list[Part]) -> str:
    seen, rows = set(), []
    for section in sections:
        for name, value, comment in section.settings:
            if name not in seen:
                seen.add(name)
                rows.append((f"{name} = {value!r}", comment))
    device = config.device.device
    rows.append((f"device = {device!r}" if device != "auto" else
                 'device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() '
                 'else "cpu"', "" if device == "auto" else "device.device"))
    rows.append(('out_path = Path(__file__).with_suffix(".pt")', "the weights, beside this script"))
    width = max(len(code) for code, comment in rows if comment and len(code) < 40) if rows else 0
    return "\n".join(f"{code.ljust(width)}  # {comment}" if comment and len(code) < 40 else
                     (f"{code}  # {comment}" if comment else code) for code, comment in rows) + "\n"


def _setup(config) -> str:
    lines = ["torch.manual_seed(seed)  # dropout and anything else random in training"]
    dev = config.device
    # device.threads 0 is torchtui's default (engine/run/device_config.py): torch's own, one per core, ran
    # `train spiral`'s script 2x slower than that on 2 shared cores
    lines.append(f"torch.set_num_threads({dev.threads})" if dev.threads else
                 "torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # a core left free (faster when busy)")
    if dev.tf32:
        lines += ["torch.backends.cuda.matmul.allow_tf32 = True", "torch.backends.cudnn.allow_tf32 = True"]
    if config.train.deterministic:
        lines.append("torch.use_deterministic_algorithms(True)")
    return "\n".join(lines) + "\n"
