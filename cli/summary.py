"""`torchtui summary PRESET`: the model's per-layer table and parameter totals, built on the CPU."""

from __future__ import annotations

from torchtui.cli.common import EXIT_OK, add_run_options, load_config
from torchtui.engine.schema import ConfigError

HELP = "print the model summary of a preset"


def add_arguments(parser) -> None:
    parser.add_argument("preset", help="preset name or path to a YAML file")
    add_run_options(parser)


def run(args) -> int:
    from torchtui.engine import protocol as p
    from torchtui.engine.run.requests import describe_model

    reply = describe_model(p.DescribeModel(config=load_config(args).to_dict()))
    if reply.error:
        raise ConfigError([reply.error])
    print(reply.text)
    return EXIT_OK
