"""The app in a real terminal (tmux 160x48): first paint, training with the TUI open vs headless, key latency, charts.

    python bench/bench_tui.py [--rounds 3] [--paints 5] [--epochs 600] [--samples 30] [--threads 1] [--quick]
        [--only paint|throughput|keys|charts|lifecycle] [--size 160x48] [--load]

1. First paint: launch to the first `capture-pane` that shows the Footer ("space Start/Pause"), for
   `torchtui moons` and for a bare Textual app with a similar Footer run by the same python, alternating,
   median of `--paints` each, and the median of each launch pair's ratio; then how long after the Footer
   the setup panes' tab titles show. The tmux server is already up, so neither pays for starting it.
2. Throughput: the `moons` preset with `--epochs N`, alternating (a) `torchtui train moons --json` and
   (b) `torchtui moons` in tmux, space pressed once the engine is ready, until the status bar says
   finished. Both read samples/s the same way: train samples x epochs / summary.json's `seconds` (the
   engine's own clock from Start to the end of the run: data, model, every step, evaluations,
   checkpoints). Both pass `--set device.threads=N` (default 1): the headless CLI would otherwise use
   torch's default (2 on 2 cores), the app's worker cpu_count - 1.
3. Keypress-to-screen latency while training: `?` opens help and `?` closes it (not escape: Textual
   waits ESCDELAY, 100 ms, after a lone escape), from send-keys to the first capture that shows the
   change, polling `capture-pane` back to back; then `l` (log scale), whose effect waits for the loss
   chart's next redraw; then `3` and `1`, which switch the setup pane (Hyperparameters' first group, then
   Dataset's, shows); then `?` again with the run paused, as a baseline on the same screen. The cost
   of one capture is timed too: it bounds the resolution. `--load`: one busy process runs beside the run
   all the while (a shared machine; target p95 <= 150 ms), e.g. with `--size 80x24`.
4. Chart redraw: bench_charts' LossChart at 150x40 with 1,000 vs 1,000,000 steps.
5. Quit (idle) and restart (`r r` while training): see tui_lifecycle.py.

Not a test: prints figures, ratios and a PASS/MISS table, and always exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tui_lifecycle

SECTIONS = ("paint", "throughput", "keys", "charts", "lifecycle")
TORCHTUI = str(Path(sys.executable).with_name("torchtui"))
WIDTH, HEIGHT = 160, 48
FOOTER = r"space Start/Pause"
TABS = r"1 Dataset.*2 Model.*3 Hparams.*4 Device"  # the setup panes' tab titles
HELP = r"esc, q or \? to close"
HPARAMS_PANE, DATASET_PANE = r"^ Loss\s", r"^ Source\s"  # the first group title of each pane
LOSS_LOG = r"loss  train \S+(  val \S+)?  \(log\)"  # the loss chart's title; grad and lr charts say (log) too
# COLUMNS/LINES exported by a caller would win over the real pane size inside Textual; TMUX would point
# tmux at the caller's own server.
ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
BARE_APP = '''\
from textual.app import App
from textual.binding import Binding
from textual.widgets import Footer, Static


class Bare(App):
    BINDINGS = [Binding("space", "bell", "Start/Pause"), Binding("n", "bell", "Step"), Binding("q", "quit", "Quit")]

    def compose(self):
        yield Static("bare")
        yield Footer()


Bare().run()
'''


class Tmux:
    """A private tmux server (its own socket) kept up by an idle session, so launches don't start it."""

    def __init__(self, tmp: Path):
        self.socket = f"torchtui-bench-{os.getpid()}"
        self.tmp = tmp
        self.cmd("new-session", "-d", "-s", "keeper", "sleep 86400")
        self.cmd("set-option", "-g", "remain-on-exit", "on")  # a crashed app leaves its last screen to show
        self.socket_path = self.cmd("display", "-p", "#{socket_path}").strip()

    def cmd(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              env=ENV, check=False).stdout

    def launch(self, session: str, argv: list[str]) -> None:
        self.cmd("new-session", "-d", "-s", session, "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(self.tmp),
                 "-e", f"XDG_CONFIG_HOME={self.tmp / 'xdg'}", "exec " + shlex.join(argv))

    def capture(self, session: str) -> str:
        return self.cmd("capture-pane", "-p", "-t", session)

    def dead(self, session: str) -> bool:
        return self.cmd("display", "-p", "-t", session, "#{pane_dead}").strip() != "0"

    def keys(self, session: str, *keys: str) -> None:
        self.cmd("send-keys", "-t", session, *keys)

    def wait(self, session: str, pattern: str, timeout: float = 60, interval: float = 0.0, absent=False) -> str:
        """Poll the pane until `pattern` shows (or, with absent, is gone); the screen, or an error at the deadline."""
        deadline = time.monotonic() + timeout
        check_at = time.monotonic() + 1
        while True:
            screen = self.capture(session)
            if (re.search(pattern, screen, re.M) is None) == absent:
                return screen
            now = time.monotonic()
            if now > deadline or (now > check_at and self.dead(session)):
                raise RuntimeError(f"{pattern!r} {'stayed' if absent else 'never showed'} in {session}; "
                                   f"screen:\n{screen}")
            if now > check_at:
                check_at = now + 1
            if interval:
                time.sleep(interval)  # polling interval, not a wait for an outcome

    def quit(self, session: str, timeout: float = 30) -> None:
        """q (after x if a run is active), wait for the process to exit, drop the session."""
        try:
            if re.search(r"^\s+(running|paused)\s", self.capture(session), re.M):
                self.keys(session, "x")
                self.keys(session, "x")  # x asks while a run is active; x again says yes
                self.wait(session, r"^\s+(stopped|finished)\s", timeout)
            self.keys(session, "q")
            deadline = time.monotonic() + timeout
            while not self.dead(session) and time.monotonic() < deadline:
                time.sleep(0.05)  # polling interval
        finally:
            self.cmd("kill-session", "-t", session)

    def close(self) -> None:
        self.cmd("kill-server")
        if self.socket_path:  # kill-server leaves the socket file behind here
            Path(self.socket_path).unlink(missing_ok=True)


