"""Optuna's grid sampler, made safe for several sweep processes on one study.

Optuna's GridSampler gives trial n < N grid point n, and a later trial a point no finished or running trial
holds, or, when every point has been started, any point again ("may happen due to a timing issue during
distributed optimization"). Two `torchtui sweep` processes on one folder each ask for the trials they count
as left, so the extra trials retrained points (issue 35). Here a point is claimed under a lock on the sweep
folder, and a trial that finds none left is marked surplus: the objective ends it without training and the
results leave it out.
"""

from __future__ import annotations

from pathlib import Path

from optuna.samplers import GridSampler
from optuna.trial import TrialState

from torchtui.engine.files import held
from torchtui.engine.sweep import SURPLUS


class ClaimingGridSampler(GridSampler):
    def __init__(self, search_space: dict, seed: int | None, lock_path: Path):
        super().__init__(search_space, seed=seed)
        self.lock_path = lock_path

    def before_trial(self, study, trial) -> None:
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return  # a retried or enqueued trial keeps its point
        storage = study._storage  # as GridSampler itself does: a study transformed by a pruner hides trials
        with held(self.lock_path):
            claimed = set()
            for t in storage.get_all_trials(study._study_id, deepcopy=False):
                if "grid_id" in t.system_attrs and self._same_search_space(t.system_attrs["search_space"]) \
                        and (t.state.is_finished() or t.state in (TrialState.RUNNING, TrialState.WAITING)):
                    claimed.add(t.system_attrs["grid_id"])
            free = sorted(set(range(len(self._all_grids))) - claimed)
            if not free:
                storage.set_trial_system_attr(trial._trial_id, SURPLUS, True)
                return
            storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
            storage.set_trial_system_attr(trial._trial_id, "grid_id", free[0])
