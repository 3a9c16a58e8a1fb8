"""`torchtui sweep PRESET|FILE`: the preset's `sweep:` section run with Optuna, each trial a normal run."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from torchtui.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    OPTION_FIELDS,
    add_json,
    add_run_options,
    add_runs_dir,
    overrides_of,
)
from torchtui.cli.output import cut, live_terminal, terminal_lines, terminal_width
from torchtui.engine import presets
from torchtui.engine.runs import default_runs_dir, dumps
from torchtui.engine.schema import ConfigError

HELP = "search hyperparameters: the preset's sweep: section (grid, random or tpe) with Optuna"


def add_arguments(parser) -> None:
    parser.add_argument("preset", help="preset name or YAML file with a sweep: section")
    add_run_options(parser)
    add_runs_dir(parser)
    add_json(parser)
    parser.add_argument("--trials", type=int, help="trials to finish (random/tpe; grid: at most this many points)")
    parser.add_argument("--parallel", type=int, metavar="K",
                        help="trials at once (default: one per GPU on a CUDA box, else 1); CPU cores are split")
    parser.add_argument("--storage", metavar="URL", help="Optuna storage, e.g. postgresql://user@host/db so several "
                        "machines work on one sweep (default: sqlite study.db in the sweep folder)")
    parser.add_argument("--name", help="the sweep's name and folder runs/sweep-NAME (default: the preset's name)")
    parser.add_argument("--detach", action="store_true",
                        help="run in the background, in a session of its own (outlives the terminal); log in "
                             "the sweep folder")


def prepare(args):
    """(Sweep spec, base config dict, sweep folder, name) from the preset and the options; errors exit 2."""
    from torchtui.engine import sweep

    config, raw, path, line_of = presets.load_with_sweep(args.preset, overrides_of(args), OPTION_FIELDS)
    if raw is None:
        raise ConfigError([f"{path}: has no sweep: section; add one, e.g. `sweep: {{method: grid, metric: accuracy, "
                           "params: {train.lr: [0.1, 0.01, 0.001]}}}` (README: Sweeps)"])
    base = config.to_dict()
    try:
        spec = sweep.parse(raw, base, args.trials)
    except ConfigError as err:
        raise presets.located(err, path, line_of) from None
    if args.parallel is not None and not 1 <= args.parallel <= 256:
        raise ConfigError([f"--parallel: must be from 1 to 256, got {args.parallel}"])
    name = args.name or config.name
    from torchtui.engine.runs import slug

    folder = Path(args.runs_dir or default_runs_dir()) / f"sweep-{slug(name)}"
    return spec, base, folder, slug(name)


def run(args) -> int:
    spec, base, folder, name = prepare(args)
    if args.detach:
        return detach(folder, spec.metric)
    from torchtui.engine.sweep.study import Sweep, cpu_threads

    devices = gpus() if base["device"]["device"] in ("auto", "cuda") else []
    parallel = args.parallel or max(1, len(devices))
    table = Table(sys.stdout, spec, json_mode=args.json)
    sweep = Sweep(spec, base, folder, name, storage=args.storage, parallel=parallel, preset=args.preset,
                  devices=devices, threads=cpu_threads(parallel), on_change=table.changed)
    interrupted = []

    def on_signal(signum, frame):
        interrupted.append(signum)
        if len(interrupted) > 1:
            raise SystemExit(EXIT_INTERRUPTED)
        table.note("stopping the running trials after their current step (Ctrl-C again to quit now); the same "
                   "command continues the sweep")
        sweep.stop()

    sweep.open()  # a storage that cannot be used says so before anything is announced
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    table.note(f"sweep {name}: {spec.method}, {spec.trials} trials, {parallel} at a time, {spec.direction} val "
               f"{spec.metric} -> {folder}")
    try:
        result = sweep.run()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        table.close()
    table.final(result)
    if args.json:
        print(dumps(result))
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result["best"] is not None else EXIT_RUN_FAILED


def gpus() -> list[str]:
    """cuda:0, cuda:1 … on a CUDA box (one trial per GPU), else none."""
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def detach(folder: Path, metric: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "sweep.log"
    argv = [a for a in sys.argv[1:] if a != "--detach"]
    with open(log, "ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "torchtui.cli", *argv], stdout=out, stderr=out,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    print(f"sweep running in the background (pid {child.pid}) -> {folder}; log: {log}")
    print(f"leaderboard: torchtui runs --runs-dir {folder} --sort {metric}   stop: kill -INT {child.pid} "
          "(the same command continues it)")
    return EXIT_OK


class Table:
    """The trials as a live table on a terminal (redrawn in place), as plain lines otherwise."""

    def __init__(self, out, spec, json_mode: bool):
        self.out = sys.stderr if json_mode else out
        self.spec = spec
        self.live = live_terminal(self.out)
        self.views: dict = {}
        self.lines = 0
        self.last_draw = 0.0
        # Re-entrant: Ctrl-C's handler prints a note, and runs in the main thread, which may be printing a row
        # under this lock when the signal comes (a plain Lock deadlocked there: the sweep never stopped).
        self.lock = threading.RLock()

    def note(self, text: str) -> None:
        with self.lock:
            self._clear()
            print(text, file=self.out, flush=True)
            self._draw()

    def changed(self, view) -> None:
        with self.lock:
            old = self.views.get(view.number)
            state_changed = old is None or old[0] != view.state
            self.views[view.number] = (view.state, view)
            if not self.live:
                if state_changed and view.state != "running" or old is None:
                    print(self._row(view), file=self.out, flush=True)
                return
            if state_changed or time.monotonic() - self.last_draw > 0.5:
                self._clear()
                self._draw()

    def _row(self, view) -> str:
        params = " ".join(f"{k}={_short(v)}" for k, v in view.params.items())
        value = f"{view.value:.4g}" if view.value is not None else "–"
        took = view.seconds or (time.time() - view.started)
        why = f"  ({view.reason})" if view.state == "failed" and getattr(view, "reason", "") else ""
        return (f"trial {view.number:>3}  {view.state:<11}  {self.spec.metric} {value:<8}  epoch {view.epoch:<5g}  "
                f"{took:6.1f}s  {params}{why}")

    def _draw(self) -> None:
        if not self.live:
            return
        # Rows that wrap, or more rows than the screen has, cannot be cleared by moving up: each redraw would
        # leave copies behind. So: the newest that fit, each cut to the width.
        width = terminal_width(self.out)
        rows = [self._row(view) for _, view in sorted(self.views.values(), key=lambda v: v[1].number)]
        rows = [cut(row, width - 1) if width else row for row in rows[-min(40, terminal_lines() - 2):]]
        if rows:
            print("\n".join(rows), file=self.out, flush=True)
        self.lines = len(rows)
        self.last_draw = time.monotonic()

    def _clear(self) -> None:
        if self.live and self.lines:
            self.out.write(f"\x1b[{self.lines}F\x1b[J")
            self.lines = 0

    def close(self) -> None:
        pass

    def final(self, result: dict) -> None:
        best = result.get("best")
        done = sum(t["state"] == "complete" for t in result["trials"])
        pruned = sum(t["state"] == "pruned" for t in result["trials"])
        lines = [f"{done} trials complete, {pruned} pruned; ranked by val {result['metric']} ({result['direction']}):"]
        for rank, t in enumerate([t for t in result["trials"] if t["state"] in ("complete", "pruned")][:10], 1):
            value = f"{t['value']:.4g}" if t["value"] is not None else "–"
            params = " ".join(f"{k}={_short(v)}" for k, v in t["params"].items())
            lines.append(f"  {rank:>2}. trial {t['number']:>3} {t['state']:<8} {value:<8} {params}")
        if best is not None:
            lines.append(f"best: trial {best['number']} ({result['metric']} {best['value']:.4g}) -> "
                         f"{result.get('best_preset')}  (torchtui train {result.get('best_preset')})")
        with self.lock:
            for line in lines:
                print(line, file=self.out, flush=True)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
