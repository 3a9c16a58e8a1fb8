"""Run servers (runs that outlive the terminal): throughput, attaching to a long run, events a client takes.

    python bench/bench_live.py [--rounds 3] [--epochs 300] [--steps 100000] [--attaches 3] [--quick]

1. Throughput: the `moons` preset for `--epochs`, alternating (a) the engine in a spawn worker behind a
   pipe (WorkerHost, the app's engine before run servers) and (b) a run server in its own session behind
   a Unix socket (ServerHost), one torch thread each; samples/s = train samples x epochs / summary seconds.
2. Attach: a detached run of a small MLP trained past `--steps` steps and paused there; `torchtui attach` in
   tmux 160x48, timed from launch to the first screen whose charts reach back over the run (an x-axis tick
   past 60 % of the last step: ticks are round numbers), alternating with a plain `torchtui moons` launch
   timed to its Footer, median of `--attaches` each, and their ratio. Beside it, the client's own part in
   one process: the server's History message received and applied, against reading metrics.jsonl into
   events and applying those (what a client did before the server kept the history).
3. Events a client keeps up with: StepStats of 25 steps sent over a Unix socket (multiprocessing.connection,
   as the server does) as fast as the receiver takes them, events/s.

Not a test: prints figures and ratios, and always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Client, Listener
from pathlib import Path

from bench_tui import FOOTER, Tmux  # noqa: E402 - bench/ is on sys.path when run as a script

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.host import ServerHost, WorkerHost
from torchtui.engine.runs import replay_events

TORCHTUI = str(Path(sys.executable).with_name("torchtui"))


def samples_of(done: p.RunFinished, n_train: int) -> float:
    return n_train * done.summary["epochs"] / done.summary["seconds"]


def throughput(rounds: int, epochs: int, tmp: Path) -> dict[str, list[float]]:
    config = presets.load("moons", [f"train.epochs={epochs}", "device.device=cpu", "device.threads=1"]).to_dict()
    data = config["data"]
    n_train = data["n_samples"] - round(data["n_samples"] * data["val_fraction"]) - round(
        data["n_samples"] * data["test_fraction"])
    out: dict[str, list[float]] = {"worker": [], "server": []}
    for _ in range(rounds):
        for kind in ("worker", "server"):
            runs = tmp / f"runs-{kind}"
            host = WorkerHost(str(runs), threads=1) if kind == "worker" else ServerHost.start(str(runs), threads=1)
            with host:
                host.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=120)
                host.send(p.Start(config=config, runs_dir=str(runs)))
                done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=900)
            out[kind].append(samples_of(done, n_train))
    return out


def long_run(steps: int, tmp: Path) -> tuple[ServerHost, p.RunStarted]:
    """A detached 2->8->8->2 MLP trained to `steps` steps and paused there."""
    config = {"name": "long", "data": {"source": "moons", "n_samples": 200},
              "model": {"layers": [8, 8]}, "device": {"device": "cpu", "threads": 1},
              "train": {"batch_size": 16, "epochs": 10_000_000, "eval_every": 0}}
    host = ServerHost.start(str(tmp / "runs-long"), threads=1)
    host.send(p.Start(config=config, runs_dir=str(tmp / "runs-long")))
    started = host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=120)
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step and e.step[-1] >= steps, timeout=1800)
    host.send(p.Pause())
    host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, timeout=60)
    return host, started


def ticks_reach(screen: str, last: int) -> bool:
    lines = screen.splitlines()
    for i, line in enumerate(lines[:-1]):
        if "└" in line and any(int(t.replace(",", "")) >= 0.6 * last
                               for t in re.findall(r"\d{1,3}(?:,\d{3})+|\d+", lines[i + 1])):
            return True
    return False


def attach_times(started: p.RunStarted, last: int, attaches: int, tmp: Path) -> dict[str, list[float]]:
    """Alternating: `torchtui attach` until the loss chart reaches back over the run, and a plain `torchtui
    moons` launch until its Footer shows (the same python, the same tmux: what an app costs before any run)."""
    tmux = Tmux(tmp)
    env = ["env", f"XDG_RUNTIME_DIR={os.environ['XDG_RUNTIME_DIR']}"]
    times: dict[str, list[float]] = {"attach": [], "launch": []}
    try:
        for i in range(attaches):
            for kind in times:
                session = f"{kind}{i}"
                t0 = time.monotonic()
                if kind == "attach":
                    tmux.launch(session, [*env, TORCHTUI, "attach", started.run_id])
                    deadline = t0 + 120
                    while not ticks_reach(tmux.capture(session), last) and time.monotonic() < deadline:
                        pass  # capture-pane back to back: its own cost bounds the resolution
                else:
                    tmux.launch(session, [*env, TORCHTUI, "moons", "--runs-dir", str(tmp / "runs-launch")])
                    tmux.wait(session, FOOTER, timeout=60, interval=0.0)
                times[kind].append(time.monotonic() - t0)
                if kind == "attach":
                    tmux.keys(session, "d")  # detach: the run stays paused for the next attach
                    tmux.wait(session, r"goes on", timeout=30)
                tmux.cmd("kill-session", "-t", session)
    finally:
        tmux.close()
    return times


def client_work(started: p.RunStarted) -> dict[str, float]:
    """What a client does to draw the run: now, take the server's History (connect, receive, apply); before
    (kept for the ratio), read metrics.jsonl into events and apply each."""
    from torchtui.engine.history import RunHistory

    t0 = time.perf_counter()
    client = ServerHost.attach(started.run_id)
    history = RunHistory()
    message = client.wait_for(lambda e: history.apply(e) is not None and isinstance(e, p.History), timeout=60)
    t1 = time.perf_counter()
    client.detach()
    t2 = time.perf_counter()
    events, last = replay_events(started)
    t3 = time.perf_counter()
    old = RunHistory()
    old.apply(started)
    for event in events:
        old.apply(event)
    t4 = time.perf_counter()
    return {"history": t1 - t0, "bytes": len(json.dumps(message.state)), "read": t3 - t2, "apply": t4 - t3,
            "last": last}


def events_per_s(n: int = 20_000) -> float:
    address = os.path.join(tempfile.mkdtemp(), "bench.sock")
    event = p.StepStats("r", step=list(range(25)), epoch=1.0, loss=[0.5] * 25, lr=[1e-3] * 25, acc_steps=[3, 7],
                        acc=[0.9, 0.9], layer_steps=[9], grad_norm=[1.0], layer_grad_norm=[[0.1] * 3],
                        update_ratio=[[1e-3] * 3], samples_per_s=1e5, eta_s=1.0, progress=0.5)
    with Listener(address, family="AF_UNIX", authkey=b"k") as listener:
        def send():
            conn = listener.accept()
            for _ in range(n):
                conn.send(event)
            conn.close()
        threading.Thread(target=send, daemon=True).start()
        conn = Client(address, family="AF_UNIX", authkey=b"k")
        t0, got = time.perf_counter(), 0
        while got < n:
            conn.recv()
            got += 1
        return n / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--attaches", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, 100 epochs, 20,000 steps, 1 attach")
    parser.add_argument("--only", choices=["throughput", "attach", "events"])
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.epochs, args.steps, args.attaches = 1, 100, 20_000, 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    os.environ["XDG_RUNTIME_DIR"] = str(tmp / "xdg")
    (tmp / "xdg").mkdir(mode=0o700)

    if args.only in (None, "throughput"):
        report_throughput(args, tmp)
    if args.only in (None, "attach"):
        report_attach(args, tmp)
    if args.only in (None, "events"):
        rate = events_per_s()
        print(f"3. StepStats events (25 steps each) a client receives over the socket: {rate:,.0f} events/s "
              f"({rate * 25:,.0f} steps/s); the engine flushes about 10 a second")
    return 0


def report_throughput(args, tmp: Path) -> None:
    speed = throughput(args.rounds, args.epochs, tmp)
    worker, server = statistics.median(speed["worker"]), statistics.median(speed["server"])
    print(f"1. throughput, moons x {args.epochs} epochs, 1 torch thread, median of {args.rounds}:")
    print(f"   worker process (pipe)  {worker:>10,.0f} samples/s   {[round(v) for v in speed['worker']]}")
    print(f"   run server (socket)    {server:>10,.0f} samples/s   {[round(v) for v in speed['server']]}")
    print(f"   server / worker        {server / worker:.3f}   (target >= 0.95)")


def report_attach(args, tmp: Path) -> None:
    host, started = long_run(args.steps, tmp)
    try:
        work = client_work(started)
        last = work["last"]
        print(f"2. attach to a paused run at step {last:,} (metrics.jsonl "
              f"{(Path(started.run_dir) / 'metrics.jsonl').stat().st_size / 2**20:.1f} MiB):")
        print(f"   client work: the server's History ({work['bytes'] / 2**20:.2f} MiB as JSON) connected, received and "
              f"applied in {work['history']:.3f} s; reading metrics.jsonl instead (as before): "
              f"{work['read']:.3f} s + applying its events {work['apply']:.3f} s "
              f"= {(work['read'] + work['apply']) / work['history']:.1f}x longer")
        times = attach_times(started, last, args.attaches, tmp)
        attach, launch = (statistics.median(times[k]) for k in ("attach", "launch"))
        print("   `torchtui attach` -> loss chart drawn to the last step, tmux 160x48: "
              f"median {attach:.2f} s {[round(t, 2) for t in times['attach']]}   (target <= 1 s)")
        print(f"   `torchtui moons` -> Footer shown, same tmux, alternating: median {launch:.2f} s "
              f"{[round(t, 2) for t in times['launch']]};  attach / launch {attach / launch:.2f}")
    finally:
        host.close()


if __name__ == "__main__":
    sys.exit(main())
