"""What the commands share: exit codes, one-line usage errors, the run options and loading a preset with them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from torchtui.engine.errors import UserError

if TYPE_CHECKING:
    from torchtui.engine.config import ExperimentConfig

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(UserError):
    """Bad arguments or config: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors also exit 2 with one line
        raise UsageError(f"{self.prog}: {message}")


def add_run_options(cmd: argparse.ArgumentParser) -> None:
    """--set, --device and --epochs: the overrides every command that loads a preset takes."""
    cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set train.lr=0.01 (repeatable)")
    cmd.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (same as --set device.device=...)")
    cmd.add_argument("--epochs", type=int, help="number of epochs (same as --set train.epochs=N)")
    cmd.add_argument("--devices", help="train data parallel on N devices, GPUs 0,1 or all (same as --set "
                                       "device.devices=...); the batch size is per device")


def add_json(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")


def add_runs_dir(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--runs-dir", help="where run folders go (default: $TORCHTUI_RUNS_DIR, else ./runs if it "
                                         "exists, else $XDG_DATA_HOME/torchtui/runs, ~/.local/share/torchtui/runs)")


def overrides_of(args) -> list[str]:
    """--set, --device and --epochs as --set texts."""
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device.device={args.device}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if getattr(args, "devices", None):
        overrides.append(f"device.devices={args.devices}")
    return overrides


# The fields options set, so a bad value is blamed on the option (`--epochs: ...`), not on the preset file.
OPTION_FIELDS = {"train.epochs": "--epochs", "device.device": "--device", "device.devices": "--devices"}


def load_config(args) -> ExperimentConfig:
    """The validated config from a preset plus --set, --device and --epochs; errors name file:line and field."""
    from torchtui.engine import presets  # the schema's imports: not on attach's way to its first frame

    return presets.load(args.preset, overrides_of(args), OPTION_FIELDS)
