"""`torchtui lr-find PRESET`: the LR range test on a fresh model of the preset, with the lr it suggests."""

from __future__ import annotations

import sys

from torchtui.cli.common import EXIT_OK, EXIT_RUN_FAILED, UsageError, add_json, load_config
from torchtui.engine.runs import dumps

HELP = "find a learning rate: the loss as the lr grows exponentially (LR range test), and the lr it suggests"
ROWS = 16   # rows of the text chart
BAR = 32    # width of its bars


def add_arguments(parser) -> None:
    parser.add_argument("preset", help="preset name or path to a YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.optimizer=sgd (repeatable)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (same as --set device.device=...)")
    parser.set_defaults(epochs=None)  # the sweep takes --steps optimizer steps, not epochs
    parser.add_argument("--start", type=float, default=1e-7, help="the first lr (default 1e-7)")
    parser.add_argument("--end", type=float, default=10.0, help="the last lr (default 10)")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps from --start to --end (default 100)")
    add_json(parser)


def run(args) -> int:
    config = load_config(args)
    from torchtui.engine.run import lr_find

    problem = lr_find.check_range(args.start, args.end, args.steps, names=("--start", "--end", "--steps"))
    if problem:
        raise UsageError(problem)
    out = sys.stderr if args.json else sys.stdout
    try:
        curve = lr_find.for_config(config, args.start, args.end, args.steps)
    except ValueError as err:  # an empty train split, a model with nothing to train: the user can fix it
        raise UsageError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - a user model or data file may raise anything
        message = f"the LR range test failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        print(f"torchtui: error: {message}", file=sys.stderr)
        if args.json:
            print(dumps({"state": "failed", "error": message, "suggested_lr": None, "points": []}))
        return EXIT_RUN_FAILED
    for note in curve.notes:
        print(f"warning: {note}", file=sys.stderr)
    print(report(curve, config, args.preset), file=out)
    if args.json:
        print(dumps({"state": "finished", "suggested_lr": curve.suggested, "steepest_lr": curve.steepest,
                     "minimum_lr": curve.minimum, "stopped": curve.stopped, "steps": len(curve.lrs),
                     "seconds": round(curve.seconds, 3), "points": curve.points}))
    return EXIT_OK if curve.suggested is not None else EXIT_RUN_FAILED


def report(curve, config, preset: str) -> str:
    """A text chart of the smoothed loss against lr (one row per lr, sampled) and the suggestion."""
    lines = [f"lr range test: {config.name}, {config.train.optimizer}, {len(curve.lrs)} steps in "
             f"{curve.seconds:.2g} s" + (f"; stopped: {curve.stopped}" if curve.stopped else "")]
    if not curve.lrs:
        lines.append("no finite loss was recorded: try a lower --start")
        return "\n".join(lines)
    lines += chart(curve)
    if curve.suggested is None:
        lines.append("no suggestion: the loss did not fall (try a wider range, or more --steps)")
        return "\n".join(lines)
    how = "steepest descent" if curve.steepest is not None else "minimum ÷ 10"
    lines.append(f"suggested lr: {curve.suggested:.3g} ({how}); minimum ÷ 10: {curve.minimum:.3g}")
    lines.append(f"use it: torchtui train {preset} --set train.lr={curve.suggested:.2g}")
    return "\n".join(lines)


def chart(curve) -> list[str]:
    n = len(curve.lrs)
    rows = sorted({round(i * (n - 1) / max(1, ROWS - 1)) for i in range(min(ROWS, n))})
    marks = {}
    for lr, label in ((curve.minimum * 10 if curve.minimum else None, "← minimum"), (curve.steepest, "← steepest")):
        if lr is not None:
            at = curve.lrs.index(lr) if lr in curve.lrs else min(range(n), key=lambda i: abs(curve.lrs[i] - lr))
            rows = sorted(set(rows) | {at})
            marks[at] = label
    # Bars from the lowest loss to the first one: the rise at the end would otherwise flatten the descent.
    lo, first = min(curve.losses), curve.losses[0]
    hi = first if first > lo else max(curve.losses)
    out = [f"{'lr':>10}  {'loss':>10}"]
    for i in rows:
        loss = curve.losses[i]
        bar = "#" * max(1, min(BAR, round(BAR * (loss - lo) / (hi - lo)))) if hi > lo else "#"
        bar += ">" if loss > hi else " "
        out.append(f"{curve.lrs[i]:>10.3g}  {loss:>10.4g}  {bar:<{BAR + 1}} {marks.get(i, '')}".rstrip())
    return out
