"""A grid sweep as a queue in the study: each point trained once by however many processes share it.

Optuna's GridSampler gives a new trial a point no finished or running trial holds, read and then written in
two steps: two processes (two machines on one PostgreSQL study, or two folders on one SQLite file) asking at
once both get the same point, and once every point is started it hands out any point again ("may happen due
to a timing issue during distributed optimization"). Measured: two `torchtui sweep` processes on a 3x2 grid
trained (0.1, 32) twice. Here the first process to open the study queues every point (WAITING trials, added
in the same transaction as the study attribute saying so: rdb.enqueue_once), and every process takes queued
trials, which the storage hands out one at a time. A trial that finds the queue empty is surplus: the
objective ends it without training and the results leave it out. A point whose process died mid-trial is
queued again by Optuna's retry callback (once, by whichever process records the death first).
"""

from __future__ import annotations

import json

from optuna.samplers import RandomSampler
from optuna.trial import TrialState, create_trial

from torchtui.engine.sweep import SURPLUS

QUEUED = "torchtui:grid"  # a study system attribute: the grid's points were queued (their count)
POINT = "torchtui:point"  # a queued trial's system attribute: its index in the grid


class QueuedGridSampler(RandomSampler):
    """Samples nothing: a grid trial's params are fixed by its queued trial. A trial made because the queue
    was empty (every point taken) is marked surplus before it can suggest anything."""

    def before_trial(self, study, trial) -> None:
        if "fixed_params" not in trial.system_attrs:
            study._storage.set_trial_system_attr(trial._trial_id, SURPLUS, True)


def enqueue(storage, study_id: int, points: list[dict]) -> bool:
    """Queue the grid's points on a study where they were not yet queued (True when this process did). A point
    an earlier torchtui (before the queue) already trained or is training is not queued again."""
    taken = set()
    for t in storage.get_all_trials(study_id, deepcopy=False):
        if t.state != TrialState.FAIL and not t.system_attrs.get(SURPLUS):
            taken.add(_key(t.system_attrs.get("fixed_params", t.params)))
    trials = [create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": point, POINT: i})
              for i, point in enumerate(points) if _key(point) not in taken]
    return storage.enqueue_once(study_id, QUEUED, len(points), trials)


def waiting(study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)
