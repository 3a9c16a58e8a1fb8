"""Run folders: runs/<YYYYmmdd-HHMMSS>-<name>/ with config.yaml, metrics.jsonl, checkpoints/, summary.json."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
from array import array
from pathlib import Path

from torchtui.engine import protocol as p
from torchtui.engine.errors import UserError
from torchtui.engine.files import atomic_write_bytes, atomic_write_text

RUNS_ENV = "TORCHTUI_RUNS_DIR"


def default_runs_dir() -> Path:
    """Where run folders go when no --runs-dir is given: $TORCHTUI_RUNS_DIR; else runs/ under the working
    directory when it exists (a project keeps its runs); else one folder for all of the user's runs,
    $XDG_DATA_HOME/torchtui/runs (~/.local/share/torchtui/runs), so `torchtui runs` lists a run wherever
    it was started (a runs/ in each folder a command ran in could not be found again)."""
    if os.environ.get(RUNS_ENV):
        return Path(os.environ[RUNS_ENV])
    local = Path.cwd() / "runs"
    return local if local.is_dir() else user_runs_dir()


def user_runs_dir() -> Path:
    """The user's own runs folder: $XDG_DATA_HOME/torchtui/runs, else ~/.local/share/torchtui/runs."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "torchtui" / "runs"


def strict_json(value):
    """A copy with NaN and ±inf as None: JSON has no such numbers, and strict parsers (jq, browsers,
    most languages' defaults) reject the NaN/Infinity tokens Python would write."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def dumps(value, **kwargs) -> str:
    """json.dumps of strict_json(value), refusing anything that is still not plain JSON."""
    return json.dumps(strict_json(value), allow_nan=False, **kwargs)


def slug(name: str) -> str:
    # Short enough for any file system's name limit, whatever the preset's name.
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:64].strip("-.") or "run"


class RunDamaged(UserError):
    """A run folder's files are damaged where a command would have to rewrite them; says what to do."""


class RunInUse(UserError):
    """Another live process writes this run folder; the message names its pid."""


def flock_holders(path: Path) -> set[int] | None:
    """The pids /proc/locks says hold a flock on `path` (without taking it), or None where it cannot say.

    Matched by inode: on overlay file systems the device /proc/locks names differs from stat's."""
    try:
        inode = str(os.stat(path).st_ino)
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    holders = set()
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2204105 0 EOF"; waiters have "->" after "1:"
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rpartition(":")[2] == inode:
            holders.add(int(parts[4]) if parts[4].isdigit() else -1)
    return holders


