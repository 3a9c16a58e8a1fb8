"""Prepares a `Run` from a Start command: config, device, data, model, optimizer, folder, resume state."""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from torchtui.engine.config import RESUME_FREE, from_dict
from torchtui.engine.data.batches import num_batches
from torchtui.engine.data.splits import Splits, load_data
from torchtui.engine.errors import DataError, ModelError
from torchtui.engine.models import build as models
from torchtui.engine.models.tokens import TokenInput, token_input
from torchtui.engine.protocol import Log, Start
from torchtui.engine.run import checkpoint as ckpt
from torchtui.engine.run import devices, optim
from torchtui.engine.run.loop import Run
from torchtui.engine.run.session import Session
from torchtui.engine.run.writer import Writer
from torchtui.engine.runs import RunFolder, RunInUse
from torchtui.engine.schema import ConfigError

Emit = Callable[[object], None]


def prepare_run(cmd: Start, session: Session, runs_dir: str | None, dist=None) -> tuple[Run, dict | None]:
    """Build everything a run needs; returns the Run (of `session`) and the checkpoint to resume from (or None).

    `dist` (distributed.Dist) makes it one rank of a data-parallel run: rank 0 owns the folder, the others
    only train. Raises ConfigError for anything the user can fix in the config (it names the field).
    """
    locked: list[RunFolder] = []  # the folder this run writes, once its lock is taken (released by Engine._finish)
    if cmd.resume and (dist is None or dist.leader):
        locked.append(RunFolder(Path(cmd.resume)))
        try:
            locked[0].lock()  # before anything in it is read or written: two writers would log every step twice
        except RunInUse as err:
            raise ConfigError([f"resume: {err}"]) from None
        except OSError as err:
            raise ConfigError([f"resume: cannot open {cmd.resume} ({err.strerror or err})"]) from None
    try:
        return _prepare(cmd, session, runs_dir, locked, dist)
    except BaseException:
        for folder in locked:
            folder.unlock()
        raise


def import_soon(module: str) -> None:
    """Import a module in a background thread, once per process: torch.optim.Optimizer's first __init__ imports
    torch._dynamo, about 2 s of Python that can run while Arrow and numpy read the data with the GIL let go,
    or while an engine that said EngineReady waits for its first Start (engine.py)."""
    import sys
    import threading

    if module not in sys.modules and not any(t.name == f"import {module}" for t in threading.enumerate()):
        threading.Thread(target=importlib.import_module, args=(module,), name=f"import {module}", daemon=True).start()


