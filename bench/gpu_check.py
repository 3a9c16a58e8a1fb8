"""The GPU check: one command, a few minutes, on any CUDA machine.

    python bench/gpu_check.py [--quick] [--device cuda:0]
    python bench/gpu_check.py --device cpu --quick     # the same code paths on the CPU (a smoke test)

Prints, in one run:
  1. host syncs per training step of the engine (torch.cuda.set_sync_debug_mode counts every .item(),
     .tolist(), .cpu() …), split into those inside the batched flush / evaluation / checkpoints and those
     anywhere else (target: 0 per step outside the flush);
  2. samples/s of the engine (in-process, every statistic on) vs a bare index-sliced loop on the same GPU,
     for the 784-512-512-10 MLP and the digits CNN, in fp32, bf16, fp16 (with the grad scaler) and fp32
     with torch.compile, with the ratio engine/bare;
  2b. train tokens/s of the engine vs a plain nanoGPT-style loop for a 6-layer char GPT (bench_text_lm.py), in
     fp32 and bf16, and whether scaled_dot_product_attention takes its flash kernel (bf16, causal);
  3. the peak device memory of each (torch.cuda.max_memory_allocated), and the Device pane's figures
     (engine.run.devices.list_devices: memory used, utilisation) beside NVML's (nvidia-smi);
  4. a CUDA out-of-memory (an absurd batch) ending the run as `failed` with the hint, the engine alive
     (a small run after it still finishes);
  5. data parallel: samples/s of the big MLP on one GPU vs all of them (DDP, NCCL); with one GPU, DDP on it
     (strategy ddp) vs the plain run; with several GPUs (or --device cpu: 2 processes) the same run launched
     by `torchrun --standalone --nproc-per-node N -m torchtui.cli train`, followed through rank 0's socket:
     its samples/s and its per-rank view (data wait / compute / communication wait, CUDA events on GPUs).
Without CUDA it says so and exits 0. Not a test: it always exits 0 and ends with a PASS/MISS table.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings

import torch

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.data.splits import load_data
from torchtui.engine.host import InProcessHost
from torchtui.engine.models.build import build_model, output_size
from torchtui.engine.run.devices import list_devices

# Syncs under these functions are the batched ones (flush every few steps, evaluation, checkpoints, setup).
BATCHED = ("on_flush", "flush", "evaluate", "validate", "predictions", "on_validation_end", "save_checkpoint",
           "checkpoint_payload", "on_fit_start", "on_fit_end", "prepare_run", "_prepare", "restore",
           "on_train_epoch_end", "_finish", "describe", "summarize")
PRECISIONS = (("fp32", False), ("bf16", False), ("fp16", False), ("fp32", True))


def workloads(quick: bool) -> dict:
    n = 4000 if quick else 64000
    mlp = {"name": "gpu-mlp", "data": {"source": "blobs", "features": 784, "classes": 10, "n_samples": n,
                                       "val_fraction": 0.05},
           "model": {"layers": [512, 512]},
           "train": {"optimizer": "adam", "lr": 1e-3, "batch_size": 256, "epochs": 2 if quick else 8}}
    cnn = presets.load("digits-cnn").to_dict()
    cnn["train"].update(epochs=5 if quick else 40)
    return {"mlp 784-512-512-10": mlp, "digits CNN": cnn}


def with_device(cfg: dict, device: str, precision: str = "fp32", compile_: bool = False, **train) -> dict:
    out = {**cfg, "device": {**cfg.get("device", {}), "device": device, "precision": precision, "compile": compile_}}
    out["train"] = {**cfg["train"], **train}
    return out


# ---------------------------------------------------------------- the engine and a bare loop


def engine_run(host, cfg: dict) -> tuple[float, int, p.RunFinished]:
    """Steady samples/s (from the first StepStats, so set-up and compilation are left out, to RunFinished:
    evaluations and checkpoints count), the steps, and the end event."""
    host.send(p.Start(config=cfg))
    sps, steps, done, _ = follow_run(host, cfg)
    return sps, steps, done


def follow_run(host, cfg: dict) -> tuple[float, int, p.RunFinished, p.RankStats | None]:
    """engine_run's figures for a run started elsewhere (by this host's Start, or by torchrun), and its last
    RankStats (data parallel)."""
    started = host.wait_for(lambda e: isinstance(e, p.RunStarted) or _failed(e), timeout=600)
    if not isinstance(started, p.RunStarted):
        raise RuntimeError(f"the run did not start: {started}")
    first: list = []  # (time, steps done) at the first StepStats
    ranks: list = []

    def seen(event) -> bool:
        if isinstance(event, p.StepStats) and not first:
            first.append((time.perf_counter(), event.step[-1]))
        if isinstance(event, p.RankStats):
            ranks[:] = [event]
        return isinstance(event, p.RunFinished)

    done = host.wait_for(seen, timeout=900)
    end = time.perf_counter()
    if not first:
        raise RuntimeError(f"the run ended {done.state} before its first step: {done.summary.get('reason', '')}")
    began, step = first[0]
    per_step = started.splits["train"] / max(1, started.total_steps // max(1, cfg["train"]["epochs"]))
    return per_step * (started.total_steps - step) / (end - began), started.total_steps, done, \
        (ranks[0] if ranks else None)


def _failed(event) -> bool:
    return isinstance(event, p.StateChanged) and event.state == p.FAILED


def bare_run(cfg: dict, device: str) -> float:
    """The same model, data, optimizer and precision in a plain loop: randperm, index slicing, no stats."""
    config = from_dict(cfg)
    splits = load_data(config.data).to(device)
    x, y = splits.x_train, splits.y_train
    n_out = output_size(splits.task, splits.n_classes, splits.n_targets, "cross_entropy")
    model = build_model(config.model, splits.input_shape, n_out).to(device)
    if config.device.compile:
        model = torch.compile(model)
    opt = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.device.precision)
    scaler = torch.amp.GradScaler("cuda") if config.device.precision == "fp16" else None
    batch, kind = config.train.batch_size, torch.device(device).type

    def epoch() -> None:
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            with torch.autocast(kind, dtype=dtype, enabled=dtype is not None):
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            opt.zero_grad(set_to_none=True)

    epoch()  # warm-up (and compilation)
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(config.train.epochs):
        epoch()
    _synchronize(device)
    return len(x) * config.train.epochs / (time.perf_counter() - start)


def transformer_rows(host, device: str, quick: bool) -> tuple[list[str], bool]:
    """Engine vs plain loop on a GPT in fp32 and bf16 (bench_text_lm's two methods), and whether
    scaled_dot_product_attention can take its flash kernel here (bf16, causal: what the model's attention asks)."""
    import bench_text_lm as lm  # beside this script (bench/ is on sys.path when it runs)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    lines, ok = [f"  {'precision':<14}{'engine':>12}{'plain':>12}{'ratio':>7}{'val loss':>10}"], True
    for precision in ("fp32", "bf16"):
        cfg = lm.char_lm(2 if quick else 8, device, precision, n_layer=6, n_head=6, d_model=384, dropout=0.2)
        cfg["data"]["block_size"], cfg["train"]["batch_size"], cfg["train"]["lr"] = 256, 64, 1e-3
        try:
            engine, _, done = lm.engine_run(host, cfg)
            plain, _ = lm.plain_run(cfg, device)
        except Exception as err:  # noqa: BLE001 - one precision failing must not end the check
            lines.append(f"  {precision:<14}failed: {type(err).__name__}: {str(err)[:120]}")
            ok = False
            continue
        lines.append(f"  {precision:<14}{engine:>12,.0f}{plain:>12,.0f}{engine / plain:>7.2f}"
                     f"{done.summary['val'].get('loss', float('nan')):>10.3f}")
        if precision == "bf16":
            ok = ok and engine / plain >= 0.95
    q = torch.randn(4, 6, 256, 64, device=device, dtype=torch.bfloat16)
    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
        lines.append("  flash attention: scaled_dot_product_attention ran its flash kernel (bf16, causal)")
    except RuntimeError as err:
        lines.append(f"  flash attention: not available here ({str(err).splitlines()[0][:100]})")
        ok = False
    return lines, ok


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- 1. host syncs per step


def count_syncs(host, cfg: dict, device: str) -> dict:
    """Syncs during one engine run, by where they happen (batched or per step), per training step."""
    counts = {"batched": 0, "per_step": 0}
    where: dict[str, int] = {}
    previous = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" not in str(message):
            return previous(message, category, filename, lineno, file, line)
        names = [frame.name for frame in traceback.extract_stack()]
        kind = "batched" if any(n in BATCHED for n in names) else "per_step"
        counts[kind] += 1
        if kind == "per_step":
            stack = traceback.extract_stack()
            site = next((f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(stack)
                         if "torchtui" in f.filename and "gpu_check" not in f.filename), None)
            if site is None:  # no frame of ours: say which thread and where it was
                last = stack[-3] if len(stack) >= 3 else None
                site = (f"thread {threading.current_thread().name}: "
                        + (f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} {last.name}" if last else "?")
                        + f" ({str(message)[:60]})")
            where[site] = where.get(site, 0) + 1
        return None

    with warnings.catch_warnings():  # restores the filters and showwarning afterwards
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            _, steps, done = engine_run(host, cfg)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return {"steps": steps, **counts, "per_step_sites": where, "state": done.state}


# ---------------------------------------------------------------- 3. memory and the Device pane


def nvidia_smi(index: int) -> dict:
    try:
        out = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=memory.used,memory.total,utilization.gpu",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20).stdout
        used, total, util = (float(v) for v in out.strip().split(","))
        return {"memory_used": used * 2**20, "memory_total": total * 2**20, "utilization": util}
    except (OSError, ValueError, subprocess.SubprocessError):
        return {}


def pane_vs_nvml(device: str) -> list[str]:
    index = torch.device(device).index or 0
    pane = next((d for d in list_devices() if d["name"] == f"cuda:{index}"), {})
    smi = nvidia_smi(index)
    lines = [f"  Device pane: used {pane.get('memory_used', 0) / 2**30:.2f} GiB "
             f"of {pane.get('memory_total', 0) / 2**30:.1f},"
             f" utilisation {pane.get('utilization', 'n/a (pip install nvidia-ml-py)')}"]
    if smi:
        lines.append(f"  nvidia-smi : used {smi['memory_used'] / 2**30:.2f} GiB of {smi['memory_total'] / 2**30:.1f}, "
                     f"utilisation {smi['utilization']:.0f}")
        gap = abs(pane.get("memory_used", 0) - smi["memory_used"]) / 2**20
        lines.append(f"  memory used differs by {gap:.0f} MiB ({'PASS' if gap <= 256 else 'MISS'} <= 256 MiB)")
    lines.append(f"  torch: reserved {torch.cuda.memory_reserved(index) / 2**30:.2f} GiB, max allocated "
                 f"{torch.cuda.max_memory_allocated(index) / 2**30:.2f} GiB (both within the used figure)")
    return lines


# ---------------------------------------------------------------- 4. out of memory


def out_of_memory(host, device: str) -> list[str]:
    """An absurd batch: the whole train split of a million wide rows through a 65,536-unit layer at once."""
    cfg = {"name": "gpu-oom", "data": {"source": "blobs", "features": 784, "classes": 10, "n_samples": 1_000_000,
                                       "val_fraction": 0.01},
           "model": {"layers": [65536]}, "train": {"batch_size": 0, "epochs": 1}, "device": {"device": device}}
    host.send(p.Start(config=cfg))
    seen: list = []
    # The run's last event is its StateChanged (after RunFinished): waiting for it leaves none for the next run.
    end = host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state in p.END_STATES, timeout=600, seen=seen)
    state = end.state
    hint = next((e.message for e in seen if isinstance(e, (p.Error, p.Log)) and "out of memory" in str(
        getattr(e, "message", "")).lower()), "")
    small = with_device(workloads(True)["mlp 784-512-512-10"], device, epochs=1)
    _, _, after = engine_run(host, small)
    return [f"  absurd batch: run ended {state!r}; message: {hint[:160] or '(none)'}",
            f"  a run after it: {after.state} "
            f"({'PASS' if state == p.FAILED and hint and after.state == p.FINISHED else 'MISS'})"]


# ---------------------------------------------------------------- 5. data parallel


def data_parallel(host, cfg: dict, device: str) -> tuple[list[str], bool]:
    """samples/s of the big MLP on one device vs every GPU here (batch per device, so the step sees N × more);
    with one GPU (or on the CPU: 2 processes), DDP on it vs the plain run: DDP's own cost and the NCCL path."""
    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    plain = with_device(cfg, "cuda" if gpus else "cpu")
    if gpus >= 2:
        wide = {**plain, "device": {**plain["device"], "devices": "all"}}
        labels = ("1 GPU", f"{gpus} GPUs (ddp, NCCL)")
    elif gpus == 1:
        wide = {**plain, "device": {**plain["device"], "strategy": "ddp"}}
        labels = ("1 GPU", "1 GPU under ddp (NCCL)")
    else:
        wide = {**plain, "device": {**plain["device"], "devices": 2}}
        labels = ("1 process", "2 processes (ddp, gloo)")
    out, ok = [], True
    rates = []
    for label, run_cfg in zip(labels, (plain, wide)):
        try:
            sps, steps, done = engine_run(host, run_cfg)
        except Exception as err:  # noqa: BLE001 - report, go on
            out.append(f"  {label:<28} failed: {type(err).__name__}: {str(err)[:160]}")
            return out, False
        rates.append(sps)
        ok &= done.state == p.FINISHED and done.summary.get("steps") == steps
        out.append(f"  {label:<28}{sps:>11,.0f} samples/s  ({done.state}, {done.summary.get('steps')} steps, "
                   f"{done.summary.get('device')})")
    out.append(f"  ratio {rates[1] / rates[0]:.2f}" + (" (N GPUs / 1)" if gpus >= 2 else ""))
    if gpus < 2:
        out.append("  several GPUs: not measured here (one GPU)" if gpus else "  GPUs: none here")
    return out, ok


def under_torchrun(cfg: dict, device: str, runs: str) -> tuple[list[str], bool]:
    """The plain run launched by torchrun, one process per GPU (2 CPU processes with --device cpu): rank 0 serves
    it on a socket in a private folder; samples/s from its events as engine_run counts them, and the per-rank
    figures of its last flush. Skipped with one GPU (torchrun would start a single, plain process)."""
    import os

    import yaml

    from torchtui.engine import live
    from torchtui.engine.host import ServerHost

    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    if gpus == 1:
        return ["  torchrun: not run (one GPU: a job of one process trains as a plain run)"], True
    nproc = gpus or 2
    folder = tempfile.mkdtemp(prefix="torchtui-torchrun-")  # 0700: the sockets' folder of this check alone
    preset = os.path.join(folder, "run.yaml")
    with open(preset, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"schema": 1, **with_device(cfg, "cuda" if gpus else "cpu")}, fh, sort_keys=False)
    before = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = folder  # the job inherits it; live.servers() and the client read it
    log = open(os.path.join(folder, "torchrun.log"), "w")
    job = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                            str(nproc), "-m", "torchtui.cli", "train", preset, "--runs-dir", runs],
                           stdout=log, stderr=subprocess.STDOUT)
    label = f"torchrun, {nproc} {'GPUs (NCCL)' if gpus else 'processes (gloo)'}"
    try:
        deadline = time.monotonic() + 600
        while not (found := [i for i in live.servers() if i.run_id]) and job.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("rank 0 did not serve the run within 600 s")
            time.sleep(0.2)  # rank 0's status file: no event says it was written
        if not found:
            raise RuntimeError(f"torchrun exited with {job.returncode} before the run started")
        host = ServerHost.attach(found[0].run_id)
        try:
            sps, steps, done, ranks = follow_run(host, cfg)
        finally:
            host.detach()
        code = job.wait(timeout=300)
    except Exception as err:  # noqa: BLE001 - report, go on
        job.kill()
        log.flush()
        tail = open(log.name, encoding="utf-8", errors="replace").read()[-300:].replace("\n", " | ")
        return [f"  {label:<28} failed: {type(err).__name__}: {str(err)[:160]} ({tail})"], False
    finally:
        log.close()
        if before is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = before
        shutil.rmtree(folder, ignore_errors=True)
    ok = done.state == p.FINISHED and done.summary.get("steps") == steps and code == 0
    out = [f"  {label:<28}{sps:>11,.0f} samples/s  ({done.state}, {done.summary.get('steps')} steps, "
           f"{done.summary.get('device')}, torchrun exit {code})"]
    if ranks is None:
        return out + ["  per-rank view: no RankStats came (MISS)"], False
    for row in ranks.rows():
        total = row["data_wait"] + row["compute"] + row["comm_wait"]
        out.append(f"    {row['host']}:{row['rank']:<3} {total * 1000:7.2f} ms/step: data {row['data_wait'] * 1000:.2f}"
                   f"  compute {row['compute'] * 1000:.2f}  comm wait {row['comm_wait'] * 1000:.2f}  "
                   f"{row['samples_per_s']:,.0f} samples/s  {row['memory'] / 2**20:,.0f} MiB"
                   + (f"  <- slowest ({ranks.cause})" if row["slowest"] else ""))
    return out, ok


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0", help="cuda:N (default cuda:0), or cpu for a smoke test")
    parser.add_argument("--quick", action="store_true", help="less data and fewer epochs (≈ 1 minute)")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print(f"gpu_check: skipped: no CUDA here (torch {torch.__version__}, torch.cuda.is_available() is False); "
              "run it on a machine with an NVIDIA GPU and a CUDA build of torch")
        return
    if not cuda:
        torch.set_num_threads(1)  # a shared 2-core machine: two OpenMP threads collapse under load
    name = torch.cuda.get_device_name(args.device) if cuda else "cpu"
    print(f"torch {torch.__version__} on {args.device} ({name})", flush=True)
    runs = tempfile.mkdtemp(prefix="torchtui-gpu-check-")
    host = InProcessHost(runs)
    verdicts: list[tuple[str, bool]] = []
    try:
        host.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=300)
        loads = workloads(args.quick)
        if cuda:
            print("\n1. host syncs per training step (engine, mlp, every statistic on)", flush=True)
            syncs = count_syncs(host, with_device(loads["mlp 784-512-512-10"], args.device), args.device)
            per_step = syncs["per_step"] / max(1, syncs["steps"])
            print(f"  {syncs['steps']} steps: {syncs['batched']} syncs in the batched flush/evaluation/checkpoints "
                  f"({syncs['batched'] / max(1, syncs['steps']):.2f} per step), {syncs['per_step']} elsewhere "
                  f"({per_step:.3f} per step)")
            for site, n in sorted(syncs["per_step_sites"].items(), key=lambda kv: -kv[1])[:8]:
                print(f"    {n:>6}  {site}")
            verdicts.append(("0 syncs per step outside the flush", syncs["per_step"] == 0))
        print("\n2./3. samples/s, engine vs bare loop, and peak memory", flush=True)
        print(f"  {'workload':<20}{'precision':<14}{'engine':>11}{'bare':>11}{'ratio':>7}{'peak MiB':>10}")
        for label, cfg in loads.items():
            for precision, compile_ in PRECISIONS:
                if not cuda and precision != "fp32":
                    continue
                mode = precision + (" compile" if compile_ else "")
                run_cfg = with_device(cfg, args.device, precision, compile_)
                try:
                    if cuda:
                        torch.cuda.reset_peak_memory_stats(args.device)
                    engine_sps, _, done = engine_run(host, run_cfg)
                    peak = torch.cuda.max_memory_allocated(args.device) / 2**20 if cuda else float("nan")
                    bare_sps = bare_run(run_cfg, args.device)
                except Exception as err:  # noqa: BLE001 - one mode failing (no bf16, no compiler) must not end the check
                    print(f"  {label:<20}{mode:<14} failed: {type(err).__name__}: {str(err)[:120]}")
                    continue
                ratio = engine_sps / bare_sps
                print(f"  {label:<20}{mode:<14}{engine_sps:>11,.0f}{bare_sps:>11,.0f}{ratio:>7.2f}{peak:>10,.0f}"
                      + ("" if done.state == p.FINISHED else f"  ({done.state})"), flush=True)
                if mode == "fp32":
                    verdicts.append((f"{label} fp32 engine/bare >= 0.95", ratio >= 0.95))
        if cuda:
            print("\n2b. transformer (issue 28): a char GPT sized like nanoGPT's shakespeare-char (6 layers, d 384, "
                  "block 256) on the char-lm preset's text, train tokens/s", flush=True)
            lines, ok = transformer_rows(host, args.device, args.quick)
            for line in lines:
                print(line, flush=True)
            verdicts.append(("transformer bf16 engine/plain >= 0.95, flash attention runs", ok))
            print("\n3. the Device pane's figures vs NVML", flush=True)
            for line in pane_vs_nvml(args.device):
                print(line)
            print("\n4. CUDA out of memory", flush=True)
            lines = out_of_memory(host, args.device)
            for line in lines:
                print(line)
            verdicts.append(("OOM ends the run failed, engine alive", lines[-1].endswith("(PASS)")))
        print("\n5. data parallel (DistributedDataParallel)", flush=True)
        lines, ok = data_parallel(host, loads["mlp 784-512-512-10"], args.device)
        for line in lines:
            print(line)
        verdicts.append(("data-parallel run finishes, same steps as planned", ok))
        lines, ok = under_torchrun(loads["mlp 784-512-512-10"], args.device, runs)
        for line in lines:
            print(line)
        verdicts.append(("under torchrun: finishes, same steps, per-rank view", ok))
    finally:
        host.close()
        shutil.rmtree(runs, ignore_errors=True)
    print("\nverdicts")
    for what, ok in verdicts:
        print(f"  {'PASS' if ok else 'MISS'}  {what}")


if __name__ == "__main__":
    main()
    sys.exit(0)
