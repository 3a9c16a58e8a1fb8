"""Rewind as a branch: the active run stops where it is, and a new run folder continues from one of its snapshots.

The parent keeps what happened (its folder is left as a stopped run: last.pt, summary.json); the branch's
origin.json names the run the snapshot was taken in and the step, its metrics.jsonl holds the steps after it.
The branch reuses the parent's data, model and optimizer objects (restored from the snapshot), so a rewind takes
the time of a copy, not of a new start. Rewinding to a snapshot from before a branch's own branch point makes a
sibling: its origin names the run that snapshot came from.

Data-parallel runs take no snapshots, so they cannot rewind (refused by name): each rank would have to restore the
same step at one sync point, which is not built.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from torchtui.engine import protocol as p
from torchtui.engine.formatting import fmt_step
from torchtui.engine.run.steering import plan
from torchtui.engine.run.writer import Writer
from torchtui.engine.runs import RunFolder

LIVE_KEYS = ("lr", "lr_scale", "weight_decay", "grad_clip", "current_lr")


@dataclasses.dataclass
class Request:
    """A rewind accepted: the snapshot to branch from and the live changes to make there."""
    snap: object
    changes: dict
    request_id: int
    from_run_id: str
    from_step: int


def refusal(run, command: p.Rewind):
    """Why `command` cannot rewind `run` (a message), or the snapshot it goes back to."""
    session = run.session
    if run.dist is not None:
        return ("rewind: not available for data-parallel runs (device.devices): they take no snapshots, and a rewind "
                "would have to restore every rank at one sync point; train on one device to rewind")
    if command.run_id and command.run_id != run.run_id:
        return f"rewind: run {command.run_id} is not the active run ({run.run_id})"
    if session.snapshots is None or not len(session.snapshots.ring):
        why = "train.snapshots is off" if not run.config.train.snapshots else "none has been taken yet"
        return f"rewind: run {run.run_id} has no snapshots ({why})"
    unknown = sorted(set(command.changes) - set(LIVE_KEYS))
    if unknown:
        return f"rewind: {', '.join(unknown)} cannot change at a rewind (only {', '.join(LIVE_KEYS)})"
    try:
        plan(run, p.SetHparams(**command.changes))
    except (ValueError, TypeError) as err:
        return f"rewind: {err}"
    ring = session.snapshots.ring
    if command.back:
        snap = ring.pick(step=run.step - command.back)
    else:
        snap = ring.pick(step=command.step)
    if snap is None:
        oldest = ring.items[0].step
        wanted = run.step - command.back if command.back else command.step
        return f"rewind: no snapshot at or before step {fmt_step(wanted)} (the oldest is step {fmt_step(oldest)})"
    return snap


def ask(run, command: p.Rewind) -> bool:
    """Accept a Rewind: the run stops after this step and the engine starts the branch; False (an Error said why)
    when it cannot."""
    session = run.session
    found = refusal(run, command)
    if isinstance(found, str):
        session.emit(p.Error(run.run_id, found))
        return False
    session.rewind = Request(found, dict(command.changes), command.request_id, run.run_id, run.step)
    session.request_stop(p.STOPPED, f"rewound to step {fmt_step(found.step)}: a branch continues from there")
    return True


def branch_run(parent, request: Request):
    """The branch's Run: a new folder beside the parent's (origin.json, config.yaml), the parent's objects."""
    snap = request.snap
    folder = RunFolder.create(parent.folder.path.parent, parent.config.name)
    folder.lock()
    origin = _origin_of(parent.folder)
    folder.write_origin({"created": time.time(), "preset": origin.get("preset", ""),
                         "branch_of": {"run_id": snap.run_id, "run_dir": str(Path(snap.run_dir).resolve()),
                                       "step": snap.step, "changes": dict(request.changes)}})
    folder.write_config(parent.config_dict)
    return dataclasses.replace(parent, run_id=folder.run_id, folder=folder, writer=Writer(), last_test={},
                               jumped=False, skip=set(parent.skip), resume_edits={}, last_batch=None, eval_cost=0.0,
                               eval_ended=None, data_wait=0.0)


def _origin_of(folder: RunFolder) -> dict:
    import json

    try:
        data = json.loads(folder.origin_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
