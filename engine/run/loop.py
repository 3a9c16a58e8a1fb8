"""The training loop: `fit()` over a prepared `Run`, with evaluation and the optimizer step beside it."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torchmetrics.functional as tmf
from torch import nn

from torchtui.engine.config import ExperimentConfig
from torchtui.engine.data.batches import epoch_permutation
from torchtui.engine.data.splits import Splits
from torchtui.engine.models.build import activation_modules, unwrap
from torchtui.engine.protocol import DIVERGED, FINISHED, STOPPED
from torchtui.engine.run import optim
from torchtui.engine.run.devices import autocast_context

if TYPE_CHECKING:  # annotations only: these import nothing the loop needs at run time
    from torch.amp import GradScaler
    from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

    from torchtui.engine.models.tokens import TokenInput
    from torchtui.engine.run.distributed import Dist
    from torchtui.engine.run.session import Session
    from torchtui.engine.run.writer import Writer
    from torchtui.engine.runs import RunFolder

EVAL_CHUNK = 8192  # rows per forward pass when evaluating, to bound activation memory

EVAL_GAP_MAX_S = 5.0  # train.eval_budget thins out evaluations of epochs shorter than this, never longer ones


@dataclass
class Run:
    """Everything one training run holds; callbacks read and steer it (`request_stop`)."""
    config: ExperimentConfig
    config_dict: dict                  # the config as config.yaml, RunStarted and checkpoints record it
    run_id: str
    folder: RunFolder
    data: Splits              # already on the device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler | None      # stepped every optimizer step
    plateau: ReduceLROnPlateau | None  # stepped on val loss
    scaler: GradScaler | None          # fp16's
    loss_fn: Callable
    predict: Callable | None           # outputs → class indices; None for regression
    device: torch.device
    amp_dtype: torch.dtype | None
    task: str
    loss_name: str
    n_outputs: int
    steps_per_epoch: int
    batches_per_epoch: int
    params: list[nn.Parameter]
    layer_names: list[str]
    session: Session = None            # the state machine, the controls, the stop request
    grad_clip: float = 0.0
    base_lr: float = 0.0               # the schedule's base (train.lr as live changes left it); run.lr is this step's
    step: int = 0                      # optimizer steps done
    epoch: int = 0                     # epochs completed
    batch_in_epoch: int = 0            # batches done in the current epoch
    data_wait: float = 0.0             # streamed data: seconds spent waiting for batches since the last flush
    best: float | None = None
    last_val: dict = field(default_factory=dict)
    last_test: dict = field(default_factory=dict)
    resume_edits: dict = field(default_factory=dict)  # live fields config.yaml changed before a resume
    last_batch: tuple | None = None    # the latest (x, y), by reference: a divergence is diagnosed on it
    writer: Writer | None = None       # file writes off the training thread (None: inline)
    dist: Dist | None = None           # this process is one rank of a data-parallel run
    eval_cost: float = 0.0             # seconds the last validate() took
    eval_ended: float | None = None    # perf_counter() when it ended (None: no evaluation yet)
    jumped: bool = False               # a snapshot was just restored: the loop restarts from its position
    loss_at_start: float | None = None  # the spike guard's early loss (median of its first steps), checkpointed
    skip: set = field(default_factory=set)  # (epoch, batch) the spike guard rolled back over: not trained again
    tokens: TokenInput | None = None   # the inputs are token ids (models.tokens); task "tokens": next-token data

    @property
    def total_steps(self) -> int:
        """Steps of the whole run; 0 when it trains until stopped (train.epochs 0)."""
        return self.config.train.epochs * self.steps_per_epoch

    @property
    def plain_model(self) -> nn.Module:
        """The user's module, without torch.compile's or DDP's wrapper: evaluations and checkpoints use it."""
        return unwrap(self.model)

    @property
    def lr(self) -> float:
        """The current lr: what the next optimizer step uses (the schedule at this step, times live changes)."""
        return float(self.optimizer.param_groups[0]["lr"])

    # The stop request and the callbacks belong to the session (one owner of run state); read through here.
    @property
    def callbacks(self):
        return self.session.callbacks

    @property
    def should_stop(self) -> bool:
        return self.session.should_stop

    @property
    def end_state(self) -> str:
        return self.session.end_state

    @property
    def end_reason(self) -> str:
        return self.session.end_reason

    def request_stop(self, state: str = STOPPED, reason: str = "") -> None:
        """Ask the loop to end after the current step; the first request's state wins."""
        self.session.request_stop(state, reason)


