"""A sweep killed (-9, a machine going down) or interrupted, and the same sweep going on: its trials recorded
once and retried once, by whichever process sharing the study gets there first.

Each transition below is claimed in the storage (a trial RUNNING -> FAIL succeeds for one process only; an
interrupted trial is queued again with a study attribute set in the same transaction), so two processes
recovering at once never both retry a trial.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial

from torchtui.engine.sweep.owners import OWNER

REQUEUED = "torchtui:requeued:"  # + a trial's number: a study system attribute, its interrupted params queued


def abandoned(study, owners) -> None:
    """Trials left running by a sweep that was killed, recorded as soon as its process is known dead (its
    owner lock is free) or its heartbeat is stale. One whose trial.json says complete (or pruned) had
    finished before Optuna recorded it: that is recorded, so a finished trial is never trained twice. The
    others fail and their params are retried, as Optuna does with stale trials, but without waiting for the
    grace period (a short rerun ended before it, leaving a grid point never trained)."""
    storage = study._storage
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is None:
        return
    stale = set(storage._get_stale_trial_ids(study._study_id))
    failed = []
    for trial in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        if trial._trial_id not in stale and not owners.gone(trial.system_attrs.get(OWNER)):
            continue  # its sweep process lives (here or on another machine): it records the trial itself
        state, values = finished_state(trial)
        try:
            if storage.set_trial_state_values(trial._trial_id, state=state, values=values) \
                    and state == TrialState.FAIL:
                failed.append(trial._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another sweep process on this study recorded it first
    getter = (getattr(storage, "get_heartbeat_stale_trial_callback", None)  # optuna >= 4.9
              or getattr(storage, "get_failed_trial_callback", None))
    retry = getter() if getter is not None else None
    for trial_id in failed if retry is not None else ():
        retry(study, copy.deepcopy(storage.get_trial(trial_id)))
    owners.clear_dead()


def requeue_interrupted(study, rdb) -> None:
    """Trials a Ctrl-C interrupted failed on purpose: give their params another trial, once across every process
    on the study (`rdb`, the SweepStorage under the study's cache, queues it with its claim)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}  # requeued before the claim existed
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and t.number not in retried:
            again = create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": dict(t.params)},
                                 user_attrs={"retry_of": t.number})
            rdb.enqueue_once(study._study_id, f"{REQUEUED}{t.number}", True, [again])


def finished_state(trial) -> tuple:
    """What an abandoned trial's trial.json says it reached: (COMPLETE, [value]), (PRUNED, None), or (FAIL,
    None) when it says neither (no trial.json, one cut short, or one of another trial)."""
    run_dir = trial.user_attrs.get("run_dir")
    try:
        told = json.loads((Path(run_dir) / "trial.json").read_text()) if run_dir else {}
    except (OSError, ValueError):
        told = {}
    if not isinstance(told, dict) or told.get("number") != trial.number:
        return TrialState.FAIL, None
    value = told.get("value")
    if told.get("state") == "complete" and isinstance(value, (int, float)) and math.isfinite(value):
        return TrialState.COMPLETE, [float(value)]
    if told.get("state") == "pruned":
        return TrialState.PRUNED, None
    return TrialState.FAIL, None
