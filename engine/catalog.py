"""The runs a folder holds, one record each, and their curves: what `torchtui runs` and the Runs screen show.

Everything is read from the run folders (config.yaml, summary.json, origin.json, metrics.jsonl) and never
written. A folder that is half written or damaged becomes a record with a `problem`, never an exception.
metrics.jsonl is read incrementally: a `Catalog` remembers how far it read each file, so refreshing a list
of finished runs costs a stat() each, and a live run only its new lines.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from torchtui.engine import presets
from torchtui.engine.config import MAXIMISED, METRICS
from torchtui.engine.runs import EVENT_ROW, HPARAMS, STEP_ROW, STEP_START, RunFolder, row_kind
from torchtui.engine.schema import ConfigError

ARCHIVE = "archive"   # runs_dir/archive/ holds archived runs; it is not listed
MAX_SUMMARY_BYTES = 1_000_000
RUN_FILES = ("config.yaml", "summary.json", "metrics.jsonl", "checkpoints")
SWEEP_FILE = "sweep.yaml"  # marks a sweep folder (sweep/study.py), whose trials are listed like runs
SKIPPED_KEYS = ("schema", "name", "description")  # config keys that never count as "what changed"
INTERRUPTED = "interrupted"  # no summary and no live server: killed, or its machine went down (resumable)



@dataclass
class RunRecord:
    """One run folder as the list shows it. Metrics dicts map names (accuracy, loss …) to numbers."""
    run_id: str
    path: str
    name: str = ""
    state: str = ""
    live: bool = False
    task: str = ""
    epochs: float = 0
    steps: int = 0
    seconds: float | None = None
    created: float = 0.0
    preset: str = ""
    parent: str = ""          # the run it was branched from (its run id), if any
    sweep: str = ""           # the sweep it is a trial of, and its trial number
    trial: int | None = None
    best: dict = field(default_factory=dict)    # best val value of each metric over the evaluations
    final: dict = field(default_factory=dict)   # the last val evaluation
    test: dict = field(default_factory=dict)
    changes: int = 0          # live changes recorded (lr ×2 …)
    config: dict = field(default_factory=dict)
    problem: str = ""
    differs: dict = field(default_factory=dict)  # filled by `differing`: dotted field → this run's value

    def value(self, key: str):
        """The value a sort or filter key names: a column, best.<m>/final.<m>/test.<m>, <m> (= best), a field."""
        if key in ("run_id", "name", "state", "task", "epochs", "steps", "seconds", "created", "preset", "parent",
                   "changes", "sweep", "trial"):
            return getattr(self, key)
        part, _, metric = key.partition(".")
        if part in ("best", "final", "test") and metric:
            return getattr(self, part).get(metric)
        if key in METRICS:
            return self.best.get(key)
        return flatten(self.config).get(key)

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "config"}
        out["run_dir"] = out.pop("path")
        return out


@dataclass
class _Progress:
    """What has been read of one metrics.jsonl: where reading stopped and what the rows said so far."""
    offset: int = 0
    best: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    changes: int = 0
    steps: int = 0
    epochs: float = 0
    damaged: int = 0


class Catalog:
    """The runs under one folder. `scan()` lists them; files unchanged since the last scan are not reread."""

    def __init__(self, runs_dir: str | Path):
        self.root = Path(runs_dir)
        self._progress: dict[str, _Progress] = {}
        self._static: dict[str, tuple] = {}  # path → (stat key, parsed config/summary/origin)

    def scan(self, live_runs: dict[str, object] | None = None) -> list[RunRecord]:
        """Every run folder, oldest first. `live_runs` maps a run folder's resolved path to the state its
        server reports (from live.servers()); those runs are marked live."""
        live_runs = live_runs or {}
        try:
            folders = sorted(p for p in self.root.iterdir()
                             if p.is_dir() and p.name != ARCHIVE and not p.name.startswith("."))
        except OSError:
            return []
        records = []
        for folder in folders:
            if (folder / SWEEP_FILE).is_file():  # a sweep: its trials are run folders inside it
                for trial in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                    if any((trial / name).exists() for name in RUN_FILES):
                        records.append(self.record(trial, live_runs.get(str(trial.resolve()))))
                continue
            if not any((folder / name).exists() for name in RUN_FILES):
                continue  # not a run folder (something else the user keeps there)
            records.append(self.record(folder, live_runs.get(str(folder.resolve()))))
        return records

    def record(self, folder: Path, live_state: str | None = None) -> RunRecord:
        rec = RunRecord(run_id=folder.name, path=str(folder))
        try:
            rec.created = folder.stat().st_mtime
        except OSError:
            pass
        writing = live_state is not None or RunFolder(folder).writer() is not None
        config, summary, origin, problems = self._read_static(folder)
        rec.config = config
        rec.name = str(config.get("name") or "") if config else ""
        # A rewind's branch names its parent as branch_of, a run continued from a checkpoint file as parent.
        lineage = origin.get("branch_of") if isinstance(origin.get("branch_of"), dict) else origin.get("parent")
        parent = lineage if isinstance(lineage, dict) else {}
        rec.preset, rec.parent = str(origin.get("preset") or ""), str(parent.get("run_id") or "")
        rec.created = number(origin.get("created")) or rec.created
        progress = self._read_metrics(folder / "metrics.jsonl", problems, quiet=writing)
        rec.best, rec.final, rec.test = dict(progress.best), dict(progress.final), dict(progress.test)
        rec.changes, rec.steps, rec.epochs = progress.changes, progress.steps, progress.epochs
        if summary:
            rec.state = str(summary.get("state") or "")
            rec.task = str(summary.get("task") or "")
            rec.seconds = number(summary.get("seconds"))
            rec.steps = int(number(summary.get("steps")) or rec.steps)
            rec.epochs = number(summary.get("epochs")) or rec.epochs
            test = summary.get("test") if isinstance(summary.get("test"), dict) else {}
            rec.test = {k: v for k, v in test.items() if number(v) is not None} or rec.test
        trial = origin.get("trial") if isinstance(origin.get("trial"), dict) else {}
        rec.sweep = str(origin.get("sweep") or trial.get("sweep") or "")
        number_of = trial.get("number", origin.get("trial"))
        rec.trial = number_of if isinstance(number_of, int) and not isinstance(number_of, bool) else None
        if trial.get("state") == "pruned":
            rec.state = "pruned"  # stopped by the sweep's pruner, not by a person
        if live_state is not None:
            rec.state, rec.live = live_state, True
        elif writing:  # a `torchtui train` in some terminal: running, though no server to attach to
            rec.state = "running"
        elif not rec.state:
            rec.state = INTERRUPTED if config else "unknown"
        if not rec.task:
            rec.task = "regression" if "r2" in rec.best else ("classification" if "accuracy" in rec.best else "")
        rec.problem = "; ".join(problems)
        return rec

    def _read_static(self, folder: Path) -> tuple[dict, dict, dict, list[str]]:
        """config.yaml, summary.json and origin.json, parsed again only when one of them changed."""
        files = [folder / "config.yaml", folder / "summary.json", folder / "origin.json", folder / "trial.json"]
        key = tuple(_stat_key(f) for f in files)
        cached = self._static.get(str(folder))
        if cached is not None and cached[0] == key:
            return cached[1]
        problems: list[str] = []
        config: dict = {}
        if key[0] is None:
            problems.append("no config.yaml")
        else:
            try:
                config = presets.read_yaml(files[0])
            except ConfigError as err:
                problems.append(f"config.yaml: {err.first_line.split(': ', 1)[-1]}")
        summary = _read_json(files[1], problems) if key[1] is not None else {}
        origin = _read_json(files[2], problems) if key[2] is not None else {}
        if key[3] is not None:  # a sweep's trial: its outcome (pruned …) as the sweep judged it
            origin = {**origin, "trial": _read_json(files[3], problems)}
        parsed = (config, summary, origin, problems)
        self._static[str(folder)] = (key, parsed)
        return config, summary, origin, list(problems)

    def _read_metrics(self, path: Path, problems: list[str], quiet: bool) -> _Progress:
        """The metrics read so far, brought up to date by reading only the lines added since."""
        progress = self._progress.get(str(path))
        try:
            size = path.stat().st_size
        except OSError:
            return _Progress()
        if progress is None or size < progress.offset:  # new, or rewritten shorter (a resume truncates it)
            progress = self._progress[str(path)] = _Progress()
        if size > progress.offset:
            try:
                with open(path, "rb") as fh:
                    fh.seek(progress.offset)
                    data = fh.read(size - progress.offset)
            except OSError as err:
                problems.append(f"metrics.jsonl: cannot read ({err.strerror})")
                return progress
            end = data.rfind(b"\n") + 1  # a torn last line (being written, or cut by a kill) waits
            _consume(progress, data[:end])
            progress.offset += end
        if progress.damaged and not quiet:
            problems.append(f"metrics.jsonl: {progress.damaged} damaged line(s) skipped")
        if not quiet and size > progress.offset:
            problems.append("metrics.jsonl: the last line is cut short (the run was killed mid-write)")
        return progress


def last_step_row(data: bytes):
    """The match of the last step row in `data` (searched from the end), or None."""
    start = data.rfind(STEP_START)
    return STEP_ROW.match(data, start) if start >= 0 else None


def _consume(progress: _Progress, data: bytes) -> None:
    """Fold complete lines into the progress: steps from the last step row, metrics from eval rows."""
    last = last_step_row(data)
    if last is not None:
        progress.steps = int(last.group(1))
        progress.epochs = number(_jsonnumber(last.group(2))) or progress.epochs
    for match in EVENT_ROW.finditer(data):
        try:
            row = json.loads(match.group(0))
        except ValueError:
            progress.damaged += 1
            continue
        if not isinstance(row, dict):
            continue
        if row_kind(row) == HPARAMS:
            progress.changes += 1
            continue
        metrics = {k: v for k, v in row.items() if k in METRICS and number(v) is not None}
        if row.get("split") == "test":
            progress.test = metrics
            continue
        progress.final = metrics
        for name, value in metrics.items():
            old = progress.best.get(name)
            if old is None or (value > old if name in MAXIMISED else value < old):
                progress.best[name] = value
    # Every row we write is one JSON object on its own line; anything else was damaged (or glued to the
    # next row by a write a kill cut short).
    # (Counted, not split: a line per row of a 100,000-step run through Python took longer than the rest.)
    # A line that does not end a row is damaged; more rows than lines means a row glued onto a cut one.
    lines = data.count(b"\n")
    progress.damaged += lines - data.count(b"}\n") + max(0, data.count(b'{"type": ') - lines)


def _stat_key(path: Path) -> tuple | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _read_json(path: Path, problems: list[str]) -> dict:
    try:
        if path.stat().st_size > MAX_SUMMARY_BYTES:
            problems.append(f"{path.name}: too large to be ours ({path.stat().st_size:,} bytes)")
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        problems.append(f"{path.name} is damaged ({type(err).__name__}: {str(err)[:80]})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path.name} is damaged (not a JSON object)")
        return {}
    return data


def number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _jsonnumber(text: bytes):
    try:
        return json.loads(text)
    except ValueError:
        return None


# ---------------------------------------------------------------- what differs, sorting, filtering

def flatten(config: dict, prefix: str = "") -> dict:
    """Dotted names of every leaf: {"train.lr": 0.01, "model.layers[0].units": 64}. Lists of numbers or
    text are one value (`train.betas`); lists of mappings get an index per item."""
    out = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                out.update(flatten(item, f"{name}[{i}]."))
            out[f"len({name})"] = len(value)
        else:
            out[name] = value
    return out


def changed_fields(old: dict, new: dict, skip: tuple | set = ()) -> list[str]:
    """The dotted fields (as flatten names them) whose values differ between two configs, in order, but those
    in `skip`: the one way the engine (resume edits), the app (live changes, unsaved edits, the resumable
    run) and a saved preset's description tell two setups apart."""
    a, b = flatten(old), flatten(new)
    return [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k) and k not in skip]


