"""`torchtui predict RUN_DIR --input FILE`: a trained run's answers for new inputs, written as a CSV."""

from __future__ import annotations

from pathlib import Path

from torchtui.cli.common import EXIT_OK, UsageError, add_json
from torchtui.cli.resume import folder_of

HELP = "predict with a trained run: its checkpoint and preprocessing applied to a CSV, .npz/.pt, IDX or image folder"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (`torchtui runs` lists them)")
    parser.add_argument("--input", "-i", required=True, metavar="FILE",
                        help="a CSV with the run's feature columns, an .npz/.pt holding X, an IDX folder or file, "
                             "or a folder of images (class subfolders give the true labels)")
    parser.add_argument("--output", "-o", default="", metavar="FILE",
                        help="where the CSV goes (default: RUN_DIR/predictions/<input name>.csv; - for stdout)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which weights to use (default: best, the best val metric)")
    add_json(parser)


def run(args) -> int:

    from torchtui.engine.errors import DataError
    from torchtui.engine.files import atomic_write_text
    from torchtui.engine.run import predict as pr
    from torchtui.engine.runs import dumps

    run_dir = folder_of(args.run_dir, "predict")
    trained = pr.load_trained(str(run_dir), args.checkpoint)
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
