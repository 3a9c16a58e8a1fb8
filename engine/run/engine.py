"""The engine thread: a state machine that starts runs, steers them from its inbox and reports events."""

from __future__ import annotations

import gc
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from torchtui.engine import protocol as p
from torchtui.engine.errors import UserError
from torchtui.engine.formatting import fmt_step
from torchtui.engine.run import loop
from torchtui.engine.run.callbacks import Callback, CallbackList
from torchtui.engine.run.callbacks.checkpoints import Checkpoints
from torchtui.engine.run.callbacks.early_stop import EarlyStopping
from torchtui.engine.run.callbacks.events import EvalEvents, deliver, write_failed
from torchtui.engine.run.callbacks.predictions import PredictionsCallback
from torchtui.engine.run.callbacks.stats import StatsCallback
from torchtui.engine.run.controls import Controls
from torchtui.engine.run.prepare import checkpoint_payload, import_soon, layer_of_param, prepare_run
from torchtui.engine.run.session import Session
from torchtui.engine.run.steering import apply_live_change
from torchtui.engine.run.sync import SyncedControls

OOM_HINT = "CUDA ran out of memory: lower train.batch_size (or the model size) and start again"


class Engine:
    """Owns the inbox and the engine thread. Clients `send` commands; events go to `emit`."""

    def __init__(self, emit: Callable[[object], None], runs_dir: str | None = None):
        self.emit = emit
        self.runs_dir = runs_dir
        self.session = Session(emit)  # the state machine, the inbox and the active run: one owner
        self.inbox = self.session.inbox
        self.thread = threading.Thread(target=self._main, name="torchtui-engine", daemon=True)

    @property
    def state(self) -> str:
        return self.session.state

    @property
    def run(self) -> loop.Run | None:
        return self.session.run

    def start(self) -> Engine:
        self.thread.start()
        return self

    def send(self, command) -> None:
        self.inbox.put(command)

    def join(self, timeout: float | None = None) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    # ------------------------------------------------------------ the thread

    def _main(self) -> None:
        # str(): torch.__version__ is a str subclass defined in torch; pickled as is, unpickling it would
        # import torch (2 s, 200 MB) in the UI process.
        self.emit(p.EngineReady(str(torch.__version__), os.getpid()))
        # Nobody has asked for a run yet: what the first optimizer would import (7.9 s on a loaded 2-core
        # machine after space) loads now, so space starts training at once.
        import_soon("torch._dynamo")
        while not self.session.shutdown:
            command = self.inbox.get()
            if isinstance(command, p.Shutdown):
                break
            try:
                self.handle_idle(command)
            except Exception as err:  # noqa: BLE001 - the engine must outlive any one command
                self.emit(p.Error(None, f"{type(err).__name__}: {err}", traceback.format_exc()))

    def handle_idle(self, command) -> None:
        """A command that arrives while no run is active."""
        if isinstance(command, p.Start):
            self._run(command)
        elif self._answer(command):
            pass
        elif isinstance(command, (p.ListSnapshots, p.Rewind)):  # snapshots live only while their run trains
            why = "no run is active: snapshots are kept in memory only while a run trains (they are not checkpoints)"
            self.emit(p.SnapshotsListed(command.request_id, None, [], why) if isinstance(command, p.ListSnapshots)
                      else p.Error(None, f"rewind: {why}; resume a stopped run from its checkpoint instead"))
        else:
            what = IDLE_WORDS.get(type(command), type(command).__name__)
            self.emit(p.Log(None, "warning", f"cannot {what}: no run is active (start one first)"))

    def _answer(self, command) -> bool:
        """Reply to a request that needs torch but no run; False if `command` is not a request."""
        from torchtui.engine.run.requests import answer

        return answer(command, self.emit)

    def _set_state(self, state: str, run_id: str | None, reason: str = "") -> None:
        self.session.set_state(state, run_id, reason)

    @property
    def busy(self) -> bool:
        """A run is being prepared or trained (here, or by the ranks of a data-parallel run)."""
        return self.session.busy

    def _run(self, command: p.Start) -> None:
        self.session.busy = True
        self.session.begin(command.request_id)
        try:
            if _data_parallel(command):
                from torchtui.engine.run.launcher import run_distributed

                run_distributed(self, command)  # the ranks train in processes of their own; this thread relays
            else:
                self._train(command)
        finally:
            self.session.busy = False

    def run_rank(self, command: p.Start, dist) -> tuple[str, str] | None:
        """Train as one rank of a data-parallel run (distributed.rank_main); (message, traceback) if it failed."""
        return self._train(command, dist)

    def _train(self, command: p.Start, dist=None) -> tuple[str, str] | None:
        """Prepare and train the run in this thread; returns (message, traceback) when it failed with an error."""
        from torchtui.engine.run.requests import forget_data

        forget_data()  # a preview's copy of the data would otherwise sit beside the run's for the whole run
        started = time.perf_counter()
        session = self.session
        try:
            run, state = prepare_run(command, session, self.runs_dir, dist)
        except UserError as err:  # a config, data, model or run folder problem the user can fix
            details = getattr(err, "details", "")
            self.emit(p.Error(None, str(err), details))
            self._set_state(p.FAILED, None, err.first_line)
            return str(err), details
        except Exception as err:  # noqa: BLE001
            self.emit(p.Error(None, f"could not start the run: {type(err).__name__}: {err}", traceback.format_exc()))
            self._set_state(p.FAILED, None, f"{type(err).__name__}: {err}")
            return f"could not start the run: {type(err).__name__}: {err}", traceback.format_exc()
        session.snapshots = _snapshotter(run)  # a new Start: a ring of its own (a branch keeps its parent's)
        failure = self._fit(run, command, state, started, dist)
        while failure is None and session.rewind is not None and not session.shutdown:
            run, started = self._branch(run, command), time.perf_counter()
            if run is None:
                break
            failure = self._fit(run, command, None, started, dist, branched=True)
        session.rewind = None
        return failure

    def _fit(self, run: loop.Run, command: p.Start, state: dict | None, started: float, dist,
             branched: bool = False) -> tuple[str, str] | None:
        """Train a prepared run (a new one, a resumed one or a branch) to its end and report it."""
        session = self.session
        if branched:
            session.begin(session.request_id)  # not paused, no stop asked for: the parent's controls are over
        session.guard = _guard(run, command)
        session.attach(run, _callbacks(session, run, state))
        run.folder.last_good_step = run.step if state is not None else None  # what a failed write falls back on
        if branched:
            self._restore_branch(run)
        # The first snapshot at the first step; not a branch's (its parent's snapshot of that step is there, and a
        # second rewind to it then branches the parent again: a sibling).
        session.pending = session.snapshots is not None and not branched
        self.emit(_run_started(run, command))
        self._set_state(p.RUNNING, run.run_id)
        if run.resume_edits and apply_live_change(run, p.SetHparams(**run.resume_edits), resumed=True):
            self.emit(p.Log(run.run_id, "info", f"resumed with {_edit_text(run.resume_edits)} from step "
                                                f"{fmt_step(run.step)}: recorded in metrics.jsonl as a live change; "
                                                "config.yaml keeps the setup the run started with"))
        if branched and session.rewind.changes:
            apply_live_change(run, p.SetHparams(**session.rewind.changes))
        session.rewind = None
        failure = None
        frozen = _freeze_for_training()
        try:
            end_state = loop.fit(run)
        except torch.cuda.OutOfMemoryError as err:
            run.request_stop(p.FAILED, OOM_HINT)
            failure = f"{OOM_HINT} ({err})".strip(), traceback.format_exc()
            self.emit(p.Error(run.run_id, *failure))
            end_state = p.FAILED
        except UserError as err:  # streamed data found bad as it is read (a NaN in a batch): the user's to fix
            run.request_stop(p.FAILED, err.first_line)
            failure = str(err), ""
            self.emit(p.Error(run.run_id, *failure))
            end_state = p.FAILED
        except Exception as err:  # noqa: BLE001 - user code (models, data) may raise anything
            run.request_stop(p.FAILED, f"{type(err).__name__}: {err}")
            failure = f"the run failed: {type(err).__name__}: {err}", traceback.format_exc()
            self.emit(p.Error(run.run_id, *failure))
            end_state = p.FAILED
        finally:
            if frozen:
                gc.unfreeze()
        if dist is not None:
            dist.note(run.step, end=end_state, reason=run.end_reason)
        if dist is None or dist.leader:  # only rank 0 of a data-parallel run reports and writes files
            self._finish(run, end_state, time.perf_counter() - started, resumed=state is not None)
        session.detach()
        return failure

    def _branch(self, parent: loop.Run, command: p.Start) -> loop.Run | None:
        """The branch a Rewind asked for, once its parent has ended (None: it could not be made; an Error says why)."""
        from torchtui.engine.run.rewind import branch_run

        request = self.session.rewind
        try:
            run = branch_run(parent, request)
        except OSError as err:
            self.emit(p.Error(parent.run_id, f"rewind: cannot make the branch's folder beside {parent.folder.path} "
                                             f"({err.strerror or err})"))
            self.session.rewind = None
            return None
        snap = request.snap
        self.emit(p.Branched(parent.run_id, snap.run_id, str(Path(snap.run_dir).resolve()), run.run_id,
                             str(run.folder.path), snap.step, dict(request.changes), request.request_id))
        return run

    def _restore_branch(self, run: loop.Run) -> None:
        from torchtui.engine.run.snapshots import restore

        snap = self.session.rewind.snap
        restore(run, snap)
        run.jumped = False  # fit starts from the restored position anyway
        self.session.snapshots.ring.drop_after(snap.step)  # the parent's later ones are another timeline

    def _finish(self, run: loop.Run, end_state: str, seconds: float, resumed: bool = False) -> None:
        if run.writer is not None:  # every row and checkpoint on disk (and reported) before the summary
            deliver(run, wait=True)
            run.writer.close()
        failed_write = run.folder.write_failed
        if failed_write and end_state != p.FAILED:  # the write failed after the loop ended (its last rows)
            end_state, run.session.end_reason = p.FAILED, failed_write
        # A resumed run's summary adds to what the run had: its time so far, and its last metrics where this part
        # evaluated nothing (a summary is never rewritten with less than it held).
        before = run.folder.read_summary() if resumed else {}
        seconds += before.get("seconds", 0.0) if isinstance(before.get("seconds"), (int, float)) else 0.0
        summary = {
            "state": end_state, "reason": run.end_reason, "run_id": run.run_id, "run_dir": str(run.folder.path),
            "epochs": run.epoch, "steps": run.step, "seconds": round(seconds, 3),
            "val": _scalars(run.last_val) or _earlier(before, "val"),
            "test": _scalars(run.last_test) or _earlier(before, "test"),
            "best": {run.config.train.best_metric: run.best}, "task": run.task, "loss": run.loss_name,
            "device": device_label(run),
        }
        if run.task in ("binary", "multiclass"):  # said, since many expect the positive class's F1 for two classes
            summary["averages"] = {"f1": "macro", "precision": "macro", "recall": "macro"}
        try:
            run.folder.write_summary(summary)
        except OSError as err:  # the outcome says so: never `finished` over a summary that is not on disk
            write_failed(run, self.emit, "summary.json", run.step, err)
            end_state = summary["state"] = p.FAILED
            summary["reason"] = run.end_reason if run.end_reason else run.folder.write_failed
        finally:
            run.folder.unlock()  # the summary is the last thing this run writes
        self.emit(p.RunFinished(run.run_id, end_state, summary))
        self._set_state(end_state, run.run_id, run.end_reason)


