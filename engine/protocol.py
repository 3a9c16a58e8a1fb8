"""Every Command into the engine and every Event out of it: frozen dataclasses of plain Python values.

Clients (the headless CLI, the app, `torchtui attach`, tests) talk to the engine only through these, whether
it runs in a thread of their own process, in a worker process behind a pipe, or in a run server of its own
session behind a Unix socket (several clients at once). Nothing here holds a tensor: values are pulled to the
host in the engine, in batches, before an event is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Run states. A run is active in RUNNING or PAUSED; the others accept the next Start.
IDLE, RUNNING, PAUSED = "idle", "running", "paused"
FINISHED, STOPPED, DIVERGED, FAILED = "finished", "stopped", "diverged", "failed"
ACTIVE_STATES = (RUNNING, PAUSED)
END_STATES = (FINISHED, STOPPED, DIVERGED, FAILED)


# ---------------------------------------------------------------- commands (client → engine)

@dataclass(frozen=True)
class Start:
    """Start a run of `config` (a plain dict, validated by the engine); `resume` is a run folder to continue."""
    config: dict = field(default_factory=dict)
    resume: str | None = None
    runs_dir: str | None = None
    # Where the setup came from, recorded in the new run's origin.json: {"preset": its name or file}, and
    # {"sweep": name, "trial": number} for a sweep's trial.
    # The parent run (when model.pretrained is a run's checkpoint) is found from the config itself.
    origin: dict = field(default_factory=dict)
    checkpoint: str = "last"  # which checkpoint a resume continues from: last or best
    request_id: int = 0       # echoed by the run's RunStarted: a client knows which run is the one it asked for
    interactive: bool = False  # sent by the app: train.guard auto means ask (headless, it means rollback)


@dataclass(frozen=True)
class Pause:
    """Pause the active run between steps."""


@dataclass(frozen=True)
class Resume:
    """Resume a paused run."""


@dataclass(frozen=True)
class Step:
    """Train exactly `n` batches while paused, then stay paused."""
    n: int = 1


@dataclass(frozen=True)
class Stop:
    """End the active run after the current step; last.pt is saved and the state becomes stopped."""


@dataclass(frozen=True)
class SetHparams:
    """Change hyperparameters of the active run from its next step; None leaves a value alone.

    Two lrs: `lr` sets the base lr (train.lr, what a schedule is shaped from), `current_lr` the lr of the next
    step; either scales the whole schedule by one factor (engine/run/steering.py). `lr_scale` multiplies both
    as they are when the command is applied, so two quick ×2 presses make ×4. The change is checked whole
    first: a refused one (an Error) changes nothing.
    """
    lr: float | None = None
    lr_scale: float | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    current_lr: float | None = None


@dataclass(frozen=True)
class EvaluateNow:
    """Evaluate the validation split now, between steps."""


@dataclass(frozen=True)
class CheckpointNow:
    """Write last.pt now, between steps."""


@dataclass(frozen=True)
class Shutdown:
    """Stop any active run (saving last.pt) and end the engine thread."""


@dataclass(frozen=True)
class DescribeModel:
    """Ask for the model summary of `config` without starting a run; answered by ModelDescribed."""
    config: dict = field(default_factory=dict)
    request_id: int = 0


@dataclass(frozen=True)
class ListDevices:
    """Ask which devices torch can use, with memory; answered by DevicesListed."""
    request_id: int = 0


@dataclass(frozen=True)
class PreviewData:
    """Ask for split sizes and a sample of `config`'s data; answered by DataPreviewed."""
    config: dict = field(default_factory=dict)
    max_points: int = 500
    request_id: int = 0


@dataclass(frozen=True)
class FindLr:
    """LR range test on a copy of the active run's model and optimizer (idle: `config`'s); answered by LrFound."""
    config: dict = field(default_factory=dict)
    start: float = 1e-7
    end: float = 10.0
    steps: int = 100
    request_id: int = 0