def median_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# ---------------------------------------------------------------------------------------------- 1. first paint

def first_paint(tmux: Tmux, paints: int) -> dict[str, list[float]]:
    bare = tmux.tmp / "bare_app.py"
    bare.write_text(BARE_APP)
    apps = {"bare": [sys.executable, str(bare)],
            "torchtui": [TORCHTUI, "moons", "--runs-dir", str(tmux.tmp / "runs-paint")]}
    times: dict[str, list[float]] = {name: [] for name in (*apps, "tabs")}
    for r in range(paints):
        for name, argv in apps.items():
            session = f"paint-{name}-{r}"
            started = time.perf_counter()
            tmux.launch(session, argv)
            tmux.wait(session, FOOTER, timeout=60, interval=0.0)
            times[name].append(time.perf_counter() - started)
            if name == "torchtui":  # the panes' tab titles after the Footer
                tmux.wait(session, TABS, timeout=60, interval=0.0)
                times["tabs"].append(time.perf_counter() - started - times[name][-1])
            tmux.quit(session)
            if name == "torchtui":  # its run server (importing torch) would otherwise slow the next launch
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and subprocess.run(
                        ["pgrep", "-f", str(tmux.tmp / "runs-paint")], capture_output=True).returncode == 0:
                    time.sleep(0.05)
        print(f"  paint {r + 1}: " + "  ".join(f"{n} {v[-1]:.3f} s" for n, v in times.items()), flush=True)
    return times


# ---------------------------------------------------------------------------------------------- 2. throughput

def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; nan elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