def _callbacks(session: Session, run: loop.Run, state: dict | None) -> CallbackList:
    """The run's callbacks, each given what it needs at construction: statistics, the reports and files (rank 0
    of a data-parallel run only), early stopping, and the controls that apply commands between steps."""
    early = _early_stopping(run)
    if state and state.get("early_stop"):
        early.load_state_dict(state["early_stop"])
    stats = StatsCallback(session.emit, run.layer_names, layer_of_param(run), run.config.train.stats_every)
    stats.buffer.per_step_rows = run.dist is not None
    leader = run.dist is None or run.dist.leader
    checkpoints = Checkpoints(session.emit, lambda r: checkpoint_payload(r, {"early_stop": early.state_dict()}),
                              run.config.train.checkpoint_every) if leader else None
    reporting = [EvalEvents(session.emit), PredictionsCallback(session.emit), checkpoints] if leader else []
    controls = (SyncedControls if run.dist is not None else Controls)(session, run, checkpoints, stats)
    guard = [session.guard] if session.guard is not None else []  # before the checkpoints: its end comes first
    return CallbackList([stats, *guard, *reporting, early, controls])


def _snapshotter(run: loop.Run):
    """The session's snapshots for a new run (None: train.snapshots off, or data parallel, which takes none)."""
    from torchtui.engine.run.snapshots import Snapshotter, auto_budget

    cfg = run.config.train
    if not cfg.snapshots or run.dist is not None:
        return None
    budget = int(cfg.snapshot_memory * 1e6) if cfg.snapshot_memory else auto_budget()
    return Snapshotter(cfg.snapshot_every, budget)