def fit(run: Run) -> str:
    """Train until the epochs are done or a callback stops the run; returns the end state."""
    cb, cfg = run.callbacks, run.config.train
    accumulate = cfg.accumulate
    cb.on_fit_start(run)
    while (run.epoch < cfg.epochs or not cfg.epochs) and not run.should_stop:  # epochs 0: until stopped
        run.model.train()
        perm = (torch.arange(len(run.data.train), device=run.device) if cfg.overfit_batches  # the same batches
                else epoch_permutation(len(run.data.train), cfg.seed, run.epoch, run.device))
        if run.dist is not None:
            perm = run.dist.shard(perm, cfg.batch_size)  # this rank's part of every batch
        batches = run.data.train_batches(perm, cfg.batch_size, start_batch=run.batch_in_epoch)
        if run.data.streamed or run.dist is not None:  # data parallel: each rank's data wait (rank_clock.py)
            batches = _waited(batches, run)
        for xb, yb in batches:
            if run.batch_in_epoch % accumulate == 0:
                cb.on_train_batch_start(run)  # commands land here: pause blocks, stop sets should_stop
                if run.should_stop or run.jumped:  # jumped: a snapshot was restored (guard rollback)
                    break
            if run.skip and (run.epoch, run.batch_in_epoch) in run.skip:  # a batch the guard rolled back over
                run.batch_in_epoch += 1
                continue
            run.last_batch = (xb, yb)
            if run.dist is None:
                if run.amp_dtype is None:  # fp32: no context to enter and leave every step
                    out = run.model(xb)
                    loss = run.loss_fn(out, yb)
                else:
                    with autocast_context(run.device, run.amp_dtype):
                        out = run.model(xb)
                        loss = run.loss_fn(out, yb)
                backward(run, loss / accumulate if accumulate > 1 else loss)
            else:
                out, loss = data_parallel_batch(run, xb, yb, accumulate)
            run.batch_in_epoch += 1
            if run.batch_in_epoch % accumulate == 0 or run.batch_in_epoch == run.batches_per_epoch:
                optimizer_step(run)
                if run.dist is not None:
                    run.dist.clock.step_end(len(yb))
                run.step += 1
                cb.on_train_batch_end(run, loss, out, yb)
                if cfg.eval_every and run.step % cfg.eval_every == 0 and not run.should_stop:
                    validate(run)
        if run.should_stop:
            break
        if run.jumped:  # the epoch and batch of the snapshot: its order again, from its position
            run.jumped = False
            continue
        run.epoch, run.batch_in_epoch = run.epoch + 1, 0
        if epoch_evaluation_due(run):
            validate(run)
        cb.on_train_epoch_end(run)
    if run.dist is not None:
        with run.dist.together():
            cb.on_flush(run)  # steps since the last sync point, flushed by every rank
    # The test split once training is over: finished, or stopped by the user (whose runs in the app often train
    # until stopped: `line`, which has no val split, showed no metrics at all after x).
    if run.end_state in (FINISHED, STOPPED) and len(run.data.test) and (run.dist is None or run.dist.leader):
        run.last_test = evaluate(run, "test")
        cb.on_validation_end(run, "test", run.last_test)
    cb.on_fit_end(run)
    return run.end_state


def _waited(batches, run: Run):
    """The batches, the time spent waiting for each added to run.data_wait (the Device pane's data wait)."""
    it = iter(batches)
    while True:
        start = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return
        run.data_wait += time.perf_counter() - start
        yield batch


