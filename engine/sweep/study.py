"""Running a sweep with Optuna: its samplers and pruners, its RDB storage, one engine worker per trial.

The study lives in `<sweep folder>/study.db` (SQLite) unless a storage URL is given (PostgreSQL, MySQL: then
several machines work on one sweep). Each trial is a normal run: the engine in a worker process (WorkerHost,
so K trials train in parallel without sharing a GIL), its run folder under the sweep folder. The val metric
of each evaluation is reported to Optuna, whose pruner may stop the trial. Trials keep a heartbeat in the
storage: a sweep killed with -9 leaves trials that stop beating, which the next run of the same command
marks failed and retries (RetryFailedTrialCallback); finished trials are never redone. Each sweep process
also holds a lock on its own file in `.owners/`, so a run started right after a kill knows the dead
process's trials at once, before their heartbeats go stale.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.files import atomic_write_text, held
from torchtui.engine.run.device_config import default_threads
from torchtui.engine.runs import dumps
from torchtui.engine.schema import ConfigError
from torchtui.engine.sweep import SURPLUS, SweepSpec, apply, quiet
from torchtui.engine.sweep.owners import OWNER, OWNERS, Owners
from torchtui.engine.sweep.quiet import TrialEnded
from torchtui.engine.sweep.storage import Storage, safe_url

HEARTBEAT_S = 2   # a running trial writes its heartbeat this often
GRACE_S = 8       # a trial silent this long is stale (its sweep was killed): failed, then retried
SWEEP_FILE = "sweep.yaml"
AWAIT_S = 1.0    # a grid process with no point left looks this often at the points running elsewhere


@dataclasses.dataclass
class TrialView:
    """What the sweep shows of a trial while it runs and after."""
    number: int
    params: dict
    state: str = "running"      # running, complete, pruned, failed, interrupted
    value: float | None = None  # the best val metric so far
    epoch: float = 0.0
    started: float = dataclasses.field(default_factory=time.time)
    seconds: float = 0.0
    run_dir: str = ""
    reason: str = ""


class Sweep:
    """One sweep: `run()` works through the trials still to do and returns the ranked result."""

    def __init__(self, spec: SweepSpec, base: dict, folder: Path, name: str, storage: str | None = None,
                 parallel: int = 1, preset: str = "", devices: list[str] | None = None, threads: int = 1,
                 on_change: Callable[[TrialView], None] | None = None):
        self.spec, self.base, self.folder, self.name = spec, base, Path(folder), name
        self.storage = Storage(storage, self.folder)
        self._study = None
        self.parallel, self.preset, self.threads = max(1, parallel), preset, max(1, threads)
        self.devices = devices or []
        self.on_change = on_change or (lambda view: None)
        self.views: dict[int, TrialView] = {}
        self.stopping = threading.Event()
        self._slots: queue.Queue = queue.Queue()
        for slot in range(self.parallel):
            self._slots.put(slot)
        self._hosts: set = set()
        self._workers: dict = {}  # slot → WorkerHost, kept from trial to trial
        self._lock = threading.Lock()
        self._ran: list[int] = []  # the numbers of the trials this process took, in order
        self.rdb = None  # the SweepStorage under Optuna's cache, once open
        self.owners = Owners(self.folder / OWNERS, self.lock_path)  # this process's lock while run() runs

    # ------------------------------------------------------------------ set up

    def claim_folder(self) -> None:
        """Make the sweep folder, or check that the sweep in it is this one (the same command continues it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / SWEEP_FILE
        mine = {"name": self.name, "preset": self.preset, "sweep": self.spec.to_dict(), "config": self.base}
        if path.exists():
            from torchtui.engine import presets

            try:
                theirs = presets.read_yaml(path)
            except ConfigError:
                theirs = {}
            if {k: theirs.get(k) for k in ("sweep", "config")} != {k: _plain(mine[k]) for k in ("sweep", "config")}:
                raise ConfigError([f"sweep: {self.folder} holds a different sweep (see its {SWEEP_FILE}); pass "
                                   "--name to start another, or remove that folder"])
            return
        import yaml

        atomic_write_text(path, yaml.safe_dump(_plain(mine), sort_keys=False, allow_unicode=True))

    def open(self):
        """Claim the folder and open the study, once: a storage that cannot be used is a StorageError."""
        if self._study is None:
            self.claim_folder()
            trial_runs = sum(1 for d in self.folder.iterdir() if (d / "config.yaml").is_file())
            # Two sweeps started at once on one folder: one makes the study's tables, the other then loads them
            # (they raced to `table studies already exists`).
            with held(self.lock_path):
                self.storage.check_file(trial_runs)
                with self.storage.errors():
                    self._study = self.study()
        return self._study

    def study(self):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        quiet.install()  # an interrupted or failed trial: its row says so, not an Optuna traceback
        # Heartbeats are marked experimental (since 2.8, unchanged since); say nothing about it each run.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        url = self.storage.url
        engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        stale = ({"heartbeat_stale_trial_callback": retry(max_retry=3)} if retry is not None  # optuna >= 4.9
                 else {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=3)})
        from torchtui.engine.sweep import grid, rdb

        self.rdb = rdb.open_storage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                    grace_period=GRACE_S, **stale)
        spec = self.spec
        if spec.method == "grid":
            sampler = grid.QueuedGridSampler(seed=spec.seed)
        elif spec.method == "tpe":
            sampler = optuna.samplers.TPESampler(seed=spec.seed)
        else:
            sampler = optuna.samplers.RandomSampler(seed=spec.seed)
        pruner = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
                  "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
                  "none": lambda: optuna.pruners.NopPruner()}[spec.prune]()
        study = optuna.create_study(storage=self.rdb, sampler=sampler, pruner=pruner, study_name=self.name,
                                    direction=spec.direction, load_if_exists=True)
        if spec.method == "grid":  # queued once, by whichever process sharing the study gets here first
            grid.enqueue(self.rdb, study._study_id, spec.grid_points()[:spec.trials])
        return study

    # ------------------------------------------------------------------ run

    def run(self) -> dict:
        from torchtui.engine.sweep import recover

        study = self.open()
        self.owners.take()
        try:
            recover.abandoned(study, self.owners)
            recover.requeue_interrupted(study, self.rdb)
            for trial in _finished(study):
                self.views[trial.number] = _view_of(trial)
            try:
                self._optimize(study)
            finally:
                for host in self._workers.values():
                    host.close()
                self._workers.clear()
            return self.result(study)
        finally:
            self.owners.give_up()

    def _optimize(self, study) -> None:
        """Trials until the sweep has its count finished. Random and TPE: each process asks for as many as are
        left and Optuna's MaxTrialsCallback stops it when the study has them (processes sharing the study share
        them). Grid: each process takes queued points until none is left, then waits while points run
        elsewhere, to train any whose process died."""
        import optuna
        from optuna.trial import TrialState

        from torchtui.engine.sweep import grid

        is_grid = self.spec.method == "grid"
        while not self.stopping.is_set():
            left = self.spec.trials - len(_finished(study))
            if left <= 0:
                break
            if is_grid and not grid.waiting(study):
                if self._await_others(study):
                    continue
                break
            stop_at = optuna.study.MaxTrialsCallback(self.spec.trials, states=(TrialState.COMPLETE,
                                                                               TrialState.PRUNED))
            ran = len(self._ran)
            study.optimize(self._objective, n_trials=grid.waiting(study) if is_grid else left, n_jobs=self.parallel,
                           callbacks=[] if is_grid else [stop_at], catch=(RuntimeError, ConfigError),
                           gc_after_trial=False)
            numbers = set(self._ran[ran:])
            made = [t for t in study.get_trials(deepcopy=False) if t.number in numbers]
            if made and all(t.state == TrialState.FAIL for t in made):
                break  # every trial of this round failed: the same would happen again
            if not made and not is_grid:
                break

    def stop(self) -> None:
        """Ctrl-C: stop the running trials after their current step (last.pt saved); they count as
        interrupted and run again when the same command is given again."""
        self.stopping.set()
        with self._lock:
            for host in list(self._hosts):
                host.send(p.Stop())

    @property
    def lock_path(self) -> Path:
        return self.folder / ".sweep.lock"

    def _objective(self, trial) -> float:
        if self.owners.tag is not None:  # a later run of the sweep can tell at once whether this process died
            trial.storage.set_trial_system_attr(trial._trial_id, OWNER, self.owners.tag)
        if trial.storage.get_trial_system_attrs(trial._trial_id).get(SURPLUS):  # every grid point is taken
            import optuna

            trial.study.stop()
            raise optuna.TrialPruned("no grid point left")  # ends it quietly; the results leave it out
        self._ran.append(trial.number)
        params = {param.path: _suggest(trial, param) for param in self.spec.params}
        if self.stopping.is_set():  # picked just as Ctrl-C came: its params go to the next run of the sweep
            trial.set_user_attr("interrupted", True)
            trial.study.stop()
            raise TrialEnded("the sweep is stopping")
        view = TrialView(trial.number, params)
        self.views[trial.number] = view
        slot = self._slots.get()
        try:
            return self._train(trial, view, slot)
        finally:
            self._slots.put(slot)
            view.seconds = time.time() - view.started
            self.on_change(view)

    def _train(self, trial, view: TrialView, slot: int) -> float:
        from torchtui.engine.host import WorkerHost

        config = from_dict(apply(self.base, view.params))
        device = config.device
        if self.devices and config.device.device in ("auto", "cuda"):
            device = dataclasses.replace(device, device=self.devices[slot % len(self.devices)])
        if device.threads == 0:
            device = dataclasses.replace(device, threads=self.threads)
        if "train.eval_budget" not in view.params:
            # Every epoch evaluated: trials are compared (and pruned) at the same epochs, never at those the
            # machine's speed happened to leave in (recorded in the trial's config.yaml).
            config = dataclasses.replace(config, train=dataclasses.replace(config.train, eval_budget=0.0))
        config = dataclasses.replace(config, name=f"{config.name}-t{trial.number:03d}", device=device)
        host = self._workers.get(slot)
        if host is None or host.exit_code is not None or not host.process.is_alive():
            # One worker per slot for the whole sweep: torch is imported once, not once per trial.
            host = self._workers[slot] = WorkerHost(runs_dir=str(self.folder), threads=device.threads,
                                                    log_path=str(self.folder / "engine-worker.log"))
        host.drain()  # nothing of an earlier trial is read as this one's
        with self._lock:
            self._hosts.add(host)
        metric, maximise = self.spec.metric, self.spec.direction == "maximize"
        per_epoch = config.train.eval_every == 0
        summary = None
        try:
            host.send(p.Start(config=config.to_dict(), runs_dir=str(self.folder),
                              origin={"preset": self.preset, "sweep": self.name, "trial": trial.number}))
            self.on_change(view)
            while summary is None:
                event = host.get(timeout=1.0)
                if event is None:
                    continue
                if isinstance(event, p.RunStarted):
                    view.run_dir = event.run_dir
                    trial.set_user_attr("run_dir", event.run_dir)
                elif isinstance(event, p.EvalResult) and event.split == "val" and metric in event.metrics:
                    value = float(event.metrics[metric])
                    if view.value is None or (value > view.value if maximise else value < view.value):
                        view.value = value
                    view.epoch = event.epoch
                    trial.report(value, step=int(event.epoch) if per_epoch else event.step)
                    if view.state == "running" and trial.should_prune():
                        view.state = "pruned"
                        host.send(p.Stop())
                    self.on_change(view)
                elif isinstance(event, p.RunFinished):
                    summary = event.summary
                elif isinstance(event, p.StateChanged) and event.state == p.FAILED and event.run_id is None:
                    view.state, view.reason = "failed", event.reason
                    raise TrialEnded(f"trial {trial.number} did not start: {event.reason}")
        except BaseException:
            self._workers.pop(slot, None)
            host.close()  # a trial that went wrong does not leave its worker to the next
            raise
        finally:
            with self._lock:
                self._hosts.discard(host)
        return self._ended(trial, view, summary)

    def _ended(self, trial, view: TrialView, summary: dict) -> float:
        import optuna

        state = summary.get("state")
        if view.state == "pruned":
            self._write_trial(view)
            raise optuna.TrialPruned(f"pruned at epoch {view.epoch:g}")
        if self.stopping.is_set() and state == p.STOPPED:
            view.state = "interrupted"
            trial.set_user_attr("interrupted", True)
            self._write_trial(view)
            raise TrialEnded("interrupted (Ctrl-C); runs again next time")
        if state in (p.DIVERGED, p.FAILED) or view.value is None:
            view.state, view.reason = "failed", summary.get("reason") or f"no val {self.spec.metric} recorded"
            self._write_trial(view)
            raise TrialEnded(f"trial {trial.number} {state}: {view.reason}")
        view.state = "complete"
        self._write_trial(view)
        return view.value

    def _write_trial(self, view: TrialView) -> None:
        """trial.json beside the run's files: the Runs list shows pruned trials and their sweep from it."""
        if view.run_dir and Path(view.run_dir).is_dir():
            atomic_write_text(Path(view.run_dir) / "trial.json", dumps(
                {"sweep": self.name, "number": view.number, "params": view.params, "state": view.state,
                 "value": view.value, "metric": self.spec.metric}, indent=2) + "\n")

    # ------------------------------------------------------------------ a sweep killed and run again

    def _recover_abandoned(self, study) -> None:
        from torchtui.engine.sweep import recover

        recover.abandoned(study, self.owners)

    def _await_others(self, study) -> bool:
        """The grid's queue is empty but points are still running in other processes (or in ones that died): wait
        while they run, recording dead ones (their points are queued again). True when a point was queued
        again (this process takes it), False when none is left running (or Ctrl-C came)."""
        from optuna.trial import TrialState

        from torchtui.engine.sweep import grid, recover

        while not self.stopping.is_set():
            recover.abandoned(study, self.owners)
            if grid.waiting(study):
                return True
            if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                return False
            self.stopping.wait(AWAIT_S)
        return False

    # ------------------------------------------------------------------ the answer

    def result(self, study) -> dict:
        """The ranked trials (best first), the best one, and the best setup written as a preset file."""
        from optuna.trial import TrialState

        maximise = self.spec.direction == "maximize"
        trials = []
        for t in study.get_trials(deepcopy=False):
            if t.system_attrs.get(SURPLUS):
                continue  # asked for by a second process after the grid was taken: it trained nothing
            state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                     TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}.get(t.state, str(t.state))
            if state == "failed" and t.user_attrs.get("interrupted"):
                state = "interrupted"
            value = t.value if t.state == TrialState.COMPLETE else _best_reported(t, maximise)
            params = t.params or t.system_attrs.get("fixed_params", {})  # a queued point has none of its own yet
            trials.append({"number": t.number, "params": dict(params), "state": state, "value": value,
                           "run_dir": t.user_attrs.get("run_dir", "")})
        order = {"complete": 0, "pruned": 1}
        trials.sort(key=lambda r: (order.get(r["state"], 2), r["value"] is None,
                                   -(r["value"] or 0) if maximise else (r["value"] or 0), r["number"]))
        best = next((r for r in trials if r["state"] == "complete"), None)
        out = {"sweep": self.name, "sweep_dir": str(self.folder), "method": self.spec.method,
               "metric": self.spec.metric, "direction": self.spec.direction, "storage": safe_url(self.storage.url),
               "best": best, "trials": trials}
        if best is not None:
            config = from_dict(apply(self.base, best["params"]))
            config = dataclasses.replace(config, name=f"{self.name}-best",
                                         description=f"best of sweep {self.name}: {self.spec.metric} "
                                                     f"{best['value']:.4g} (trial {best['number']})")
            path = self.folder / "best.yaml"
            atomic_write_text(path, config.to_yaml())
            out["best_preset"] = str(path)
        return out