def _guard(run: loop.Run, command: p.Start):
    """The run's spike guard (None: off)."""
    from torchtui.engine.run.guard import Guard, resolve_mode

    mode = resolve_mode(run.config, command.interactive, run.dist is not None)
    if mode == "off":
        return None
    cfg = run.config.train
    return Guard(mode, cfg.guard_z, cfg.guard_max_rollbacks)


def _freeze_for_training() -> bool:
    """Take everything alive now (torch's modules, the model, the data) out of the collector's scans while the
    run trains: its collections walked them all, 8 % of a small MLP's instructions per step (bench_steps.py).
    The run unfreezes them after it, so what of it becomes garbage is collected as usual. Not where someone
    else froze objects already (an app in the same process): their unfreeze is theirs."""
    if gc.get_freeze_count():
        return False
    gc.freeze()
    return True


# What a command asks for, in the words of the log line that says it cannot be done without a run.
IDLE_WORDS = {p.Pause: "pause", p.Resume: "resume", p.Step: "take a step", p.Stop: "stop",
              p.SetHparams: "change the hyperparameters", p.EvaluateNow: "evaluate", p.CheckpointNow: "checkpoint",
              p.GuardAnswer: "answer the spike guard"}


def _data_parallel(command: p.Start) -> bool:
    """Whether the Start asks for several devices (its config, or the resumed run's config.yaml)."""
    from torchtui.engine.config import from_dict
    from torchtui.engine.runs import RunFolder

    try:
        raw = command.config or RunFolder(Path(command.resume)).read_config()
        return from_dict(raw).device.distributed
    except Exception:  # noqa: BLE001 - the run's own start reports what is wrong with it
        return False