@dataclass(frozen=True)
class ListSnapshots:
    """Ask for the active run's in-memory snapshots; answered by SnapshotsListed."""
    request_id: int = 0


@dataclass(frozen=True)
class Rewind:
    """Branch the active run from a snapshot (newest at/before `step`, or `back` steps back), `changes` applied."""
    step: int | None = None
    back: int = 0
    changes: dict = field(default_factory=dict)
    run_id: str | None = None  # the run meant: refused when another is active (None: the active one)
    request_id: int = 0


@dataclass(frozen=True)
class GuardAnswer:
    """Answer a GuardTripped that paused the run: rollback, halve_lr (rollback, then lr ÷2) or continue."""
    action: str
    run_id: str | None = None


# ---------------------------------------------------------------- events (engine → client)

@dataclass(frozen=True)
class EngineReady:
    """The engine thread is up and torch is imported; it accepts commands."""
    torch_version: str
    pid: int


@dataclass(frozen=True)
class StateChanged:
    """The run's state changed; `reason` says why (e.g. the diverged step, the early-stop metric)."""
    run_id: str | None
    state: str
    reason: str = ""


@dataclass(frozen=True)
class RunStarted:
    """A run began (or resumed): where it writes, what it trains and how long it will take."""
    run_id: str
    run_dir: str
    name: str
    task: str
    loss: str
    device: str
    params: int
    trainable: int
    splits: dict
    steps_per_epoch: int
    total_steps: int
    epochs: int
    start_step: int
    start_epoch: int
    config: dict
    class_names: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    world_size: int = 1  # processes training it together (data parallel); batch sizes are per process
    request_id: int = 0  # the Start's: the client that sent it knows this run is its own (0: not asked for)
    base_lr: float = 0.0  # the base lr it starts (or resumes) with: train.lr as live changes left it
    threads: int = 0  # torch's CPU threads in the process that trains it (0: not reported)


@dataclass(frozen=True)
class StepStats:
    """A batch of per-step statistics, pulled from the device in one sync.

    `step`, `loss` and `lr` hold one value per step; `epoch` is the fractional epoch at the last of them.
    Batch accuracy (classification only) is sampled every few steps: `acc` at `acc_steps`. Gradient
    statistics are sampled every `stats_every` steps (auto: ~10 times a second), at `layer_steps`: the
    global `grad_norm`, and per layer (rows aligned with `layers` of RunStarted) `layer_grad_norm` and `update_ratio`.
    """
    run_id: str
    step: list
    epoch: float
    loss: list
    lr: list
    acc_steps: list
    acc: list
    layer_steps: list
    grad_norm: list
    layer_grad_norm: list
    update_ratio: list
    samples_per_s: float
    eta_s: float | None
    progress: float
    mem_allocated: int | None = None
    mem_reserved: int | None = None
    data_wait: float | None = None      # streamed data: the share of the time spent waiting for batches


