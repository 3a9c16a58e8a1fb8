"""`torchtui ps`: the live runs of this user, one row each (servers that died are cleaned up on the way)."""

from __future__ import annotations

import time

from torchtui.cli.common import EXIT_OK, UsageError, add_json
from torchtui.engine import live
from torchtui.engine.runs import dumps

HELP = "list live runs (their servers outlive the terminal that started them)"
COLUMNS = ("run_id", "name", "state", "epoch", "step", "metric", "device", "pid", "clients", "started")


def add_arguments(parser) -> None:
    add_json(parser)


def rows() -> list[dict]:
    out = []
    for info in live.servers():
        out.append({"run_id": info.run_id or f"(idle server {info.pid})", "name": info.name, "state": info.state,
                    "epoch": round(info.epoch, 2), "step": info.step, "total_steps": info.total_steps,
                    "metric": info.metric, "device": info.device, "pid": info.pid, "clients": info.clients,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.started)),
                    "run_dir": info.run_dir})
    return out


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
    table = [COLUMNS] + [tuple(str(r[c]) if c != "step" else f"{r['step']}/{r['total_steps'] or '∞'}" for c in COLUMNS)
                         for r in found]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return EXIT_OK
