"""`torchtui rewind RUN`: branch a live run from one of its in-memory snapshots (or list them with --list).

The run stops where it is (last.pt saved, its folder left as a stopped run) and its server goes on training a new
run folder from the snapshot's step, whose origin.json names the parent and the step; live fields given here
(--lr, --lr-scale, --weight-decay, --grad-clip) change at the branch point, recorded in its metrics.jsonl.
"""

from __future__ import annotations

import time

from torchtui.cli.common import EXIT_OK, UsageError

HELP = "branch a live run from an in-memory snapshot (--list shows them), optionally changing lr/wd/clip"
TIMEOUT_S = 60.0


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run id (a prefix is enough) or server pid, as `torchtui ps` lists them")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--step", type=int, help="the newest snapshot at or before this step")
    where.add_argument("--back", type=int, help="the newest snapshot at least N steps before the current step")
    where.add_argument("--list", action="store_true", help="list the run's snapshots and change nothing")
    parser.add_argument("--lr", type=float, help="the base lr from the branch point (train.lr)")
    parser.add_argument("--lr-scale", type=float, help="multiply the lr (schedule and all) by this, e.g. 0.5")
    parser.add_argument("--weight-decay", type=float, help="train.weight_decay from the branch point")
    parser.add_argument("--grad-clip", type=float, help="train.grad_clip from the branch point")
    parser.add_argument("--json", action="store_true", help="print the answer as one JSON object")


def changes_of(args) -> dict:
    named = {"lr": args.lr, "lr_scale": args.lr_scale, "weight_decay": args.weight_decay, "grad_clip": args.grad_clip}
    return {k: v for k, v in named.items() if v is not None}


def run(args) -> int:
    from torchtui.engine import live
    from torchtui.engine.host import ServerHost

    if args.back is not None and args.back < 0:
        raise UsageError("torchtui rewind: --back takes a number of steps, 0 or more")
    if args.list and changes_of(args):
        raise UsageError("torchtui rewind: --list changes nothing; leave out --lr, --lr-scale, --weight-decay and "
                         "--grad-clip")
    try:
        info = live.find(args.run)
    except live.LiveRunError as err:
        raise UsageError(f"torchtui rewind: {err}") from None
    if not info.run_id:
        raise UsageError(f"torchtui rewind: server {info.pid} has no run (start one first)")
    host = ServerHost(info)
    try:
        if args.list:
            return _list(host, info, args.json)
        return _rewind(host, info, args)
    except TimeoutError:
        raise UsageError(f"torchtui rewind: run {info.run_id} did not answer within {TIMEOUT_S:.0f} s") from None
    finally:
        host.detach()


def _answer(host, info, kinds: tuple):
    """The first event of `kinds` for this run, or an Error about it (raised as a UsageError)."""
    from torchtui.engine import protocol as p

    event = host.wait_for(lambda e: isinstance(e, kinds) or (isinstance(e, p.Error) and e.message.startswith(
        ("rewind:", "live change refused"))), timeout=TIMEOUT_S)
    if isinstance(event, p.Error):
        raise UsageError(f"torchtui {event.message}")
    return event


def _list(host, info, as_json: bool) -> int:
    from torchtui.engine import protocol as p
    from torchtui.engine.runs import dumps

    host.send(p.ListSnapshots(request_id=1))
    listed = _answer(host, info, (p.SnapshotsListed,))
    if listed.error:
        raise UsageError(f"torchtui rewind: run {info.run_id}: {listed.error}")
    if as_json:
        print(dumps({"run_id": listed.run_id, "snapshots": listed.snapshots}))
        return EXIT_OK
    print(snapshot_table(listed.snapshots, time.time()))
    return EXIT_OK


def snapshot_table(snapshots: list, now: float) -> str:
    """One line per snapshot, newest first: step, epoch, age, train loss, the first val metric, its run."""
    from torchtui.engine.formatting import fmt_bytes, fmt_step

    if not snapshots:
        return "no snapshots yet (the first is taken as the run starts; train.snapshots may be off)"
    lines = [f"{'step':>9}  {'epoch':>7}  {'age':>7}  {'loss':>10}  {'val':<22}  {'size':>8}  run"]
    for snap in reversed(snapshots):
        val = snap.get("val") or {}
        shown = next(((k, val[k]) for k in ("accuracy", "r2", "loss") if isinstance(val.get(k), (int, float))), None)
        loss = snap.get("loss")
        lines.append(f"{fmt_step(snap['step']):>9}  {snap['epoch']:>7.2f}  {max(0, now - snap['time']):>6.0f}s  "
                     f"{(f'{loss:.4g}' if isinstance(loss, (int, float)) else '–'):>10}  "
                     f"{(f'{shown[0]} {shown[1]:.4g}' if shown else '–'):<22}  {fmt_bytes(snap['bytes']):>8}  "
                     f"{snap['run_id']}")
    return "\n".join(lines)


def _rewind(host, info, args) -> int:
    from torchtui.engine import protocol as p
    from torchtui.engine.formatting import fmt_step
    from torchtui.engine.runs import dumps

    host.send(p.Rewind(step=args.step, back=args.back or 0, changes=changes_of(args), run_id=info.run_id,
                       request_id=1))
    branched = _answer(host, info, (p.Branched,))
    host.wait_for(lambda e: isinstance(e, p.RunStarted) and e.run_id == branched.branch_id, timeout=TIMEOUT_S)
    if args.json:
        print(dumps({"parent": branched.run_id, "branch": branched.branch_id, "branch_dir": branched.branch_dir,
                     "step": branched.step, "changes": branched.changes}))
        return EXIT_OK
    said = ", ".join(f"{k} {v:g}" for k, v in branched.changes.items())
    print(f"rewound {branched.run_id} to step {fmt_step(branched.step)}: branch {branched.branch_id} trains on"
          + (f" with {said}" if said else "") + f" ({branched.branch_dir}); the parent is stopped")
    return EXIT_OK