@dataclass(frozen=True)
class RankStats:
    """Each data-parallel rank's figures since the last flush, a list entry per rank (seconds per step; bytes)."""
    run_id: str
    step: int
    hosts: list
    data_wait: list        # waiting for batches; compute: forward, backward, optimizer; comm_wait: the rest
    compute: list
    comm_wait: list
    samples_per_s: list
    memory: list           # CUDA's allocated bytes on a GPU, the process's RSS on the CPU
    slowest: int = -1      # the rank the others wait for (most data wait + compute per step)
    cause: str = ""        # "data wait" or "compute"

    def rows(self) -> list[dict]:
        """One dict per rank (host, rank, the figures, slowest), as `torchtui ps --json` shows them."""
        keys, hosts = ("data_wait", "compute", "comm_wait", "samples_per_s", "memory"), self.hosts
        return [{"host": hosts[i] if i < len(hosts) else "", "rank": i, **{k: getattr(self, k)[i] for k in keys},
                 "slowest": i == self.slowest} for i in range(len(self.compute))]


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one evaluation of a split (val during training, test at the end)."""
    run_id: str
    split: str
    step: int
    epoch: int
    metrics: dict
    confusion: list | None = None
    dead_relu: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Predictions:
    """What the model predicts after an evaluation, for the prediction view.

    kind "grid" (2-D classification): `grid[row][col]` is the predicted class at x = x_min + (col + 0.5) *
    (x_max - x_min) / cols, y = y_max - (row + 0.5) * (y_max - y_min) / rows (row 0 at the top), in the
    model's input units (standardised when data.standardize is on). kind "curve" (1-D regression): predictions
    `curve_y` at `curve_x`. Sample points (train and val, up to a few hundred each) come along for plotting.
    kind "series" (any other regression, e.g. (T, F) windows): held-out samples in order (sorted by the true
    value when the data was shuffled), `val_x` their index, `val_y` the true target, `curve_y` the prediction.
    kind "images" (image classification): a few held-out `images` ([C][H][W] lists in 0..1), `predicted` their
    predicted class and `val_y` their true class. kind "text" (next-token data): `text` generated after `prompt`
    (config predict.*). Other classification has no Predictions: the UI shows EvalResult.confusion.
    """
    run_id: str
    step: int
    epoch: int
    kind: str
    x_min: float = 0.0
    x_max: float = 0.0
    y_min: float = 0.0
    y_max: float = 0.0
    grid: list = field(default_factory=list)
    curve_x: list = field(default_factory=list)
    curve_y: list = field(default_factory=list)
    train_x: list = field(default_factory=list)
    train_y: list = field(default_factory=list)
    val_x: list = field(default_factory=list)
    val_y: list = field(default_factory=list)
    held_out: str = "val"   # which split val_x/val_y come from: val, or test when there is no val split
    images: list = field(default_factory=list)     # kind "images": a few [C][H][W] pictures in 0..1
    predicted: list = field(default_factory=list)  # kind "images": the model's class for each picture
    text: str = ""     # kind "text" (next-token data): a sample generated from `prompt` by the model as it is
    prompt: str = ""
    note: str = ""     # kind "text": why there is no text (no tokenizer, a prompt it cannot encode)


@dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint was written atomically; `kind` is last, best or manual."""
    run_id: str
    path: str
    kind: str
    step: int
    epoch: int


@dataclass(frozen=True)
class HparamsChanged:
    """A live change took effect after `step` steps: name → [old, new]. "lr" is the current lr (what the next
    step uses), "base_lr" the base the schedule is shaped from (train.lr); an lr change carries both."""
    run_id: str
    step: int
    changes: dict


@dataclass(frozen=True)
class History:
    """A run's charts so far in one message, sent by a run server after RunStarted to a client that attaches
    (or to every client when a run resumes): `state` is the server's RunHistory (engine/history/) as plain
    values; the client draws it in place of every earlier event of the run, then takes the live ones after it."""
    run_id: str
    state: dict


@dataclass(frozen=True)
class Log:
    """A line for the log: level is info, warning or error."""
    run_id: str | None
    level: str
    message: str


@dataclass(frozen=True)
class Error:
    """Something failed; `traceback` holds the full text when there is one."""
    run_id: str | None
    message: str
    traceback: str = ""


@dataclass(frozen=True)
class RunFinished:
    """The run ended in `state`; `summary` is what summary.json holds."""
    run_id: str
    state: str
    summary: dict


@dataclass(frozen=True)
class ModelDescribed:
    """Reply to DescribeModel: the summary as plain values, or an error message."""
    request_id: int
    summary: dict | None
    text: str = ""
    error: str = ""


@dataclass(frozen=True)
class DevicesListed:
    """Reply to ListDevices: one dict per device (kind, name, memory in bytes where known)."""
    request_id: int
    devices: list