def data_parallel_batch(run: Run, xb: torch.Tensor, yb: torch.Tensor, accumulate: int):
    """Forward and backward of this rank's part of a batch; DDP averages the gradients over the ranks in the
    backward of a step's last micro-batch. Returns the outputs and the part's mean loss."""
    last = (run.batch_in_epoch + 1) % accumulate == 0 or run.batch_in_epoch + 1 == run.batches_per_epoch
    if run.batch_in_epoch % accumulate == 0:
        run.dist.clock.step_start()
    with nullcontext() if last else run.dist.no_sync(run.model):
        with autocast_context(run.device, run.amp_dtype):
            out = run.model(xb)
            loss = run.loss_fn(out, yb)
        # A last batch split unevenly: each part weighs by its rows, so the average is the whole batch's mean.
        weight = run.dist.weight(run.batch_in_epoch, run.config.train.batch_size, len(yb)) / accumulate
        backward(run, loss * weight if weight != 1.0 else loss)
    if last:
        run.dist.clock.backward_end()
    return out, loss


def backward(run: Run, loss: torch.Tensor) -> None:
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
    else:
        loss.backward()


def optimizer_step(run: Run) -> None:
    """Unscale, let callbacks read the gradients, clip, step, schedule and zero the gradients."""
    spec = optim.OPTIMIZERS[run.config.train.optimizer]
    if spec.sparse:
        optim.require_sparse_gradients(run.model, run.params)
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    run.callbacks.on_before_optimizer_step(run)
    if run.grad_clip > 0:
        if run.config.train.clip_mode == "value":
            torch.nn.utils.clip_grad_value_(run.params, run.grad_clip)
        else:
            torch.nn.utils.clip_grad_norm_(run.params, run.grad_clip, foreach=True)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    elif spec.closure:
        run.optimizer.step(lambda: reevaluate(run))
    else:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if run.scheduler is not None:
        run.scheduler.step()


def reevaluate(run: Run) -> torch.Tensor:
    """The closure L-BFGS calls, several times a step: the loss and its gradients on the step's batch again."""
    xb, yb = run.last_batch
    run.optimizer.zero_grad(set_to_none=True)
    with autocast_context(run.device, run.amp_dtype):
        loss = run.loss_fn(run.model(xb), yb)
    loss.backward()
    return loss


def epoch_evaluation_due(run: Run) -> bool:
    """Whether the epoch that just ended is evaluated: always, but on short epochs only once training has run
    (1 / train.eval_budget - 1) times as long as the last evaluation took, so evaluations (and the prediction
    grid and best.pt that follow them) take at most that share of the time, and never more than EVAL_GAP_MAX_S
    of training apart (an epoch that long is always evaluated, whatever its evaluation costs). The last epoch
    always is, and every epoch when what is trained depends on it (a plateau schedule, early stopping) or
    ranks must agree."""
    cfg = run.config.train
    if (cfg.eval_budget <= 0 or run.eval_ended is None or (cfg.epochs and run.epoch >= cfg.epochs)
            or run.plateau is not None or cfg.early_stop_metric or run.dist is not None):
        return True
    rest = min(run.eval_cost * (1 / cfg.eval_budget - 1), EVAL_GAP_MAX_S)  # eval_budget <= 1 (validated)
    return time.perf_counter() - run.eval_ended >= rest


def validate(run: Run) -> None:
    """Evaluate the val split (when there is one), step the plateau scheduler and tell the callbacks.

    Data parallel, every rank comes here at the same step: they flush together, rank 0 evaluates, and each
    rank steps its plateau scheduler and early stopping on rank 0's figures (so they decide alike)."""
    started = time.perf_counter()
    try:
        _validate(run)
    finally:
        run.eval_ended = time.perf_counter()
        run.eval_cost = run.eval_ended - started


def _validate(run: Run) -> None:
    with nullcontext() if run.dist is None else run.dist.together():
        run.callbacks.on_flush(run)
    if run.should_stop and run.end_state == DIVERGED:
        return
    if not len(run.data.val):
        return
    if run.dist is None:
        metrics = evaluate(run, "val")
    else:
        metrics = run.dist.broadcast(evaluate(run, "val") if run.dist.leader else None)
    run.last_val = metrics
    if run.plateau is not None:
        run.plateau.step(metrics["loss"])
    run.callbacks.on_validation_end(run, "val", metrics)


