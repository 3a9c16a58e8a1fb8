"""Headless progress: a live line on a terminal, plain per-epoch lines otherwise, from engine events."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from torchtui.cli.output import fit_parts, live_terminal, terminal_width
from torchtui.engine import protocol as p
from torchtui.engine.formatting import data_wait_text, fmt_duration, fmt_step

REDRAW_SECONDS = 0.1
LIVE_PRIORITY = [0, 1, 2, 5, 3, 6, 4]  # epoch, step, loss, ETA, val metrics (all, two or one), data wait, samples/s


class Progress:
    """Follows one run's events and reports them; returns the run's summary when it ends."""

    def __init__(self, out: TextIO, json_mode: bool = False):
        # With --json, stdout carries only the final JSON line; progress goes to stderr.
        self.out = sys.stderr if json_mode else out
        self.live = live_terminal(self.out)
        self.started: p.RunStarted | None = None
        self.last: p.StepStats | None = None
        self.refused = ""  # why the engine would not start the run
        self.val: dict = {}
        self._drawn = 0.0
        self._line_open = False
        self.train_sum, self.train_n = 0.0, 0  # train losses since the last val evaluation

    def note(self, message: str) -> None:
        self._end_line()
        print(message, file=sys.stderr, flush=True)

    def follow(self, host) -> dict | None:
        while True:
            event = host.get(timeout=0.5)
            if event is None:
                continue
            summary = self.handle(event)
            if summary is not None or (isinstance(event, p.StateChanged) and event.run_id is None
                                       and event.state == p.FAILED):
                self._end_line()
                return summary

    def handle(self, event) -> dict | None:
        if isinstance(event, p.RunStarted):
            self.started = event
            sizes = ", ".join(f"{k} {v}" for k, v in event.splits.items())
            batch = event.config.get("train", {}).get("batch_size") if isinstance(event.config, dict) else None
            if event.world_size > 1 and batch:  # the preset's batch is each process's
                sizes += f"; batch {event.world_size} × {batch} = {event.world_size * batch}"
            threads = f" ({event.threads} thread{'' if event.threads == 1 else 's'})" if event.threads else ""
            self._print(f"run {event.run_id} on {event.device}{threads}: {event.params:,} parameters, {sizes}; "
                        + (f"{event.epochs} epochs" if event.epochs else "epochs until stopped (Ctrl-C)")
                        + f" of {event.steps_per_epoch} steps -> {event.run_dir}")
            if event.start_step:
                self._print(f"resuming from step {fmt_step(event.start_step)} (epoch {event.start_epoch})")
        elif isinstance(event, p.StepStats):
            self.last = event
            finite = [v for v in event.loss if math.isfinite(v)]
            self.train_sum, self.train_n = self.train_sum + sum(finite), self.train_n + len(finite)
            if self.live and time.monotonic() - self._drawn >= REDRAW_SECONDS:
                self._draw()
        elif isinstance(event, p.EvalResult):
            self._eval(event)
        elif isinstance(event, p.Log):
            self.note(f"{event.level}: {event.message}")
        elif isinstance(event, p.Error):
            if self.started is None:  # the run was refused: the command says why, once (and in --json)
                self.refused = event.message
            else:
                self.note(f"error: {event.message}")
        elif isinstance(event, p.HparamsChanged):
            # base_lr moves with lr by the same factor: lr (what the next step uses) says it
            self.note("changed " + ", ".join(f"{k} {a:g} -> {b:g}" for k, (a, b) in event.changes.items()
                                              if k != "base_lr"))
        elif isinstance(event, p.RunFinished):
            s = event.summary
            reason = f" ({s['reason']})" if s.get("reason") else ""
            self._print(f"{event.state}{reason} after {s['epochs']} epochs, {fmt_step(s['steps'])} steps, "
                        f"{s['seconds']:.1f} s; {_metrics_text('val', s['val'])} {_metrics_text('test', s['test'])}")
            if event.state == p.STOPPED:
                self._print(f"continue it: torchtui resume {s['run_dir']}")
            return s
        return None

    def _eval(self, event: p.EvalResult) -> None:
        train = ""
        if event.split == "val":
            self.val = event.metrics
            # Piped lines carry the mean train loss since the last one: the val numbers alone hide overfitting.
            train = f"train loss {self.train_sum / self.train_n:.4g}  " if self.train_n else ""
            self.train_sum, self.train_n = 0.0, 0
        if not self.live or event.split == "test":
            self._print(f"epoch {event.epoch} step {fmt_step(event.step)}: "
                        f"{train}{_metrics_text(event.split, event.metrics)}"
                        + (f" {self.last.samples_per_s:,.0f} samples/s" if self.last else "")
                        + (f"  {data_wait_text(self.last.data_wait)}" if self.last and self.last.data_wait is not None
                           else ""))
        else:
            self._draw()

    def _draw(self) -> None:
        s, st = self.last, self.started
        if s is None or st is None or not s.step:
            return
        epoch = s.epoch
        eta = fmt_duration(s.eta_s) if st.total_steps else "∞"  # train.epochs 0: until stopped
        # In the order shown; a narrow terminal loses the last of LIVE_PRIORITY first (a wrapped line would
        # leave a copy behind at each redraw).
        parts = [f"epoch {epoch:.2f}/{st.epochs or '∞'}",
                 f"step {fmt_step(s.step[-1])}/{fmt_step(st.total_steps) if st.total_steps else '∞'}",
                 f"loss {s.loss[-1]:.4g}", _val_ways(self.val), f"{s.samples_per_s:,.0f} samples/s",
                 f"ETA {eta}", data_wait_text(s.data_wait) if s.data_wait is not None else ""]
        text = fit_parts(parts, LIVE_PRIORITY, terminal_width(self.out))
        self.out.write("\r\x1b[2K" + text)
        self.out.flush()
        self._drawn = time.monotonic()
        self._line_open = True

    def _end_line(self) -> None:
        if self._line_open:
            self.out.write("\n")
            self.out.flush()
            self._line_open = False

    def _print(self, text: str) -> None:
        self._end_line()
        print(text, file=self.out, flush=True)


def _val_ways(metrics: dict) -> tuple[str, ...]:
    """The val metrics as the live line may say them, longest first: all, two, then the one after the loss."""
    keys = [k for k in ("loss", "perplexity", "bpc", "accuracy", "f1", "mae", "r2") if k in metrics]
    ways = [_metrics_text("val", {k: metrics[k] for k in keys[:n]}) for n in (len(keys), 2)]
    ways.append(_metrics_text("val", {k: metrics[k] for k in keys[1:2] or keys[:1]}))
    return tuple(dict.fromkeys(ways))  # each once, in order


def _metrics_text(split: str, metrics: dict) -> str:
    keys = [k for k in ("loss", "perplexity", "bpc", "accuracy", "f1", "mae", "r2") if k in metrics]
    if not keys:
        return ""
    return f"{split} " + " ".join(f"{k} {metrics[k]:.4g}" for k in keys)