@dataclass(frozen=True)
class DataPreviewed:
    """Reply to PreviewData: task, split sizes, per-class train counts, and a sample of the train split.

    Rows (and flattened sequences) come as up to max_points `x`/`y`; image data instead as a few
    `images` ([C][H][W] lists scaled to 0..1) with their `image_labels`.
    """
    request_id: int
    task: str = ""
    sizes: dict = field(default_factory=dict)
    x: list = field(default_factory=list)
    y: list = field(default_factory=list)
    class_names: list = field(default_factory=list)
    error: str = ""
    input_shape: list = field(default_factory=list)
    images: list = field(default_factory=list)
    image_labels: list = field(default_factory=list)
    class_counts: list = field(default_factory=list)
    columns: list = field(default_factory=list)  # CSV: one "name: type, missing, distinct" line per column


@dataclass(frozen=True)
class LrFound:
    """Reply to FindLr: [lr, smoothed loss] points and the suggested lr, or an error.

    `suggested_lr` is `steepest_lr` (steepest descent of the smoothed loss), else `minimum_lr` (the lr of the
    lowest smoothed loss ÷ 10). `run_id` and `step` say which run's weights it started from (None: a fresh
    model of the config); `stopped` says why it ended before its last step ("" if it did not).
    """
    request_id: int
    points: list = field(default_factory=list)
    suggested_lr: float | None = None
    steepest_lr: float | None = None
    minimum_lr: float | None = None
    stopped: str = ""
    run_id: str | None = None
    step: int = 0
    seconds: float = 0.0
    notes: list = field(default_factory=list)  # warnings for the user (e.g. a device fallback)
    error: str = ""
    traceback: str = ""


@dataclass(frozen=True)
class SnapshotsListed:
    """Reply to ListSnapshots: {step, epoch, time, loss, val, run_id, bytes} per snapshot, oldest first."""
    request_id: int
    run_id: str | None
    snapshots: list = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class Branched:
    """A Rewind stopped `run_id`; `branch_id` continues from `parent_id`'s snapshot at `step` (RunStarted follows)."""
    run_id: str
    parent_id: str
    parent_dir: str
    branch_id: str
    branch_dir: str
    step: int
    changes: dict = field(default_factory=dict)
    request_id: int = 0


@dataclass(frozen=True)
class GuardTripped:
    """The spike guard saw a bad step; `action` ask (paused for a GuardAnswer), rollback or stop."""
    run_id: str
    step: int
    kind: str
    reason: str
    action: str
    value: float | None = None
    batches: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    worst: list = field(default_factory=list)
    snapshot_step: int | None = None


@dataclass(frozen=True)
class RolledBack:
    """The run went back to `step` in place (the guard); clients drop what they drew after it."""
    run_id: str
    step: int
    from_step: int
    reason: str
    action: str = "rollback"
    skipped: list = field(default_factory=list)
    changes: dict = field(default_factory=dict)


# Each request and the event that answers it (carrying the request's id).
REPLIES = {DescribeModel: ModelDescribed, ListDevices: DevicesListed, PreviewData: DataPreviewed,
           FindLr: LrFound, ListSnapshots: SnapshotsListed}

COMMANDS = (Start, Pause, Resume, Step, Stop, SetHparams, EvaluateNow, CheckpointNow, Shutdown,
            DescribeModel, ListDevices, PreviewData, FindLr, ListSnapshots, Rewind, GuardAnswer)
EVENTS = (EngineReady, StateChanged, RunStarted, StepStats, EvalResult, Predictions, CheckpointSaved, HparamsChanged,
          History, Log, Error, RunFinished, ModelDescribed, DevicesListed, DataPreviewed, LrFound, SnapshotsListed,
          Branched, GuardTripped, RolledBack)


def is_plain(value: Any) -> bool:
    """True when `value` is built only of None, bool, int, float, str, list, tuple and dict: exactly those
    types, not subclasses (torch's version string is a str subclass whose unpickling imports torch)."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) in (list, tuple):
        return all(is_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    return False
