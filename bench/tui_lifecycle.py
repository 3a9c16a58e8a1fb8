"""bench_tui's section 5: how long `q` takes to give the terminal back, and `r` to have the new run training.

Quit: `torchtui moons` idle (engine ready, panes up), q, then the time to the Footer gone from the screen
(the terminal restored) and to the process gone (the shell's prompt); a bare Textual app with a Footer quit
the same way in the same round is the baseline (Textual's own teardown). Restart: moons training, `r r`,
the time from the status bar's `stopped` to `running` again (the new run's data and model included), and
the first start's space -> `running` in the same app as its baseline (the same data and model).
"""

from __future__ import annotations

import statistics
import sys
import time

RUNNING, STOPPED = r"^\s+running\s", r"^\s+stopped\s"


def _until_dead(tmux, session: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not tmux.dead(session):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{session} still running {timeout:.0f} s after q")
        # no sleep: each `tmux display` is a process launch, which bounds the resolution (~5-10 ms)


def _quit(tmux, session: str, footer: str) -> tuple[float, float]:
    """q; seconds until the Footer is gone and until the process has exited."""
    started = time.perf_counter()
    tmux.keys(session, "q")
    tmux.wait(session, footer, timeout=30, absent=True)
    restored = time.perf_counter() - started
    _until_dead(tmux, session)
    return restored, time.perf_counter() - started


def _quit_round(tmux, r: int, torchtui: str, bare: list[str], footer: str, tabs: str) -> dict[str, tuple]:
    out = {}
    tmux.launch(f"quit-bare-{r}", bare)
    tmux.wait(f"quit-bare-{r}", footer, timeout=60)
    out["quit bare"] = _quit(tmux, f"quit-bare-{r}", footer)
    session = f"quit-{r}"
    tmux.launch(session, [torchtui, "moons", "--runs-dir", str(tmux.tmp / "runs-quit")])
    try:
        tmux.wait(session, tabs, timeout=60)
        tmux.wait(session, r"engine ready", timeout=120, interval=0.1)  # idle: the state the issue timed
        out["quit"] = _quit(tmux, session, footer)
    finally:
        tmux.cmd("kill-session", "-t", session)
        tmux.cmd("kill-session", "-t", f"quit-bare-{r}")
    return out


def _confirm(tmux, session: str, key: str, title: str) -> None:
    """`key`, then `key` again once its dialog shows (a second press that beats the dialog is lost)."""
    tmux.keys(session, key)
    tmux.wait(session, title, timeout=30)
    tmux.keys(session, key)


def _restart_round(tmux, r: int, torchtui: str) -> dict[str, float]:
    session = f"restart-{r}"
    tmux.launch(session, [torchtui, "moons", "--runs-dir", str(tmux.tmp / "runs-restart"), "--epochs", "100000",
                          "--set", "device.threads=1"])
    try:
        tmux.wait(session, r"engine ready", timeout=120, interval=0.1)
        started = time.perf_counter()
        tmux.keys(session, "Space")
        tmux.wait(session, RUNNING, timeout=60)
        first = time.perf_counter() - started
        tmux.wait(session, r"epoch ([2-9]|\d\d+)\.\d\d/100000", timeout=120, interval=0.1)
        _confirm(tmux, session, "r", "Restart the run")
        tmux.wait(session, STOPPED, timeout=60)
        stopped = time.perf_counter()
        tmux.wait(session, RUNNING, timeout=60)
        restart = time.perf_counter() - stopped
        _confirm(tmux, session, "x", "Stop the run")  # the run server would train on after the session
        tmux.wait(session, STOPPED, timeout=60)
        return {"start": first, "restart": restart}
    finally:
        tmux.quit(session)


def quit_and_restart(tmux, rounds: int, torchtui: str, bare_app: str, footer: str, tabs: str) -> dict[str, list]:
    """`rounds` of: a bare app's quit, torchtui's idle quit, torchtui's restart (and first start)."""
    bare = tmux.tmp / "bare_app.py"
    bare.write_text(bare_app)
    times: dict[str, list] = {"quit": [], "quit bare": [], "restart": [], "start": []}
    for r in range(rounds):
        for key, value in (*_quit_round(tmux, r, torchtui, [sys.executable, str(bare)], footer, tabs).items(),
                           *_restart_round(tmux, r, torchtui).items()):
            times[key].append(value)
        q, b = times["quit"][-1], times["quit bare"][-1]
        print(f"  round {r + 1}: quit: screen back {q[0]:.3f} s, exited {q[1]:.3f} s (bare app {b[0]:.3f} / "
              f"{b[1]:.3f} s)   restart: stopped -> running {times['restart'][-1]:.3f} s (first start "
              f"{times['start'][-1]:.3f} s)", flush=True)
    return times


def rows(times: dict[str, list]) -> list[tuple]:
    """bench_tui's report rows: (figure, value, target, verdict)."""
    med = statistics.median
    exited, bare = med(t[1] for t in times["quit"]), med(t[1] for t in times["quit bare"])
    restart, start = med(times["restart"]), med(times["start"])
    return [("quit, idle: q -> process gone (median)", f"{exited:.3f} s", "<= 0.5 s", exited <= 0.5),
            ("  q -> terminal restored (median)", f"{med(t[0] for t in times['quit']):.3f} s", "", None),
            ("  ratio torchtui / bare Textual app (median of pairs)",
             f"{med(a[1] / b[1] for a, b in zip(times['quit'], times['quit bare'])):.2f}", "", None),
            ("  bare Textual app q -> gone (median)", f"{bare:.3f} s", "", None),
            ("restart: stopped -> running again (median)", f"{restart:.3f} s", "<= 1 s", restart <= 1),
            ("  first start, space -> running (median)", f"{start:.3f} s", "", None),
            ("  ratio restart / first start (median of pairs)",
             f"{med(a / b for a, b in zip(times['restart'], times['start'])):.2f}", "", None)]
