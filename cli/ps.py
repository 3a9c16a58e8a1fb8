"""`torchtui ps`: the live runs of this user, one row each (servers that died are cleaned up on the way)."""

from __future__ import annotations

import sys
import time

from torchtui.cli.common import EXIT_OK, UsageError, add_json
from torchtui.cli.output import fit_table, terminal_width
from torchtui.engine import live
from torchtui.engine.formatting import fmt_step
from torchtui.engine.runs import dumps

HELP = "list live runs (their servers outlive the terminal that started them)"
COLUMNS = ("run_id", "name", "state", "epoch", "step", "metric", "device", "slowest", "pid", "clients", "started")
# On a narrow terminal the last go first.
PRIORITY = ("run_id", "state", "step", "metric", "slowest", "name", "started", "epoch", "device", "pid", "clients")


def add_arguments(parser) -> None:
    add_json(parser)


def rows() -> list[dict]:
    out = []
    for info in live.servers():
        out.append({"run_id": info.run_id or f"(idle server {info.pid})", "name": info.name, "state": info.state,
                    "epoch": round(info.epoch, 2), "step": info.step, "total_steps": info.total_steps,
                    "metric": info.metric, "device": info.device, "pid": info.pid, "clients": info.clients,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run_start(info))),
                    "run_dir": info.run_dir, "ranks": info.ranks, "slowest": info.slowest})
    return out


def run_start(info) -> float:
    """When the run began (its origin.json, as `torchtui runs` reads it); an idle server's own start."""
    import json
    from pathlib import Path

    try:
        created = json.loads((Path(info.run_dir) / "origin.json").read_text(encoding="utf-8")).get("created")
    except (OSError, ValueError, AttributeError, TypeError):
        created = None
    return created if info.run_dir and isinstance(created, (int, float)) else info.started


def cell(row: dict, column: str) -> str:
    if column == "slowest":  # data parallel: the rank the others wait for, and its share of the step
        return slowest_cell(row)
    if column == "step":
        return f"{fmt_step(row['step'])}/" + (fmt_step(row["total_steps"]) if row["total_steps"] else "∞")
    return str(row[column])


def slowest_cell(row: dict) -> str:
    """node2:1 data 71% (the rank the others wait for, what holds it up, its share of the rank's step); "" for
    a run of one process."""
    ranks = row.get("ranks") or []
    worst = next((r for r in ranks if r.get("slowest")), None)
    if worst is None:
        return ""
    total = worst["data_wait"] + worst["compute"] + worst["comm_wait"]
    cause = "data" if "data" in row["slowest"] else "compute"
    part = worst["data_wait"] if cause == "data" else worst["compute"]
    name = f"{worst['host']}:{worst['rank']}"
    return f"{name} {cause} {part / total:.0%}" if total > 0 else name


def run(args) -> int:
    try:
        found = rows()
    except live.LiveRunError as err:
        raise UsageError(str(err)) from None
    if args.json:
        print(dumps({"runs": found}))
        return EXIT_OK
    if not found:
        print("no live runs")
        return EXIT_OK
    # The slowest rank's column only where a run has several processes: blank for all others.
    columns = [c for c in COLUMNS if c != "slowest" or any(r["ranks"] for r in found)]
    cells = [[cell(r, c) for c in columns] for r in found]
    for line in fit_table(columns, cells, terminal_width(sys.stdout), [columns.index(c) for c in PRIORITY
                                                                       if c in columns]):
        print(line)
    return EXIT_OK