def device_label(run: loop.Run) -> str:
    """Where a run trains: cuda:0, or the devices of a data-parallel run (cuda:0,1 ddp · cpu ×2 ddp · cuda ×16 ddp
    on 2 nodes)."""
    if run.dist is None:
        return str(run.device)
    nodes = len(set(run.dist.hosts))
    where = f" on {nodes} nodes" if nodes > 1 else ""  # launched by torchrun or SLURM across machines
    if run.device.type == "cuda" and len(run.dist.devices) == run.dist.world:  # this machine's GPUs, listed
        return f"cuda:{','.join(str(i) for i in run.dist.devices)} ddp"
    return f"{run.device.type} ×{run.dist.world} ddp{where}"


def _edit_text(edits: dict) -> str:
    return ", ".join(f"train.{k} {v:g}" for k, v in edits.items())


def _earlier(summary: dict, key: str) -> dict:
    value = summary.get(key)
    return value if isinstance(value, dict) else {}


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def _early_stopping(run: loop.Run) -> Callback:
    cfg = run.config.train
    if not cfg.early_stop_metric:
        return Callback()
    return EarlyStopping(cfg.early_stop_metric, cfg.early_stop_mode, cfg.early_stop_patience,
                         cfg.early_stop_min_delta)


def _run_started(run: loop.Run, command: p.Start) -> p.RunStarted:
    model = run.plain_model
    total = sum(t.numel() for t in model.parameters())
    return p.RunStarted(
        run_id=run.run_id, run_dir=str(run.folder.path), name=run.config.name, task=run.task, loss=run.loss_name,
        device=device_label(run), params=total, trainable=sum(t.numel() for t in run.params),
        splits=run.data.sizes(), steps_per_epoch=run.steps_per_epoch, total_steps=run.total_steps,
        epochs=run.config.train.epochs, start_step=run.step, start_epoch=run.epoch, config=run.config_dict,
        class_names=list(run.data.class_names), layers=list(run.layer_names),
        world_size=run.dist.world if run.dist is not None else 1, request_id=command.request_id,
        base_lr=run.base_lr, threads=torch.get_num_threads(),
    )
