"""`torchtui resume RUN_DIR`: continue a stopped or killed run from its last.pt (or best.pt), headless."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torchtui.cli.common import OPTION_FIELDS, UsageError, add_json
from torchtui.cli.train import follow, launched_job

HELP = "continue a stopped or killed run from its last.pt"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="the run folder (runs/<time>-<name>; `torchtui runs` lists them)")
    parser.add_argument("--epochs", type=int, help="train up to this many epochs in total")
    parser.add_argument("--from", dest="checkpoint", choices=("last", "best"), default="last",
                        help="the checkpoint to continue from (default last.pt)")
    parser.add_argument("--devices", help="continue on this many devices (or GPUs 0,1, or all): a checkpoint "
                                          "loads on any number; the batch size stays per device")
    parser.add_argument("--device", help="continue on cpu, cuda, cuda:N, mps or auto")
    add_json(parser)


def run(args) -> int:
    from torchtui.engine import presets
    from torchtui.engine import protocol as p
    from torchtui.engine.schema import excerpt

    run_dir = folder_of(args.run_dir)
    overrides = [f"train.epochs={args.epochs}"] if args.epochs is not None else []
    overrides += [f"device.devices={args.devices}"] if args.devices else []
    overrides += [f"device.device={args.device}"] if args.device else []
    # config.yaml is validated like any preset (file:line and field); resume then checks it still fits the
    # checkpoint and applies an edited lr, weight decay or clip as a live change.
    config = presets.load(str(run_dir / "config.yaml"), overrides, OPTION_FIELDS)
    summary = _summary(run_dir)
    done = summary.get("epochs")
    if summary.get("state") == p.FINISHED and isinstance(done, int) and (args.epochs is None or args.epochs <= done):
        raise UsageError(f"resume: run {excerpt(run_dir.name)} finished after {done} epochs; nothing to resume. To "
                         f"train it further give more epochs: torchtui resume {run_dir} --epochs {done + 1}")
    start = p.Start(config=config.to_dict(), resume=str(run_dir), checkpoint=args.checkpoint)
    launch = launched_job()
    if launch is not None:  # under torchrun or srun: every process resumes one rank (the folder on every node)
        from torchtui.cli.launched import train

        return train(start, launch, args.json, False)
    return follow(start, None, args.json)


def folder_of(text: str, command: str = "resume") -> Path:
    """The run folder named by `text`, or a one-line UsageError saying why it is not one."""
    from torchtui.engine.schema import excerpt

    if not text.strip():
        raise UsageError(f"{command}: give a run folder, e.g. runs/20261202-140501-moons (`torchtui runs` lists them)")
    run_dir = Path(text)
    try:
        is_dir = run_dir.is_dir()
        has_config = is_dir and (run_dir / "config.yaml").is_file()
    except (OSError, ValueError) as err:
        raise UsageError(f"{command}: {excerpt(text)} is not a run folder ({getattr(err, 'strerror', None) or err})") \
            from None
    if not is_dir:
        what = "no such folder" if not os.path.lexists(run_dir) else "not a folder"
        raise UsageError(f"{command}: {excerpt(text)} is not a run folder ({what})")
    if not has_config:
        raise UsageError(f"{command}: {excerpt(text)} is not a run folder (no config.yaml)")
    return run_dir


def _summary(run_dir: Path) -> dict:
    try:
        data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