def evaluate(run: Run, split: str) -> dict:
    """Loss and metrics of a split in eval mode under inference_mode, plus the dead-ReLU fraction.

    Returns plain values: {"loss", metric names…, "confusion": [[…]] (classification),
    "dead_relu": {layer: fraction}}. One host sync for all of them.
    """
    part = getattr(run.data, split)
    if run.task == "tokens":
        return _evaluate_tokens(run, part)
    # Eager and unwrapped: a compiled model would compile again for inference_mode and each chunk size
    # (0.57 of a bare loop's throughput for a compiled MLP on a GPU), and a DDP wrapper has nothing to do here.
    model = run.plain_model
    was_training = model.training
    model.eval()
    alive, hooks = _dead_relu_hooks(model)
    try:
        with torch.inference_mode(), autocast_context(run.device, run.amp_dtype):
            outs, ys = [], []
            for xb, yb in part.chunks(EVAL_CHUNK):
                outs.append(model(xb))
                ys.append(yb)
            out, y = torch.cat(outs).float(), torch.cat(ys)
            loss = run.loss_fn(out, y)
            values, confusion = _metrics(run, out, y)
            values["loss"] = loss
            dead = {k: 1.0 - v.float().mean() for k, v in alive.items() if v is not None}
            scalars = [*values.values(), *dead.values()]
            # note: this is a CPU-GPU sync point, one per evaluation.
            wide = _wide(out.device)  # mse in data units may pass float32's 3.4e38
            host = torch.stack([v.to(wide).reshape(()) for v in scalars]).tolist()
            result: dict = dict(zip(values, host))
            result["dead_relu"] = dict(zip(dead, host[len(values):]))
            if confusion is not None:
                result["confusion"] = confusion.tolist()
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return result


def _evaluate_tokens(run: Run, part) -> dict:
    """Next-token data: loss, perplexity, token accuracy and bits per character (no confusion over a vocabulary)."""
    from torchtui.engine.run.token_metrics import token_metrics

    model = run.plain_model
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast_context(run.device, run.amp_dtype):
            result = token_metrics(model, part, run.tokens.pad_id if run.tokens is not None else None,
                                   getattr(run.data, "tokenizer", None), run.config.train.label_smoothing)
    finally:
        model.train(was_training)
    result["dead_relu"] = {}
    return result


def _wide(device: torch.device) -> torch.dtype:
    """float64 where the device has it (MPS has not): evaluation metrics are computed and read back in it."""
    return torch.float64 if device.type != "mps" else torch.float32


def _metrics(run: Run, out: torch.Tensor, y: torch.Tensor) -> tuple[dict, torch.Tensor | None]:
    if run.predict is None:  # metrics in the data's units, also when the targets were standardised
        wide = _wide(out.device)  # targets near 1e30 give squared errors past float32's 3.4e38
        out = run.data.unscale_y(out.to(wide))
        target = run.data.unscale_y(y.to(wide).reshape(out.shape))
        return {
            "mse": tmf.mean_squared_error(out, target),
            "mae": tmf.mean_absolute_error(out, target),
            "r2": tmf.r2_score(out.flatten(), target.flatten()) if out.numel() > 1 else torch.zeros(()),
        }, None
    preds, k = run.predict(out), run.data.n_classes
    target = y.long()
    # validate_args=False: the labels were checked when the data loaded, and torchmetrics' checks of them
    # are host syncs (target >= num_classes …) on a GPU, five times an evaluation.
    cls, check = tmf.classification, {"validate_args": False}
    values = {
        "accuracy": cls.multiclass_accuracy(preds, target, k, average="micro", **check),
        "f1": cls.multiclass_f1_score(preds, target, k, average="macro", **check),
        "precision": cls.multiclass_precision(preds, target, k, average="macro", **check),
        "recall": cls.multiclass_recall(preds, target, k, average="macro", **check),
    }
    return values, cls.multiclass_confusion_matrix(preds, target, k, **check)


def _dead_relu_hooks(model: nn.Module):
    """Forward hooks marking which units of each ReLU-like layer were ever positive in this pass."""
    alive: dict[str, torch.Tensor | None] = {}
    hooks = []
    for name, module in activation_modules(model).items():
        alive[name] = None

        def hook(_m, _inp, output, name=name):
            seen = (output > 0).flatten(1).any(dim=0) if output.dim() > 1 else (output > 0)
            alive[name] = seen if alive[name] is None else alive[name] | seen

        hooks.append(module.register_forward_hook(hook))
    return alive, hooks