def _prepare(cmd: Start, session: Session, runs_dir: str | None, locked: list[RunFolder],
             dist) -> tuple[Run, dict | None]:
    folder, state, edits = (locked or [None])[0], None, {}
    if folder is None and cmd.resume:  # a rank other than 0: it reads the checkpoint, rank 0 holds the folder
        folder = RunFolder(Path(cmd.resume))
    if folder is not None:
        folder.remove_stale_temp_files()  # from a write the process was killed in
        state = _resume_state(folder, cmd.checkpoint)
        raw = cmd.config or state["config"]
        edits = resume_edits(state["config"], raw, folder.checkpoint_path(cmd.checkpoint).name)
        # config.yaml keeps the setup the run started with: an edited live field is a live change from the
        # resumed step on (metrics.jsonl records it), not what the run trained with before it.
        raw = with_live_fields(raw, state["config"])
    else:
        raw = cmd.config
    config = from_dict(raw)
    if state is not None:
        _check_length(config, state, folder, cmd.checkpoint)
    dev_cfg = config.device
    device, warnings = (dist.device, []) if dist is not None else devices.resolve_device(dev_cfg.device)
    warnings += devices.apply_backend_flags(dev_cfg, device, threads=dist is None)
    amp_dtype, needs_scaler, amp_warn = devices.precision_settings(dev_cfg, device)
    warnings += amp_warn
    torch.manual_seed(config.train.seed)
    if torch.are_deterministic_algorithms_enabled() != config.train.deterministic:
        # Only on a change: the call imports torch._inductor, about a second before the first step.
        torch.use_deterministic_algorithms(config.train.deterministic, warn_only=False)

    import_soon("torch._dynamo")  # the first optimizer imports it (≈2 s): it loads while the data is read
    from torchtui.engine.data.tables import progress_listener

    listening = progress_listener.set(lambda line: session.emit(Log(None, "info", line)))
    try:  # a big table says how its reading goes rather than keeping the user waiting in silence
        splits, model, loss_name, n_out, notes = build_data_and_model(config, device=device)
    finally:
        progress_listener.reset(listening)
    warnings += notes
    if config.train.overfit_batches:
        try:
            per_step = config.train.batch_size * (dist.world if dist is not None else 1)  # a batch of all ranks
            splits = splits.overfit(config.train.overfit_batches * (per_step or len(splits.train)))
        except DataError as err:
            raise ConfigError([str(err)]) from None
    model = model.to(device)
    splits = splits.to(device)
    layer_names, _ = models.param_groups_by_layer(model)
    tokens = tokens_of(splits)
    if dist is not None:
        model = _data_parallel(model, dist, len(splits.train))

    params = optim.trainable_parameters(model)
    optimizer = optim.make_optimizer(params, config.train)
    n_batches = (dist.batches(len(splits.train), config.train.batch_size) if dist is not None
                 else num_batches(len(splits.train), config.train.batch_size))
    if n_batches == 0 and len(splits.train):
        raise ConfigError([f"device.devices: {len(splits.train)} train samples cannot give each of {dist.world} "
                           "processes one; use fewer devices"])
    steps_per_epoch = -(-n_batches // config.train.accumulate)
    scheduler, plateau = optim.make_scheduler(optimizer, config.train, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type) if needs_scaler else None

    plain = config.to_dict()
    if dist is None or dist.leader:
        if folder is None:
            folder = RunFolder.create(cmd.runs_dir or runs_dir, config.name)
            folder.lock()  # a new folder: nobody else can hold it yet
            locked.append(folder)
            folder.write_origin(origin(cmd, config))
        folder.write_config(plain)
    if dist is not None:  # every rank learns where the run writes (its own record goes there too)
        where = dist.broadcast(str(folder.path) if dist.leader else None)
        folder = folder if dist.leader else _ReadOnlyFolder(Path(where))
        dist.open_record(where)
    run = Run(
        config=config, config_dict=plain, run_id=folder.run_id, folder=folder, data=splits, model=model,
        optimizer=optimizer, scheduler=scheduler, plateau=plateau, scaler=scaler,
        loss_fn=optim.make_loss(loss_name, config.train, splits.task, tokens.pad_id if tokens is not None else None),
        predict=optim.make_predict(splits.task, n_out), device=device, amp_dtype=amp_dtype,
        task=splits.task, loss_name=loss_name, n_outputs=n_out, steps_per_epoch=steps_per_epoch,
        batches_per_epoch=n_batches, params=params, layer_names=layer_names, session=session,
        grad_clip=config.train.grad_clip, base_lr=config.train.lr, dist=dist, tokens=tokens,
        writer=Writer() if dist is None or dist.leader else None,  # rows and checkpoints written off the step
    )
    if dev_cfg.compile:
        warnings += _compile(run)
    if state is not None:
        restore(run, state)
        run.resume_edits = edits
    if dist is not None and dist.world > 1:
        # Dropout and augmentation draw differently on each rank (the split and the batches do not).
        torch.manual_seed((config.train.seed * 1_000_003 + dist.rank * 7919 + run.step) & ((1 << 63) - 1))
    for message in warnings:
        session.emit(Log(run.run_id, "warning", message))
    if run.task == "tokens" and state is None:
        from torchtui.engine.run.token_metrics import unigram_entropy

        baseline = unigram_entropy(splits.train, splits.n_classes)
        session.emit(Log(run.run_id, "info", f"val loss to beat: {baseline:.4g} nats, the unigram baseline (entropy of "
                                             "the train tokens; a model that ignores the context gets no lower)"))
    return run, state


class _ReadOnlyFolder(RunFolder):
    """The run folder as a rank other than 0 sees it: rank 0 writes everything in it."""

    def truncate_metrics_after(self, step: int) -> None:
        return None


def _data_parallel(model: torch.nn.Module, dist, train_size: int) -> torch.nn.Module:
    """The model wrapped in DistributedDataParallel (which makes every rank start from rank 0's weights)."""
    from torch.nn.parallel import DistributedDataParallel

    dist.train_size = train_size
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(["device.devices: the model has no trainable parameters to train data parallel"])
    ids = [dist.device.index] if dist.device.type == "cuda" else None
    ddp = DistributedDataParallel(model, device_ids=ids)
    ddp.register_comm_hook(dist.clock, _timed_allreduce)
    return ddp


def _timed_allreduce(clock, bucket):
    """DDP's own all-reduce of a gradient bucket, marking when this rank's part of it was ready (RankClock)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    clock.bucket_ready()
    return allreduce_hook(None, bucket)


def _resume_state(folder: RunFolder, kind: str) -> dict:
    """The checkpoint to continue from; a missing or damaged one names the file and offers best.pt."""
    path = folder.checkpoint_path(kind)
    other = "best" if kind == "last" else "last"
    offer = (f"; resume from {other}.pt instead: torchtui resume {folder.path} --from {other}"
             if folder.checkpoint_path(other).is_file() else "")
    if not path.is_file():
        raise ConfigError([f"resume: {folder.path} has no checkpoints/{kind}.pt to continue from{offer}"])
    try:
        return ckpt.load_checkpoint(path)
    except Exception as err:  # noqa: BLE001 - truncated zips, other formats, refused pickles
        raise ConfigError([f"resume: {path} is damaged ({ckpt.load_problem(err)}){offer}"]) from None




def resume_edits(saved: dict, wanted: dict, checkpoint: str) -> dict:
    """The live fields (lr, weight decay, clip) config.yaml changed since the checkpoint, to apply as live
    changes; any other change is refused (the checkpoint could not have been trained by that config)."""
    from torchtui.engine.catalog import changed_fields, flatten
    from torchtui.engine.config import TrainConfig

    live = {f"train.{k}": k for k in TrainConfig.LIVE}
    old, new = flatten(_normal(saved)), flatten(_normal(wanted))
    changed = changed_fields(_normal(saved), _normal(wanted), RESUME_FREE)
    fixed = [k for k in changed if k not in live]
    if fixed:
        shown = ", ".join(f"{k} ({old.get(k, '–')} → {new.get(k, '–')})" for k in fixed[:4])
        more = f" and {len(fixed) - 4} more" if len(fixed) > 4 else ""
        raise ConfigError([f"resume: config.yaml no longer matches {checkpoint}: {shown}{more}; only train.epochs, "
                           "where it trains (device.device, devices, threads) and the live fields "
                           f"({', '.join(TrainConfig.LIVE)}) may change on resume. Undo the "
                           "edit, or train the edited setup as a new run (torchtui train RUN_DIR/config.yaml)"])
    return {live[k]: new[k] for k in changed}


def with_live_fields(wanted: dict, saved: dict) -> dict:
    """`wanted` with the live fields (lr, weight decay, clip) of `saved`: what config.yaml and the checkpoints of
    a resumed run record, so the file stays the setup the run started with and a resume edit is not taken
    for its history."""
    from torchtui.engine.config import TrainConfig

    train = dict(wanted.get("train") or {})
    before = saved.get("train") or {}
    for name in TrainConfig.LIVE:
        if name in before:
            train[name] = before[name]
        else:
            train.pop(name, None)
    return {**wanted, "train": train}


def base_lr_before(state: dict) -> float:
    """The base lr of a checkpoint written before checkpoints recorded it, from what torch's schedulers keep:
    onecycle's max_lr, or the initial_lr other schedules start from (live changes scaled both); with no schedule
    the current lr is the base; else (plateau) the config's lr."""
    train = (state.get("config") or {}).get("train", {})
    group = ((state.get("optimizer") or {}).get("param_groups") or [{}])[0]
    keys = ("max_lr", "initial_lr") + (("lr",) if train.get("scheduler", "none") == "none" else ())
    for key in keys:
        value = group.get(key)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return float(train.get("lr") or 0.001)


def _check_length(config, state: dict, folder: RunFolder, checkpoint: str) -> None:
    """A resume must have steps left to train: `--epochs N` at or below the epochs done would end the run at
    once and rewrite its summary with less than it had."""
    epochs, done = config.train.epochs, int(state.get("epoch", 0))
    if epochs and done >= epochs and not state.get("batch_in_epoch"):
        raise ConfigError([f"train.epochs: {folder.path.name} has trained {done} epochs already ({checkpoint}), so "
                           f"{epochs} leaves nothing to train; give more: torchtui resume {folder.path} --epochs "
                           f"{done + 1}"])


def _normal(config: dict) -> dict:
    """A config with every field (defaults filled in), so a field added since a checkpoint is no change."""
    try:
        return from_dict(config).to_dict()
    except ConfigError:
        return config


def origin(cmd: Start, config) -> dict:
    """origin.json of a new run: when, from which preset, and the run whose checkpoint it starts from."""
    out = {"created": time.time(), "preset": str(cmd.origin.get("preset") or "")}
    out.update({k: cmd.origin[k] for k in ("sweep", "trial") if k in cmd.origin})  # a sweep's trial
    pretrained = Path(config.model.pretrained).expanduser() if config.model.pretrained else None
    if pretrained is not None and pretrained.parent.name == "checkpoints":
        run_dir = pretrained.resolve().parent.parent
        if (run_dir / "config.yaml").is_file():
            out["parent"] = {"run_id": run_dir.name, "run_dir": str(run_dir), "checkpoint": pretrained.stem}
    return out


def build_data_and_model(config, load=None, device=None) -> tuple[Splits, torch.nn.Module, str, int, list[str]]:
    """Load the data and build the model that fits it (on the CPU): (splits, model, loss, outputs, notes).

    Problems the user can fix become a ConfigError naming the field, with the user's traceback attached.
    """
    try:
        splits = load(config) if load is not None else load_data(config.data, device)
        problem = optim.loss_problem(splits.task, config.train.loss)
        if problem:  # the data's own reason first: one class, too few rows for labels
            why = [note for note in splits.notes if note.startswith("data.target:")]
            raise ConfigError([why[0] if why and splits.task == "regression" else f"train.loss: {problem}"])
        loss_name = optim.resolve_loss(splits.task, config.train.loss)
        n_out = models.output_size(splits.task, splits.n_classes, splits.n_targets, loss_name)
        sample, _ = splits.train.sample(2)
        model, notes = models.prepare_model(config.model, splits.input_shape, n_out, sample.cpu(), tokens_of(splits))
    except (DataError, ModelError) as err:
        cause = err.__cause__
        details = "".join(traceback.format_exception(cause)) if cause is not None else ""
        raise ConfigError([str(err)], details) from None
    return splits, model, loss_name, n_out, list(splits.notes) + notes


def tokens_of(splits: Splits) -> TokenInput | None:
    """How the model reads this data's inputs when they are token ids (None for numbers)."""
    x, _ = splits.train.sample(2)
    if x.is_floating_point() or x.dtype == torch.bool:
        return None
    max_id = int(splits.x_train.max()) if not splits.streamed and splits.task != "tokens" and len(splits.train) \
        else None
    return token_input(splits.task, splits.n_classes, getattr(splits, "tokenizer", None), True, max_id)


def _compile(run: Run) -> list[str]:
    try:
        run.model = torch.compile(run.model)
    except Exception as err:  # noqa: BLE001 - any backend failure means "run eagerly"
        return [f"device.compile: torch.compile is not usable here ({err}); running eagerly"]
    return []


def layer_of_param(run: Run) -> list[int]:
    """For each trainable parameter (in run.params order), the index of its layer in run.layer_names."""
    _, groups = models.param_groups_by_layer(run.plain_model)
    where = {id(p): i for i, group in enumerate(groups) for p in group}
    return [where[id(p)] for p in run.params]




def checkpoint_payload(run: Run, extra: dict | None = None) -> dict:
    """The plain dict a checkpoint holds: weights, optimizer, schedule, position, RNG (loadable weights-only)."""
    return {
        **ckpt.run_state(run),
        "config": run.config_dict,
        "run_id": run.run_id,
        "data": run.data.preprocessing(),  # what `torchtui predict` applies to new inputs
        "tokens": run.tokens.to_dict() if run.tokens is not None else None,  # how the model reads token ids
        "saved_at": time.time(),
        **(extra or {}),
    }


def _counters_back(scheduler) -> None:
    """MultiStepLR keeps its milestones in a Counter, which a weights-only checkpoint stores as a dict; the closed
    form SequentialLR calls at a warm-up's end needs `.elements()` (a resumed multistep + warm-up run failed
    there with AttributeError)."""
    from collections import Counter

    for sched in [scheduler, *getattr(scheduler, "_schedulers", [])]:
        if isinstance(getattr(sched, "milestones", None), dict) and not isinstance(sched.milestones, Counter):
            sched.milestones = Counter({int(k): v for k, v in sched.milestones.items()})


def restore(run: Run, state: dict) -> None:
    """Continue from a checkpoint: weights, optimizer, schedule, position and RNG, and trim metrics."""
    run.plain_model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None and state.get("scheduler"):
        run.scheduler.load_state_dict(state["scheduler"])
        _counters_back(run.scheduler)
    if run.plateau is not None and state.get("plateau"):
        run.plateau.load_state_dict(state["plateau"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    run.step, run.epoch = state["step"], state["epoch"]
    run.batch_in_epoch, run.best = state["batch_in_epoch"], state["best"]
    saved, world = state.get("world_size", 1), run.dist.world if run.dist is not None else 1
    if saved != world and run.batch_in_epoch:  # the position in the epoch, in samples, as batches of this world
        per_batch = run.config.train.batch_size
        run.batch_in_epoch = run.batch_in_epoch * per_batch * saved // (per_batch * world) if per_batch else 0
    run.grad_clip = state.get("grad_clip", run.grad_clip)
    run.loss_at_start = state.get("loss_at_start")
    run.base_lr = state.get("base_lr") or base_lr_before(state)
    ckpt.set_rng_state(state["rng"])
    run.folder.truncate_metrics_after(run.step)
