"""Start-up work until the first frame with the Footer's keys: `torchtui moons` against a bare Textual app
with the same Footer, counted in instructions (valgrind), which other jobs on the machine do not change.

    python bench/bench_startup.py [--runs 1] [--wall 5]

Each app runs as its own `python` process, headless (no terminal writes), on a pty (the CLI refuses to
open the app without one), and ends with os._exit the moment Textual hands the first frame that shows a
Footer key to its driver: Python's start, every import, the preset, the app's construction and its
first layouts are counted, its teardown is not. bench_tui.py's `paint` times the same in a real terminal
(wall clock, which this 2-core machine's neighbours make noisy); this is the steady figure behind it.
`--wall N` also prints wall-clock medians of N launches of each, alternated.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(which: str, runs: str) -> None:
    """Run one app headless on a pty (`which`: "torchtui", or the bare app's file); exit at its first frame
    with a Footer key in it."""
    _, tty = os.openpty()
    os.dup2(tty, 0)
    os.dup2(tty, 1)
    from textual.app import App  # imported by both apps anyway: patching it first adds nothing to either

    run, display = App.run, App._display

    def headless(self, *args, **kwargs):
        return run(self, *args, **{**kwargs, "headless": True})

    def first_frame(self, screen, renderable):
        display(self, screen, renderable)
        if renderable is not None and screen.query("FooterKey"):
            os._exit(0)

    App.run, App._display = headless, first_frame
    if which != "torchtui":
        import runpy

        runpy.run_path(which, run_name="__main__")  # bench_tui's bare app, as bench_tui runs it
    else:
        from torchtui.cli.main import main

        main(["moons", "--runs-dir", runs])
    os._exit(3)  # never painted


def launch(which: str, runs: str, valgrind: bool) -> float:
    """Instructions (valgrind) or seconds (wall) of one launch of `which`: torchtui, or the bare app's file."""
    argv = [sys.executable, __file__, "--child", which, "--runs-dir", runs]
    if valgrind:
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{which} did not reach its first frame (exit {done.returncode}): {done.stderr[-2000:]}")
    if not valgrind:
        return seconds
    refs = re.search(r"Collected : (\d+)", done.stderr)
    if refs is None:
        sys.exit(f"no instruction count from valgrind: {done.stderr[-2000:]}")
    return float(refs.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="valgrind launches of each (default 1: counts repeat)")
    parser.add_argument("--wall", type=int, default=0, help="also this many wall-clock launches of each")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--runs-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs_dir)
    from bench_tui import BARE_APP  # the same bare app bench_tui's paint launches

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        runs, bare_app = str(Path(tmp) / "runs"), Path(tmp) / "bare_app.py"
        bare_app.write_text(BARE_APP)
        apps = {"bare": str(bare_app), "torchtui": "torchtui"}
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1])],
                       capture_output=True)  # cached bytecode, as an installed package has it
        counts = {w: [launch(apps[w], runs, True) for _ in range(args.runs)] for w in apps}
        walls: dict[str, list[float]] = {w: [] for w in apps}
        for _ in range(args.wall):
            for which in walls:
                walls[which].append(launch(apps[which], runs, False))
    bare, ours = (statistics.median(counts[w]) for w in ("bare", "torchtui"))
    print(f"instructions to the first frame with Footer keys (valgrind, median of {args.runs}):")
    print(f"  bare Textual app   {bare / 1e6:8,.0f} M")
    print(f"  torchtui moons     {ours / 1e6:8,.0f} M")
    print(f"  ratio torchtui / bare  {ours / bare:.2f}   (bench_tui paint's target for wall clock: <= 1.5)")
    if args.wall:
        wb, wt = (statistics.median(walls[w]) for w in ("bare", "torchtui"))
        print(f"wall clock, median of {args.wall}: bare {wb:.3f} s, torchtui {wt:.3f} s, ratio {wt / wb:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
