"""Branches in the Runs screen (issue 27): a rewind's branch is listed under its parent, indented, and its
overlay line starts with the parent's curve up to the branch point, so two branches overlaid fork from it."""

from __future__ import annotations

import math

from torchtui.engine import presets
from torchtui.engine.runs import RunFolder
from torchtui.tui.app import TorchTUI
from torchtui.tui.bridge import EngineBridge
from torchtui.tui.screens.runs import RunsScreen
from torchtui.tui.state import lineage

from .conftest import settles, until
from .fakes import FakeHost

PARENT, FIRST, SECOND, OTHER = ("20261201-100000-moons", "20261201-100500-moons", "20261201-101000-moons",
                                "20261201-090000-moons")
BRANCH_STEP = 60


def write_run(root, run_id: str, steps: range, lr: float, parent: str = "", branch_step: int | None = None) -> None:
    """A run folder as the engine writes one; a branch's rows start after its branch step, its origin.json
    names the parent and that step."""
    folder = RunFolder(root / run_id)
    (folder.path / "checkpoints").mkdir(parents=True)
    folder.write_config(presets.load("moons").to_dict())
    origin = {"created": 1796000000.0 + int(run_id[9:13]), "preset": "moons"}
    if parent:
        origin["branch_of"] = {"run_id": parent, "run_dir": str(root / parent), "step": branch_step,
                               "changes": {"lr": lr}}
    folder.write_origin(origin)
    rows, curve = [], []
    for step in steps:
        loss = 0.7 * math.exp(-step * lr * 10) + 0.05
        rows.append({"type": "step", "step": step, "epoch": step / 20, "loss": loss, "lr": lr})
        curve += [step, step / 20, loss]
        if step % 20 == 0:
            rows.append({"type": "eval", "split": "val", "step": step, "epoch": step / 20,
                         "accuracy": 0.5 + step / 400})
    folder.append_metrics(rows, curve)
    folder.write_summary({"state": "finished", "run_id": run_id, "steps": steps[-1], "task": "binary"})


def test_tree_lists_branches_under_their_parent_in_sorted_order():
    class R:
        def __init__(self, run_id, parent=""):
            self.run_id, self.parent = run_id, parent

    a, b, c, d, e = R("a"), R("b", "a"), R("c"), R("d", "b"), R("e", "a")
    loop1, loop2 = R("x", "y"), R("y", "x")  # hand-edited files: a cycle is listed, not lost or looped over
    rows = lineage.tree([c, b, a, d, e, R("f", "gone"), loop1, loop2])
    assert [(r.run_id, depth) for r, depth in rows] == [("c", 0), ("a", 0), ("b", 1), ("d", 2), ("e", 1),
                                                        ("f", 0), ("x", 0), ("y", 1)]
    assert lineage.indented("d", 2) == "  └ d" and lineage.indented("a", 0) == "a"


async def test_branches_show_as_a_tree_and_their_overlay_forks_from_the_parent(tmp_path):
    root = tmp_path / "runs"
    write_run(root, OTHER, range(1, 101), 0.01)
    write_run(root, PARENT, range(1, 121), 0.003)
    write_run(root, FIRST, range(BRANCH_STEP + 1, 151), 0.0015, PARENT, BRANCH_STEP)
    write_run(root, SECOND, range(BRANCH_STEP + 1, 131), 0.006, PARENT, BRANCH_STEP)
    app = settles(TorchTUI(presets.load("moons"), EngineBridge(FakeHost()), runs_dir=str(root)))
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.table.row_count == 4,
                    what="the Runs screen")
        screen = app.screen
        cells = [screen.table.get_row_at(i)[1] for i in range(4)]
        assert cells == [OTHER, PARENT, f"└ {FIRST}", f"└ {SECOND}"]
        await pilot.press("down", "down", "space", "down", "space")  # both branches
        await until(pilot, lambda: len(screen.selected) == 2, what="two branches selected")
        loss, metric = screen.charts
        await until(pilot, lambda: not loss.dirty and len(loss.runs) == 2, what="overlay drawn")
        for run, last in zip(loss.runs, (150, 130)):
            xs, _ = run.loss.downsample(10_000)
            assert xs[0] == 1 and xs[-1] == last  # the parent's steps 1..60, then the branch's own
            assert sorted(set(xs)) == xs
        # Up to the branch point both lines are the parent's (the same smoothed values), then they part.
        first, second = (dict(zip(*run.loss.downsample(10_000))) for run in loss.runs)
        assert all(first[s] == second[s] for s in range(1, BRANCH_STEP + 1))
        assert first[BRANCH_STEP + 20] != second[BRANCH_STEP + 20]
        # The val metric too: the parent's evaluations up to step 60 (20, 40, 60), then the branch's.
        assert [x for x, _ in zip(*metric.runs[0].evals["accuracy"].downsample(100))] == [20, 40, 60, 80, 100,
                                                                                       120, 140]
        assert "2 runs" in str(loss.render())
