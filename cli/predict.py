"""`torchtui predict RUN_DIR --input FILE`: a trained run's answers for new inputs, written as a CSV; `--prompt TEXT`:
what a run trained on text writes after it."""

from __future__ import annotations

from pathlib import Path

from torchtui.cli.common import EXIT_OK, UsageError, add_json
from torchtui.cli.resume import folder_of

HELP = ("predict with a trained run: its checkpoint and preprocessing applied to a CSV, .npz/.pt, IDX or image "
        "folder, or, for a run trained on text, the text it writes after --prompt")


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (`torchtui runs` lists them)")
    parser.add_argument("--input", "-i", default=None, metavar="FILE",
                        help="a CSV with the run's feature columns, an .npz/.pt holding X, an IDX folder or file, "
                             "or a folder of images (class subfolders give the true labels)")
    parser.add_argument("--output", "-o", default="", metavar="FILE",
                        help="where the CSV goes (default: RUN_DIR/predictions/<input name>.csv; - for stdout)")
    parser.add_argument("--prompt", "-p", default=None, metavar="TEXT",
                        help="a run trained on text (next-token data): print what its model writes after TEXT")
    parser.add_argument("--tokens", "-n", type=int, default=None, metavar="N",
                        help="--prompt: tokens to generate (default: the run's predict.length)")
    parser.add_argument("--temperature", type=float, default=None, metavar="T",
                        help="--prompt: sampling temperature (default: the run's predict.temperature; 0 = greedy)")
    parser.add_argument("--top-k", type=int, default=None, metavar="K",
                        help="--prompt: sample among the K likeliest tokens (default: the run's predict.top_k)")
    parser.add_argument("--seed", type=int, default=None, help="--prompt: seed the sampling (the same text again)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which weights to use (default: best, the best val metric)")
    add_json(parser)


def run(args) -> int:

    from torchtui.engine.errors import DataError
    from torchtui.engine.files import atomic_write_text
    from torchtui.engine.run import predict as pr
    from torchtui.engine.runs import dumps

    if (args.input is None) == (args.prompt is None):
        raise UsageError("predict: give --input FILE (inputs to answer) or --prompt TEXT (a text run writes on)")
    for name in ("tokens", "temperature", "top_k"):
        value = getattr(args, name)
        if value is not None and (value < 0 or (name == "tokens" and value < 1)):
            least = "at least 1" if name == "tokens" else "0 or more"
            raise UsageError(f"--{name.replace('_', '-')}: must be {least}, got {value}")
    run_dir = folder_of(args.run_dir, "predict")
    trained = pr.load_trained(str(run_dir), args.checkpoint)
    if args.prompt is not None:
        return _generate(args, trained, run_dir)
    try:
        inputs = pr.read_inputs(args.input, trained)
    except DataError as err:
        raise UsageError(str(err)) from None
    labels, probs = pr.predict(trained, inputs.x)
    text = pr.to_csv(inputs, labels, probs, trained.classes())
    scores = pr.agreement(inputs, labels, trained.data["task"])
    if args.output == "-":
        print(text, end="")
        return EXIT_OK
    out = Path(args.output) if args.output else run_dir / "predictions" / f"{Path(args.input.rstrip('/')).stem}.csv"
    atomic_write_text(out, text)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
    print(f"{len(labels):,} predictions from {run_dir.name} ({args.checkpoint}.pt) -> {out}"
          + (f"; against the input's own targets: {shown}" if shown else ""))
    if args.json:
        print(dumps({"output": str(out), "rows": len(labels), "checkpoint": args.checkpoint, **scores}))
    return EXIT_OK


def _generate(args, trained, run_dir) -> int:
    """Print the prompt and what the model writes after it (the text alone; --json adds the figures)."""
    import sys

    from torchtui.engine.run import predict as pr
    from torchtui.engine.runs import dumps

    text, note = pr.generate_text(trained, args.prompt, args.tokens, args.temperature, args.top_k, args.seed)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(dumps({"prompt": args.prompt, "text": text, "checkpoint": args.checkpoint, "run_dir": str(run_dir)}))
    else:
        print(args.prompt + text)
    return EXIT_OK