def first(runs: Path, pattern: str, timeout: float) -> Path:
    """The first non-empty file matching `pattern` under `runs` (polled with a deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in runs.glob(pattern):
            if path.stat().st_size:
                return path
        time.sleep(0.02)  # polling interval
    raise RuntimeError(f"no {pattern} under {runs} within {timeout:.0f} s")


def watch_run(runs: Path, pids: dict[str, int], timeout: float = 900) -> tuple[dict, dict[str, float]]:
    """The summary of the run under `runs`, and the cores each of `pids` kept busy from its config.yaml
    (written as the run starts) to its summary.json."""
    first(runs, "*/config.yaml", timeout)
    before, started = {k: cpu_seconds(pid) for k, pid in pids.items()}, time.perf_counter()
    summary = first(runs, "*/summary.json", timeout)
    wall = time.perf_counter() - started
    cores = {k: (cpu_seconds(pid) - before[k]) / wall for k, pid in pids.items()}
    return json.loads(summary.read_text()), cores


def headless(tmp: Path, runs: Path, overrides: list[str]) -> tuple[dict, dict[str, float]]:
    log = runs.with_suffix(".stderr")  # a file, not a pipe: a line per evaluation would fill a pipe nobody reads
    with open(log, "w") as stderr:
        proc = subprocess.Popen([TORCHTUI, "train", "moons", "--json", "--runs-dir", str(runs), *overrides],
                                cwd=tmp, env={**ENV, "XDG_CONFIG_HOME": str(tmp / "xdg")},
                                stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            summary, cores = watch_run(runs, {"cli": proc.pid})
            proc.wait(timeout=60)
        finally:
            proc.kill()  # no-op once it has exited
    if proc.returncode != 0:
        raise RuntimeError(f"torchtui train exited {proc.returncode}: {log.read_text()[-2000:]}")
    return summary, cores


def tui_processes(tmux: Tmux, session: str) -> dict[str, int]:
    """The app's pid, its engine worker's and the tmux server's, to account for their CPU."""
    pids = {"ui": int(tmux.cmd("display", "-p", "-t", session, "#{pane_pid}")),
            "tmux": int(tmux.cmd("display", "-p", "#{pid}"))}
    try:
        children = Path(f"/proc/{pids['ui']}/task/{pids['ui']}/children").read_text().split()
        # the engine's process: the run server the app starts (or a spawn worker, with the server off)
        pids.update(("worker", int(c)) for c in children
                    if re.search(rb"spawn_main|torchtui\.engine\.run\.server", Path(f"/proc/{c}/cmdline").read_bytes()))
    except OSError:
        pass
    return pids


def with_tui(tmux: Tmux, session: str, runs: Path, overrides: list[str]) -> tuple[dict, dict[str, float]]:
    """A TUI run's summary, and the cores its processes kept busy while it ran."""
    tmux.launch(session, [TORCHTUI, "moons", "--runs-dir", str(runs), *overrides])
    try:
        tmux.wait(session, r"engine ready", timeout=120, interval=0.1)
        pids = tui_processes(tmux, session)
        tmux.keys(session, "Space")
        # Watch the folder, not the screen, while it trains: capturing costs CPU the headless side doesn't pay.
        summary, cores = watch_run(runs, pids)
        tmux.wait(session, r"^\s+finished\s", timeout=30, interval=0.1)
        return summary, cores
    finally:
        tmux.quit(session)


def train_samples(run_dir: Path) -> int:
    """Train split size of a run, from its config.yaml (imports torch here, once, after the timed runs)."""
    import yaml

    from torchtui.engine.config import from_dict
    from torchtui.engine.data.splits import load_data

    config = from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    return len(load_data(config.data).x_train)