def differing(records: list[RunRecord], assign: bool = True) -> list[str]:
    """The dotted config fields whose values are not the same in all `records` (with a config); with
    `assign`, sets each record's `differs`. A list item some runs lack shows as len(model.layers)."""
    flat = [(r, flatten(r.config)) for r in records if r.config]
    keys: list[str] = []
    for _, fields in flat:
        keys.extend(k for k in fields if k not in keys)
    # A field of a list item some runs lack (their third layer) is told by len(model.layers) instead.
    keys = [k for k in keys if k.split(".")[0] not in SKIPPED_KEYS
            and ("[" not in k or all(k in fields for _, fields in flat))]
    changed = [k for k in keys if len({_key(fields.get(k)) for _, fields in flat}) > 1]
    for record, fields in flat if assign else ():
        record.differs = {k: fields.get(k) for k in changed}
    return changed


def _key(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


SORT_COLUMNS = ("created", "run_id", "name", "state", "epochs", "steps", "seconds", "preset", "changes", "trial")


def sort_key_problem(key: str, records: list[RunRecord]) -> str:
    """'' when `key` can sort these records; otherwise what keys can."""
    bare = key.split(".", 1)[-1] if key.split(".")[0] in ("best", "final", "test") else key
    if key in SORT_COLUMNS or bare in METRICS or any(key in flatten(r.config) for r in records):
        return ""
    return (f"cannot sort by '{key}': use one of {', '.join(SORT_COLUMNS)}, a metric ({', '.join(METRICS)}, "
            "or best./final./test. before one), or a config field such as train.lr")


def sort_records(records: list[RunRecord], key: str, reverse: bool = False) -> list[RunRecord]:
    """Sorted by `key`; metrics best first (accuracy high, loss low), everything else ascending; runs without
    a value last whichever way."""
    metric = key.split(".", 1)[-1] if key.split(".")[0] in ("best", "final", "test") else key
    descending = metric in MAXIMISED
    if reverse:
        descending = not descending
    present = [r for r in records if r.value(key) is not None]
    missing = [r for r in records if r.value(key) is None]
    present.sort(key=lambda r: _sortable(r.value(key)), reverse=descending)
    return present + missing


def _sortable(value):
    if isinstance(value, bool):
        return (0, int(value), "")
    if isinstance(value, (int, float)):
        return (0, value, "")
    return (1, 0, _key(value))


def matches(record: RunRecord, text: str) -> bool:
    """Whether every word of `text` is in the run's id, name, state, preset, parent, problem, or one of its
    `field=value` pairs (so `train.lr=0.01` and `moons running` both work); case-insensitive."""
    haystack = " ".join([record.run_id, record.name, record.state, record.preset, record.parent, record.problem,
                         record.sweep,
                         "live" if record.live else ""]
                        + [f"{k}={_shown(v)}" for k, v in flatten(record.config).items()]).lower()
    return all(word in haystack for word in text.lower().split())


SHOWN_METRICS = ("accuracy", "f1", "mse", "mae", "r2", "loss")  # as columns (precision, recall: in --json)


def columns(records: list[RunRecord], fields: list[str]) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """The list as text cells: [(header, sort key)] and a row per record. Metrics show as best/final over
    the val evaluations, then test metrics, then the fields that differ, then problems (if any)."""
    metrics = [m for m in SHOWN_METRICS if any(m in r.best for r in records)]
    tested = [m for m in SHOWN_METRICS if any(m in r.test for r in records)]
    # Lineage where there is some: the run each was branched from, the preset when they came from several.
    lineage = [k for k in ("trial", "parent", "preset") if (
        any(r.trial is not None for r in records) if k == "trial" else any(r.parent for r in records)
        if k == "parent" else len({r.preset for r in records}) > 1)]
    header = ([("run", "run_id"), ("state", "state"), ("epochs", "epochs"), ("steps", "steps"), ("time", "seconds")]
              + [(k, k) for k in lineage]
              + [(f"{m} best/final", m) for m in metrics] + [(f"test {m}", f"test.{m}") for m in tested]
              + [(k, k) for k in fields])
    rows = [[r.run_id, r.state + (" (live)" if r.live else ""), fmt(r.epochs), str(r.steps), duration(r.seconds)]
            + [fmt(getattr(r, k)) if getattr(r, k) not in ("", None) else "–" for k in lineage]
            + [f"{fmt(r.best.get(m))}/{fmt(r.final.get(m))}" for m in metrics]
            + [fmt(r.test.get(m)) for m in tested] + [shown(r.differs.get(k)) for k in fields]
            for r in records]
    if any(r.problem for r in records):
        header.append(("problem", "problem"))
        for row, r in zip(rows, records):
            row.append(r.problem)
    return header, rows


def fmt(value) -> str:
    """A metric or count as a cell: 4 significant digits, – for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def shown(value) -> str:
    """A config value as a cell: numbers compact, lists and mappings as JSON, none as –."""
    if value is None:
        return "–"
    return _shown(value)


def duration(seconds) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if not isinstance(value, (list, dict)) else _key(value)


def live_states() -> dict[str, str]:
    """{resolved run folder: state} of this user's live run servers (none when the runtime folder is unusable)."""
    from torchtui.engine import live

    try:
        return {str(Path(info.run_dir).resolve()): info.state for info in live.servers() if info.run_dir}
    except live.LiveRunError:
        return {}
