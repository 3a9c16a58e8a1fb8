"""Tokens/s of the engine against a plain nanoGPT-style loop on the char-lm preset, measured in turn in one process.

    python bench/bench_text_lm.py [--rounds 3] [--epochs 2] [--device cpu] [--precision fp32|bf16] [--threads 1]

(p) the plain loop: the same Transformer (torchtui's builder, the same seed and init), AdamW with the preset's
    settings and its grad clip, a randperm per epoch over the train windows and index slicing, token
    cross-entropy; after each epoch what the run does too, written here nanoGPT's way: the val loss over every
    val window (estimate_loss) and a predict.length-token sample after the prompt (sample.py's generate). No
    statistics, no checkpoints;
(e) the engine in this process (InProcessHost), timed from its first StepStats to RunFinished: step statistics,
    per-layer norms, each epoch's val evaluation with its generated sample (predict.length tokens), last.pt and
    best.pt — everything a run does once it is set up.

Each round runs p then e on the same data, so machine noise hits both; the figures are medians over rounds,
after one untimed warm-up of each. Both are given per second of wall time and per second of the process's CPU
time: on the shared 2-core machine (load 5-13 while other jobs ran) wall-time rounds of the same code ranged
0.41-1.44; CPU time is what one thread's share of a busy machine does not change much. Target: e/p >= 0.95
(issue 28). bench/gpu_check.py imports `plain_run` and `engine_run` for its transformer row (bf16, flash
attention).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.data.splits import load_data
from torchtui.engine.host import InProcessHost
from torchtui.engine.models.build import build_model
from torchtui.engine.models.tokens import TokenInput

TARGET = 0.95


def char_lm(epochs: int, device: str, precision: str = "fp32", **model) -> dict:
    cfg = presets.load("char-lm").to_dict()
    cfg["train"]["epochs"] = epochs
    cfg["model"].update(model)
    cfg["device"].update(device=device, precision=precision)
    return cfg


def plain_run(cfg: dict, device: str) -> tuple[float, float]:
    """Train tokens/s of the plain loop over cfg's epochs (one untimed epoch first: warm-up), per second of wall
    time and per second of this process's CPU time."""
    config = from_dict(cfg)
    splits = load_data(config.data)
    x, y = splits.train.x.to(device), splits.train.y.to(device)
    tokens = TokenInput(splits.n_classes, None, per_token=True)
    model = build_model(config.model, splits.input_shape, splits.n_classes, tokens).to(device)
    t = config.train
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=tuple(t.betas), eps=t.eps, weight_decay=t.weight_decay)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.device.precision)
    kind, batch = torch.device(device).type, t.batch_size

    def epoch() -> None:
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            with torch.autocast(kind, dtype=dtype, enabled=dtype is not None):
                logits = model(x[idx])
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y[idx].view(-1))
            loss.backward()
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip, foreach=True)
            opt.step()
            opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def evaluate() -> float:
        model.eval()
        vx, vy = splits.val.x.to(device), splits.val.y.to(device)
        total = sum(F.cross_entropy(model(vx[i:i + 256]).flatten(0, 1).float(), vy[i:i + 256].flatten(),
                                    reduction="sum") for i in range(0, len(vx), 256))
        idx = torch.tensor([prompt], device=device)
        for _ in range(config.predict.length):
            logits = model(idx[:, -config.data.block_size:])[:, -1, :] / config.predict.temperature
            idx = torch.cat([idx, torch.multinomial(F.softmax(logits.float(), dim=-1), 1)], dim=1)
        model.train()
        return float(total) / vy.numel()

    from torchtui.engine.data.text.tokenizer import Tokenizer

    prompt = Tokenizer.from_spec(splits.tokenizer).encode(config.predict.prompt or "\n").tolist()
    epoch()
    _synchronize(device)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(t.epochs):
        epoch()
        evaluate()
    _synchronize(device)
    n = x.numel() * t.epochs
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def engine_run(host, cfg: dict) -> tuple[float, float, p.RunFinished]:
    """Tokens/s of the engine from its first StepStats to RunFinished (evaluations, samples and checkpoints
    count), per second of wall time and of this process's CPU time (every thread: the engine's, its writer's),
    and the end event."""
    host.send(p.Start(config=cfg))
    started = host.wait_for(lambda e: isinstance(e, p.RunStarted) or _failed(e), timeout=600)
    if not isinstance(started, p.RunStarted):
        raise RuntimeError(f"the run did not start: {started}")
    first: list = []

    def seen(event) -> bool:
        if isinstance(event, p.StepStats) and not first:
            first.append((time.perf_counter(), time.process_time(), event.step[-1]))
        return isinstance(event, p.RunFinished)

    done = host.wait_for(seen, timeout=1800)
    end, cpu_end = time.perf_counter(), time.process_time()
    if not first:
        raise RuntimeError(f"the run ended {done.state} before its first step")
    began, cpu, step = first[0]
    block = from_dict(cfg).data.block_size
    n = started.splits["train"] * block / max(1, started.steps_per_epoch) * (started.total_steps - step)
    return n / (end - began), n / (cpu_end - cpu), done


def _failed(event) -> bool:
    return isinstance(event, p.StateChanged) and event.state == p.FAILED


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per method per round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the engine's own on 2 cores)")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    cfg = char_lm(args.epochs, args.device, args.precision)
    cfg["device"]["threads"] = args.threads
    runs = tempfile.mkdtemp(prefix="torchtui-bench-text-")
    host = InProcessHost(runs)
    plain, engine, plain_cpu, engine_cpu = [], [], [], []
    try:
        host.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=300)
        print(f"char-lm ({args.epochs} epochs a round) on {args.device}, {args.precision}, torch threads "
              f"{torch.get_num_threads()}: train tokens/s", flush=True)
        plain_run(char_lm(1, args.device, args.precision), args.device)
        engine_run(host, char_lm(1, args.device, args.precision))  # warm-up: imports, caches, the first compile
        for r in range(args.rounds):
            wall, cpu = plain_run(cfg, args.device)
            plain.append(wall)
            plain_cpu.append(cpu)
            wall, cpu, done = engine_run(host, cfg)
            engine.append(wall)
            engine_cpu.append(cpu)
            print(f"  round {r + 1}: wall plain {plain[-1]:>8,.0f} engine {engine[-1]:>8,.0f} ratio "
                  f"{engine[-1] / plain[-1]:.3f} | CPU time plain {plain_cpu[-1]:>8,.0f} "
                  f"engine {engine_cpu[-1]:>8,.0f} ratio {engine_cpu[-1] / plain_cpu[-1]:.3f}  "
                  f"(val loss {done.summary['val'].get('loss', 0):.3f})",
                  flush=True)
    finally:
        host.close()
        shutil.rmtree(runs, ignore_errors=True)
    for label, a, b in (("wall", plain, engine), ("CPU time", plain_cpu, engine_cpu)):
        ratio = statistics.median(b) / statistics.median(a)
        print(f"median, tokens per second of {label}: plain {statistics.median(a):,.0f}  engine "
              f"{statistics.median(b):,.0f}  engine/plain {ratio:.3f}  (target >= {TARGET}: "
              f"{'PASS' if ratio >= TARGET else 'MISS'})")


if __name__ == "__main__":
    main()