def throughput(tmux: Tmux, rounds: int, epochs: int, threads: int) -> dict[str, list[float]]:
    overrides = ["--epochs", str(epochs), "--set", f"device.threads={threads}"]
    seconds: dict[str, list[float]] = {"headless": [], "tui": []}
    per_core = []  # TUI / headless samples per CPU-second of the training process: contention factored out
    for r in range(rounds):
        summaries, cores = {}, {}
        summaries["headless"], cores["headless"] = headless(tmux.tmp, tmux.tmp / f"runs-headless-{r}", overrides)
        summaries["tui"], cores["tui"] = with_tui(tmux, f"train-{r}", tmux.tmp / f"runs-tui-{r}", overrides)
        for name, summary in summaries.items():
            if summary["state"] != "finished" or summary["epochs"] != epochs:
                raise RuntimeError(f"{name} run ended {summary['state']} at epoch {summary['epochs']}/{epochs}")
            seconds[name].append(summary["seconds"])
        per_core.append(seconds["headless"][-1] * cores["headless"]["cli"]
                        / (seconds["tui"][-1] * cores["tui"].get("worker", math.nan)))
        busy = "  ".join(f"{k} {v:.2f}" for c in cores.values() for k, v in c.items())
        print(f"  round {r + 1}: " + "  ".join(f"{n} {v[-1]:.2f} s" for n, v in seconds.items())
              + f"   cores busy: {busy}   load avg {os.getloadavg()[0]:.1f}", flush=True)
    n = train_samples(Path(summaries["tui"]["run_dir"])) * epochs
    print(f"  {n:,} train samples per run ({n // epochs:,} x {epochs} epochs) on {summaries['tui']['device']}")
    return {**{name: [n / s for s in values] for name, values in seconds.items()}, "per core": per_core}


# ---------------------------------------------------------------------------------------------- 3. key latency

def presses(tmux: Tmux, session: str, cycle: list[tuple[str, str, bool]], samples: int) -> list[float]:
    """Send each (key, pattern, absent) of `cycle` in turn until the pattern shows (or is gone): one sample each,
    whole cycles, so the screen ends as it began."""
    times = []
    for i in range(samples + (-samples) % len(cycle)):
        key, pattern, absent = cycle[i % len(cycle)]
        started = time.perf_counter()
        tmux.keys(session, key)
        tmux.wait(session, pattern, timeout=10, absent=absent)
        times.append(time.perf_counter() - started)
        time.sleep(random.uniform(0.02, 0.12))  # spreads presses over the UI's 100 ms tick, not a wait
    return times


def toggle(key: str, pattern: str) -> list[tuple[str, str, bool]]:
    return [(key, pattern, False), (key, pattern, True)]  # the effect shows, then it is gone


