"""Runs as a tree of branches: the order the Runs screen lists them in (each run's branches under it, indented)
and where a branch left its parent (origin.json), so its overlay line starts with the parent's curve."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

INDENT = "  "  # per level below the first branch level
BRANCH = "└ "  # before a branch's run id


@dataclass(frozen=True)
class BranchPoint:
    """Where a run branched off: its parent's folder and the last step of the parent it kept."""
    parent_id: str
    parent_dir: str
    step: int


def tree(records: list) -> list[tuple[object, int]]:
    """(record, depth) for `records` (catalog.RunRecord, already sorted): each run in its sorted place among its
    siblings, its branches right under it, deeper ones further in. A run whose parent is not listed (filtered
    out, deleted, archived) is a root; a cycle of parents (hand-edited origin.json files) cannot loop."""
    listed = {r.run_id for r in records}
    children: dict[str, list] = defaultdict(list)
    roots = []
    for record in records:
        if record.parent and record.parent in listed and record.parent != record.run_id:
            children[record.parent].append(record)
        else:
            roots.append(record)
    out: list[tuple[object, int]] = []
    seen: set[int] = set()

    def visit(record, depth: int) -> None:
        if id(record) in seen:
            return
        seen.add(id(record))
        out.append((record, depth))
        for child in children.get(record.run_id, ()):
            visit(child, depth + 1)

    for record in roots:
        visit(record, 0)
    for record in records:  # only runs on a cycle are left: listed flat rather than lost
        visit(record, 0)
    return out


def indented(run_id: str, depth: int) -> str:
    """The run cell of a tree row: a branch's id after └, one indent further per level."""
    return run_id if depth <= 0 else INDENT * (depth - 1) + BRANCH + run_id


def branch_point(path: str | Path) -> BranchPoint | None:
    """Where the run in `path` branched from its parent (a rewind: origin.json's branch_of), or None for a run that
    was not branched at a step (a fresh run, or one continued from a checkpoint file: origin.json's parent)."""
    folder = Path(path)
    try:
        origin = json.loads((folder / "origin.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    parent = origin.get("branch_of") if isinstance(origin, dict) else None
    if not isinstance(parent, dict):
        return None
    step = parent.get("step")
    run_id = parent.get("run_id")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0 or not isinstance(run_id, str) or not run_id:
        return None
    run_dir = parent.get("run_dir")
    # A folder moved with its parent (a runs folder copied elsewhere) finds it beside itself.
    beside = folder.parent / run_id
    parent_dir = str(beside) if beside.is_dir() or not isinstance(run_dir, str) else run_dir
    return BranchPoint(run_id, parent_dir, step)
