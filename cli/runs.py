"""`torchtui runs`: every run folder, one row each, with its metrics and the config fields that differ."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from torchtui.cli.common import EXIT_OK, UsageError, add_json, add_runs_dir
from torchtui.cli.output import fit_table, terminal_width
from torchtui.engine import catalog
from torchtui.engine.runs import default_runs_dir, dumps, user_runs_dir

HELP = "list the run folders with their metrics and what differs between their setups"


def add_arguments(parser) -> None:
    add_runs_dir(parser)
    add_json(parser)
    parser.add_argument("--sort", default="created", metavar="KEY",
                        help="created (default), name, state, steps, seconds, a metric (best val: accuracy, loss "
                             "… best first; final.loss, test.accuracy …) or a config field such as train.lr")
    parser.add_argument("--reverse", action="store_true", help="reverse the order --sort gives")
    parser.add_argument("--filter", default="", metavar="TEXT",
                        help="only runs whose id, name, state or preset contain every word, or that have a "
                             "field=value (e.g. --filter 'moons train.lr=0.01', --filter live)")


def listed(runs_dir, text: str = "", sort: str = "created", reverse: bool = False) -> tuple[list, list[str]]:
    """The records shown, filtered and sorted, and the config fields that differ between them."""
    records = catalog.Catalog(runs_dir).scan(catalog.live_states())
    records = [r for r in records if catalog.matches(r, text)] if text else records
    problem = catalog.sort_key_problem(sort, records)
    if problem:
        raise UsageError(f"runs --sort: {problem}")
    records = catalog.sort_records(records, sort, reverse)
    return records, catalog.differing(records)


def run(args) -> int:
    runs_dir = args.runs_dir or default_runs_dir()
    if os.path.exists(runs_dir) and not os.path.isdir(runs_dir):
        raise UsageError(f"--runs-dir: {runs_dir} is a file, not a folder of runs")
    records, fields = listed(runs_dir, args.filter, args.sort, args.reverse)
    if args.json:
        print(dumps({"runs_dir": str(runs_dir), "differing": fields, "runs": [r.to_json() for r in records]}))
        return EXIT_OK
    if not records:
        print(f"no runs in {runs_dir}" + (f" matching '{args.filter}'" if args.filter else ""))
    else:
        for line in table(records, fields, terminal_width(sys.stdout)):
            print(line)
    if not args.runs_dir:
        print(elsewhere(Path(runs_dir)), end="")
    return EXIT_OK


def elsewhere(listed: Path) -> str:
    """A line naming the user's runs folder when this listing was of another (a working directory's runs/)."""
    mine = user_runs_dir()
    try:
        if listed.resolve() == mine.resolve() or not mine.is_dir():
            return ""
        n = sum(1 for d in mine.iterdir() if (d / "config.yaml").is_file() or (d / "sweep.yaml").is_file())
    except OSError:
        return ""
    if not n:
        return ""
    return f"also: {n} run folder{'s' if n > 1 else ''} in {mine} (torchtui runs --runs-dir {mine})\n"


# On a narrow terminal the columns go in this order, last first: the run, its state and problem stay; then the
# first metric and the fields that differ (what tells runs apart) outlast the other metrics, lineage, time,
# epochs and steps.
PRIORITY = ("run", "state", "problem", "metric", "field", "metrics", "test", "trial", "parent", "preset", "time",
            "epochs", "steps")


def table(records: list, fields: list[str], width: int | None = None) -> list[str]:
    """The rows as aligned text (the Runs screen shows the same cells), fitted to `width` columns if given."""
    header, cells = catalog.columns(records, fields)
    names = [h for h, _ in header]
    metrics = [name for name in names if name.endswith(" best/final")]

    def rank(i: int) -> tuple:
        name = names[i]
        kind = ("metric" if metrics and name == metrics[0] else "metrics" if name in metrics
                else "test" if name.startswith("test ") else "field" if name in fields else name)
        return (PRIORITY.index(kind) if kind in PRIORITY else len(PRIORITY), i)

    return fit_table(names, cells, width, sorted(range(len(names)), key=rank))