def key_latency(tmux: Tmux, samples: int, threads: int, load: bool) -> dict[str, list[float]]:
    """? and l while moons trains, then ? again with the run paused (same screen, no redraw churn)."""
    session, busy = "keys", load and subprocess.Popen([sys.executable, "-c", "while True: pass"])
    tmux.launch(session, [TORCHTUI, "moons", "--runs-dir", str(tmux.tmp / "runs-keys"), "--epochs", "100000",
                          "--set", f"device.threads={threads}"])
    try:
        tmux.wait(session, FOOTER, timeout=120, interval=0.1)  # space then starts it once the engine is ready
        tmux.keys(session, "Space")
        tmux.wait(session, r"epoch ([2-9]|\d\d+)\.\d\d/100000", timeout=120, interval=0.1)  # charts are live
        capture = []
        for _ in range(20):
            started = time.perf_counter()
            tmux.capture(session)
            capture.append(time.perf_counter() - started)
        result = {"capture": capture, "?": presses(tmux, session, toggle("?", HELP), samples),
                  "l": presses(tmux, session, toggle("l", LOSS_LOG), max(4, samples // 3)),
                  "1/3": presses(tmux, session, [("3", HPARAMS_PANE, False), ("1", DATASET_PANE, False)],
                                 max(4, samples // 3))}
        speed = re.search(r"^\s+running\s.*?([\d,]+) samples/s", tmux.capture(session), re.M)
        print(f"  still training after the presses: {speed.group(1) + ' samples/s (status bar)' if speed else 'NO'}")
        tmux.keys(session, "Space")
        tmux.wait(session, r"^\s+paused\s", timeout=30)
        result["? paused"] = presses(tmux, session, toggle("?", HELP), samples)
    finally:
        tmux.quit(session)
        busy and busy.kill()
    for key, times in result.items():
        print(f"  {key:<9} ms: " + " ".join(f"{t * 1e3:.0f}" for t in times))
    return result


# ---------------------------------------------------------------------------------------------- 4. charts

def chart_redraw(repeats: int) -> list[float]:
    import bench_charts as bc  # beside this script, as tui_lifecycle is

    from torchtui.tui.charts.loss import LossChart

    charts = [LossChart(bc.noisy_history(steps)[0]) for steps in (1_000, 1_000_000)]
    ms = bc.redraw_ms(charts, repeats)
    print(f"  LossChart {bc.WIDTH}x{bc.HEIGHT}, median of {repeats}: 1,000 steps {ms[0]:.1f} ms, 1,000,000 steps "
          f"{ms[1]:.1f} ms ({charts[1].points_plotted} points reach plotext)")
    return ms


# ---------------------------------------------------------------------------------------------- main

def section(title: str, fn, *args):
    print(f"\n{title} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)", flush=True)
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 - a benchmark reports what broke and goes on
        print(f"  FAILED: {type(err).__name__}: {err}", flush=True)
        return None


def report(paint, speed, keys, charts, life, load=False) -> None:
    rows = tui_lifecycle.rows(life) if life else []
    if paint:
        bare, app, tabs = (statistics.median(paint[k]) for k in ("bare", "torchtui", "tabs"))
        ratio = statistics.median(a / b for a, b in zip(paint["torchtui"], paint["bare"]))
        rows.append(("first paint, torchtui moons (median)", f"{app:.3f} s", "", None))
        rows.append(("  bare Textual app with a Footer", f"{bare:.3f} s", "", None))
        rows.append(("  ratio torchtui / bare (median of pairs)", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5))
        rows.append(("  tab titles after the Footer (median)", f"{tabs:.3f} s", "<= 0.1 s", tabs <= 0.1))
    if speed:
        headless, tui = (statistics.median(speed[k]) for k in ("headless", "tui"))
        rows.append(("moons samples/s, headless (median)", f"{headless:,.0f}", "", None))
        rows.append(("moons samples/s, TUI open (median)", f"{tui:,.0f}", "", None))
        rows.append(("  ratio TUI / headless", f"{tui / headless:.2f}", ">= 0.95", tui / headless >= 0.95))
        per_core = statistics.median(speed["per core"])
        rows.append(("  same, per CPU-second of worker vs CLI", f"{per_core:.2f}", "", None))
    if keys:
        cap, _ = median_p95(keys["capture"])
        limit = 0.15 if load else 0.1  # beside a busy process (--load): 150 ms
        for key, what, target in (("?", f"? help open/close, training{', loaded' if load else ''}",
                                   (f"<= {limit * 1e3:.0f} ms", True)),
                                  ("? paused", "? help open/close, paused", ("", None)),
                                  ("l", "l log scale on/off, training", ("", None)),
                                  ("1/3", "1/3 setup pane switch, training", ("", None))):
            med, p95 = median_p95(keys[key])
            rows.append((f"key -> screen p95, {what}", f"{p95 * 1e3:.0f} ms", target[0],
                         p95 <= limit if target[1] else None))
            rows.append((f"  median ({len(keys[key])} presses)", f"{med * 1e3:.0f} ms", "", None))
        p95_ratio = median_p95(keys["?"])[1] / median_p95(keys["? paused"])[1]
        rows.append(("  ratio ? p95 training / paused", f"{p95_ratio:.2f}", "", None))
        rows.append(("  one capture-pane (resolution)", f"{cap * 1e3:.1f} ms", "", None))
    if charts:
        ratio = charts[1] / charts[0]
        rows.append(("chart redraw 1k steps", f"{charts[0]:.1f} ms", "<= 30 ms", charts[0] <= 30))
        rows.append(("chart redraw 1M steps", f"{charts[1]:.1f} ms", "<= 30 ms", charts[1] <= 30))
        rows.append(("  ratio 1M / 1k (flat)", f"{ratio:.2f}", "<= 1.25", ratio <= 1.25))
    print(f"\n{'figure':<50}{'value':>10}  {'target':<10} verdict")
    for name, value, target, ok in rows:
        print(f"{name:<50}{value:>10}  {target:<10} {('PASS' if ok else 'MISS') if target else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds, headless and TUI alternating (3)")
    parser.add_argument("--paints", type=int, default=5, help="first-paint launches of each app (5)")
    parser.add_argument("--epochs", type=int, default=600, help="moons epochs per throughput run (600, ~10 s)")
    parser.add_argument("--samples", type=int, default=30, help="key presses for the ? latency (30)")
    parser.add_argument("--threads", type=int, default=1, help="device.threads for both throughput sides (1)")
    parser.add_argument("--repeats", type=int, default=31, help="chart redraws per size (31)")
    parser.add_argument("--quick", action="store_true", help="one short round of everything (~40 s)")
    parser.add_argument("--only", choices=SECTIONS, help="one section")
    parser.add_argument("--size", default="160x48", help="the terminal's columns x lines (160x48)")
    parser.add_argument("--load", action="store_true", help="keys: a busy process beside the run all the while")
    args = parser.parse_args()
    global WIDTH, HEIGHT
    WIDTH, HEIGHT = (int(n) for n in args.size.split("x"))
    args.rounds, args.paints = max(1, args.rounds), max(1, args.paints)
    if args.quick:
        args.rounds, args.paints, args.epochs, args.samples, args.repeats = 1, 1, 30, 6, 5
    if shutil.which("tmux") is None:
        print("bench_tui: needs tmux on PATH; nothing measured")
        return 0
    print(f"torchtui in tmux {WIDTH}x{HEIGHT}, {os.cpu_count()} CPU(s); python {sys.version.split()[0]}")
    tmp = Path(tempfile.mkdtemp(prefix="torchtui-bench-tui-"))
    tmux = Tmux(tmp)
    try:
        wanted = {args.only} if args.only else SECTIONS
        paint = "paint" in wanted and section(
            f"1. first paint, launch -> Footer on screen (then the tab titles), {args.paints} alternating launches "
            "each", first_paint, tmux, args.paints)
        speed = "throughput" in wanted and section(
            f"2. moons x {args.epochs} epochs, device.threads={args.threads}: headless CLI vs TUI open, {args.rounds} "
            "alternating rounds", throughput, tmux, args.rounds, args.epochs, args.threads)
        keys = "keys" in wanted and section(
            f"3. keypress -> screen: {args.samples} x '?' (help) and some 'l' (log scale) while training, "
            f"{args.samples} x '?' paused{', a busy process beside' if args.load else ''}", key_latency, tmux,
            args.samples, args.threads, args.load)
        charts = "charts" in wanted and section("4. chart redraw, 1,000 vs 1,000,000 steps", chart_redraw, args.repeats)
        life = "lifecycle" in wanted and section(f"5. quit (idle) and restart, {args.rounds} rounds", tui_lifecycle.
                                                 quit_and_restart, tmux, args.rounds, TORCHTUI, BARE_APP, FOOTER, TABS)
    finally:
        tmux.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report(paint, speed, keys, charts, life, args.load)
    print(f"\ncommand: python bench/bench_tui.py {' '.join(sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
