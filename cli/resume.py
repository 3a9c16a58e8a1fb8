"""`torchtui resume RUN_DIR`: continue a stopped or killed run from its last.pt, headless."""

from __future__ import annotations

from pathlib import Path

from torchtui.cli.common import UsageError, add_json
from torchtui.cli.train import follow

HELP = "continue a stopped or killed run from its last.pt"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="the run folder (runs/<time>-<name>)")
    parser.add_argument("--epochs", type=int, help="train up to this many epochs in total")
    add_json(parser)


def run(args) -> int:
    from torchtui.engine import presets
    from torchtui.engine import protocol as p
    from torchtui.engine.config import from_dict
    from torchtui.engine.overrides import apply_overrides

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UsageError(f"torchtui resume: {run_dir} is not a run folder (no config.yaml)")
    config = {}
    if args.epochs is not None:
        data = apply_overrides(presets.read_yaml(run_dir / "config.yaml"), [f"train.epochs={args.epochs}"])
        config = from_dict(data).to_dict()
    return follow(p.Start(config=config, resume=str(run_dir)), None, args.json)