def _suggest(trial, param):
    if param.choices:
        return trial.suggest_categorical(param.path, list(param.choices))
    if param.integer:
        return trial.suggest_int(param.path, param.low, param.high, step=param.step or 1, log=param.log)
    return trial.suggest_float(param.path, param.low, param.high, step=param.step, log=param.log)


def _view_of(trial) -> TrialView:
    from optuna.trial import TrialState

    state = "complete" if trial.state == TrialState.COMPLETE else "pruned"
    start = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
    end = trial.datetime_complete.timestamp() if trial.datetime_complete else start
    return TrialView(trial.number, dict(trial.params), state, trial.value, started=start, seconds=end - start,
                     run_dir=trial.user_attrs.get("run_dir", ""))


def _best_reported(trial, maximise: bool) -> float | None:
    values = list(trial.intermediate_values.values())
    if not values:
        return None
    return max(values) if maximise else min(values)


def _finished(study) -> list:
    """The study's complete and pruned trials, less the surplus ones (a grid trial that found no point left)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if not t.system_attrs.get(SURPLUS)]


def _plain(value):
    return json.loads(json.dumps(value))


def cpu_threads(parallel: int) -> int:
    """Torch threads per trial so K trials share the cores without oversubscribing them (one trial: the default)."""
    return max(1, default_threads() // max(1, parallel))