class RunFolder:
    """One run's files. Metrics are appended as JSON lines; everything else is replaced atomically.

    The process that writes a run holds an exclusive lock on its `.lock` file (fcntl.flock, which the kernel
    releases when the process dies, so a kill -9 leaves no stale lock); the file says the writer's pid.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self.write_failed = ""  # why a write of this run failed (it then ends failed): callbacks/events.py
        self.last_good_step: int | None = None  # the step of the last last.pt known whole on disk

    @classmethod
    def create(cls, runs_dir: Path | str | None, name: str) -> RunFolder:
        """Make a new, uniquely named folder (a -2, -3 … suffix when two runs start in the same second)."""
        root = Path(runs_dir) if runs_dir else default_runs_dir()
        root.mkdir(parents=True, exist_ok=True)
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(name)}"
        for n in range(1, 1000):
            path = root / (base if n == 1 else f"{base}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            (path / "checkpoints").mkdir()
            return cls(path)
        raise FileExistsError(f"could not create a run folder under {root}")

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def curve_path(self) -> Path:
        """The train loss per step as little-endian float64 triplets (step, epoch, loss): a copy of what
        metrics.jsonl's step rows say, which the runs overlay reads in one call (curves.read_curves)."""
        return self.path / "curve.f64"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def log_path(self) -> Path:
        return self.path / "engine.log"

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete temp files a killed write left behind (they never replaced a real file); returns them."""
        stale = [path for folder in (self.path, self.path / "checkpoints") if folder.is_dir()
                 for path in folder.glob(".*.tmp")]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    @property
    def origin_path(self) -> Path:
        return self.path / "origin.json"

    def write_origin(self, origin: dict) -> None:
        """Where the run came from: the preset, the run it branched from, when it was made."""
        atomic_write_text(self.origin_path, dumps(origin, indent=2) + "\n")

    def lock(self) -> None:
        """Become the folder's only writer, or raise RunInUse naming the process that is."""
        import fcntl

        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = self.writer()
            raise RunInUse(f"run {self.run_id} is in use by pid {pid or '(unknown)'}: another train or resume "
                           "writes it; stop that one first (torchtui stop, or ctrl+c in its terminal)") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        """Give the lock up (the pid is cleared first, so readers never see a finished writer as live)."""
        import fcntl

        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def writer(self) -> int | None:
        """The pid of the live process writing this run, or None (read without locking: it never blocks one)."""
        try:
            pid = int((self.path / ".lock").read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            return None
        if pid <= 0:
            return None
        holders = flock_holders(self.path / ".lock")
        if holders is not None:  # the lock itself says: a pid that lives but holds nothing is not the writer
            return pid if holders else None
        from torchtui.engine.live import alive

        return pid if alive(pid) else None

    def checkpoint_path(self, kind: str) -> Path:
        return self.path / "checkpoints" / f"{kind}.pt"

    def write_config(self, config: dict) -> None:
        import yaml  # not at import: an attaching client imports this module on its way to the first frame

        atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))

    def read_config(self) -> dict:
        import yaml

        return yaml.safe_load(self.config_path.read_text(encoding="utf-8")) or {}

    def append_metrics(self, rows: list[dict | str], curve: list[float] | None = None) -> OSError | None:
        """Append rows (dicts, or lines already in JSON) in one write, then `curve` (step, epoch, loss
        triplets of the same steps) to curve.f64; a kill mid-write leaves at most a partial last line (dropped
        on read) or a curve.f64 that disagrees (read as absent). A failed write (a full disk) is returned."""
        if not rows:
            return None
        text = "".join((row if isinstance(row, str) else dumps(row)) + "\n" for row in rows)
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as fh:
                fh.write(text)
            if curve:
                with open(self.curve_path, "ab") as fh:
                    fh.write(_float64(curve))
        except OSError as err:
            return err
        return None

    def read_metrics(self, kind: str = "") -> tuple[list[dict], list[int]]:
        """Every complete row of metrics.jsonl (only those of `kind`, e.g. "hparams", when given: the other lines
        are judged by their shape, not parsed), and the numbers of the damaged lines before its last one (a torn
        last line is what a kill leaves, not damage)."""
        if not self.metrics_path.exists():
            return [], []
        rows, damaged = [], []
        lines = self.metrics_path.read_text(encoding="utf-8", errors="replace").splitlines()
        marker = f'"type": "{kind}"'
        for number, line in enumerate(lines, 1):
            if kind and marker not in line:
                if not (line.startswith("{") and line.endswith("}")) and number < len(lines):
                    damaged.append(number)
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict):
                rows.append(row)
            elif number < len(lines):
                damaged.append(number)
        return rows, damaged

    def truncate_metrics_after(self, step: int) -> None:
        """Drop rows logged after `step` (the resumed checkpoint), so the resumed stream has no repeats; refused
        when lines are damaged, since the rewrite would drop them."""
        rows, damaged = self.read_metrics()
        if damaged:
            raise RunDamaged(f"resume: {self.metrics_path} has {len(damaged)} damaged line(s) (the first is line "
                             f"{damaged[0]}): resuming rewrites that file and would drop them; keep a copy and "
                             "remove them (or train a new run from its config.yaml)")
        rows = [r for r in rows if not _num(r.get("step", 0)) > step]  # a row without a step number is kept
        atomic_write_text(self.metrics_path, "".join(dumps(r) + "\n" for r in rows))
        curve = [(r["step"], r.get("epoch"), r.get("loss")) for r in rows if r.get("type") == "step"]
        atomic_write_bytes(self.curve_path, _float64([_num(v) for row in curve for v in row]))

    def write_summary(self, summary: dict) -> None:
        atomic_write_text(self.summary_path, dumps(summary, indent=2) + "\n")

    def read_summary(self) -> dict:
        """summary.json as a dict ({} when there is none or it cannot be read)."""
        try:
            data = json.loads(self.summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


REPLAY_CHUNK = 2000  # steps per replayed StepStats: the client's history takes them in batches, like live ones


def replay_events(started, max_bytes: int | None = None, max_step: int | None = None) -> tuple[list, int]:
    """A run's history so far, from its metrics.jsonl, as the events that made it: (events, last step).

    A run server builds a resumed run's history from these (the first `max_bytes` of the file, rows up to
    `max_step`: what the run had when it resumed), then from live events after the last step; a torn last
    line (the run is writing) is skipped.
    """
    path = Path(started.run_dir) / "metrics.jsonl"
    try:
        with open(path, "rb") as fh:
            lines = fh.read(-1 if max_bytes is None else max_bytes).decode("utf-8", "replace").splitlines()
    except OSError:
        return [], -1
    events, steps, last = [], [], -1
    current = dict((started.config or {}).get("train", {}))  # live-changed values as they stand, for old → new
    current.setdefault("base_lr", current.get("lr"))  # the base the run started from: its setup's train.lr
    per_epoch = max(1, started.steps_per_epoch)

    def flush_steps() -> None:
        if steps:
            events.append(_step_stats(started, steps, per_epoch))
            steps.clear()

    for row in parse(lines):
        kind = row_kind(row)
        if max_step is not None and _num(row.get("step", 0)) > max_step:
            continue
        if kind == STEP and isinstance(row.get("step"), int):
            steps.append(row)
            last = max(last, row["step"])
            current["lr"] = row.get("lr", current.get("lr"))
            if len(steps) >= REPLAY_CHUNK:
                flush_steps()
        elif kind == EVAL:  # evaluations and steps feed different series: steps stay in long batches
            metrics = eval_metrics(row)
            events.append(p.EvalResult(started.run_id, row.get("split", "val"), row.get("step", 0),
                                       row.get("epoch", 0), metrics, None, row.get("dead_relu") or {}))
        elif kind == GUARD and row.get("action") in ("rollback", "halve_lr"):  # the spike guard went back here
            events.append(p.RolledBack(started.run_id, row.get("step", 0), row.get("tripped", 0), row.get("reason", ""),
                                       row["action"], row.get("skipped") or []))
        elif kind == HPARAMS:
            changes = {k: [current.get(k, v), v] for k, v in hparams_values(row).items()}
            current.update({k: v for k, (_, v) in changes.items()})
            events.append(p.HparamsChanged(started.run_id, row.get("step", 0), changes))
    flush_steps()
    return events, last


def steps_after(event: p.StepStats, last: int) -> p.StepStats | None:
    """The part of a StepStats after step `last` (None when every step in it was already replayed)."""
    if not event.step or event.step[0] > last:
        return event
    first = next((i for i, s in enumerate(event.step) if s > last), None)
    if first is None:
        return None
    acc = [(s, a) for s, a in zip(event.acc_steps, event.acc) if s > last]
    sampled = [j for j, s in enumerate(event.layer_steps) if s > last]
    return dataclasses.replace(
        event, step=event.step[first:], loss=event.loss[first:], lr=event.lr[first:],
        acc_steps=[s for s, _ in acc], acc=[a for _, a in acc], layer_steps=[event.layer_steps[j] for j in sampled],
        grad_norm=[event.grad_norm[j] for j in sampled], layer_grad_norm=[event.layer_grad_norm[j] for j in sampled],
        update_ratio=[event.update_ratio[j] for j in sampled])


def _step_stats(started, rows: list[dict], per_epoch: int) -> p.StepStats:
    sampled = [r for r in rows if isinstance(r.get("layers"), dict)]
    names = list(started.layers)

    def column(key: str) -> list:
        return [[(r["layers"].get(name) or {}).get(key) or 0.0 for name in names] for r in sampled]

    with_acc = [r for r in rows if r.get("acc") is not None]
    return p.StepStats(
        run_id=started.run_id, step=[r["step"] for r in rows], epoch=rows[-1]["step"] / per_epoch,
        loss=[_num(r.get("loss")) for r in rows], lr=[_num(r.get("lr")) for r in rows],
        acc_steps=[r["step"] for r in with_acc], acc=[r["acc"] for r in with_acc],
        layer_steps=[r["step"] for r in sampled], grad_norm=[_num(r.get("grad_norm")) for r in sampled],
        layer_grad_norm=column("grad_norm"), update_ratio=column("update_ratio"),
        samples_per_s=0.0, eta_s=None, progress=rows[-1]["step"] / max(1, started.total_steps))


def _float64(values: list[float]) -> bytes:
    data = array("d", values)
    if sys.byteorder != "little":
        data.byteswap()
    return data.tobytes()


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


# ---------------------------------------------------------------- metrics.jsonl's rows, one home
# How the engine writes them (stats, events, steering) and how the replay on attach, the runs list, the
# curves and export read them back. A row is one JSON object per line, `type` first:
#     {"type": "step", "step": N, "epoch": E, "loss": L, "lr": LR, ...}   lr: the lr that step used
#     {"type": "eval", "split": "val", "step": N, "epoch": E, "loss": …, "accuracy": …, "dead_relu": {…}}
#     {"type": "hparams", "step": N, "lr": …, "base_lr": …, "weight_decay": …, "grad_clip": …}
# Step rows start with exactly `{"type": "step", "step": N, "epoch": E, "loss": L`, so the runs list and the
# overlay read a run's curve with one regex over the bytes instead of a json.loads per line.

STEP, EVAL, HPARAMS, GUARD = "step", "eval", "hparams", "guard"
STEP_START = b'{"type": "step", "step": '
STEP_ROW = re.compile(rb'\{"type": "step", "step": (\d+), "epoch": ([^,}]+), "loss": ([^,}]+)')
EVENT_ROW = re.compile(rb'\{"type": "(?:eval|hparams)"[^\n]*')
EVAL_KEYS = ("type", "split", "step", "epoch", "dead_relu")  # an eval row's keys that are not its metrics


def number(value: float) -> str:
    """A number as JSON: repr of a finite float is valid JSON; NaN and inf are not, so they become null."""
    return repr(float(value)) if math.isfinite(value) else "null"


def step_line(step: int, epoch: float, loss: float, lr: float, acc: float | None = None) -> str:
    """A step row with scalars only, formatted directly: a dict through json.dumps per step cost ~2 % of a
    small MLP's throughput."""
    tail = f', "acc": {number(acc)}' if acc is not None else ""
    return (f'{{"type": "step", "step": {step}, "epoch": {number(epoch)}, "loss": {number(loss)}, '
            f'"lr": {number(lr)}' + tail + "}")


def step_row(step: int, epoch: float, loss: float, lr: float, grad_norm: float, acc: float | None,
             layers: dict) -> dict:
    """A sampled step's row, with its per-layer statistics (written through json.dumps)."""
    row = {"type": STEP, "step": step, "epoch": epoch, "loss": loss, "lr": lr, "grad_norm": grad_norm}
    if acc is not None:
        row["acc"] = acc
    row["layers"] = layers
    return row


def eval_row(split: str, step: int, epoch: int, metrics: dict, dead_relu: dict) -> dict:
    return {"type": EVAL, "split": split, "step": step, "epoch": epoch, **metrics, "dead_relu": dead_relu}


def hparams_row(step: int, values: dict) -> dict:
    """A live change: the new values (lr is the current lr from then on, base_lr the new base)."""
    return {"type": HPARAMS, "step": step, **values}


def row_kind(row) -> str | None:
    """step, eval or hparams (None for what is not a row)."""
    return row.get("type") if isinstance(row, dict) else None


def eval_metrics(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in EVAL_KEYS}


def hparams_values(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("type", "step")}


def parse(lines: list[str]) -> list:
    """Every line parsed: as one JSON array (one call instead of one per line, 40 % faster on a 100k-step
    run), or line by line, skipping the bad ones, when a line is torn or damaged."""
    try:
        return json.loads("[" + ",".join(line for line in lines if line.strip()) + "]")
    except ValueError:
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out
