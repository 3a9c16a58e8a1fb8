"""Per-step training statistics kept on the device and pulled to the host in one sync per flush."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch


@dataclass
class Flushed:
    """One flush's worth of statistics as host values, plus the first non-finite step if any."""
    step: list[int]
    loss: list[float]
    grad_norm: list[float]              # global gradient norm at each of layer_steps
    correct: list[float]                # correct predictions on each of acc_steps (classification)
    acc_steps: list[int]
    acc_sizes: list[int]
    layer_steps: list[int]
    layer_grad_norm: list[list[float]]
    update_ratio: list[list[float]]
    weight_norm: list[list[float]]
    samples: int
    seconds: float
    bad_step: int | None = None
    bad_layer: str | None = None
    bad_what: str = ""
    extra: list[float] = field(default_factory=list)  # data parallel: `extra` of flush() summed over the ranks


@dataclass
class StepBuffer:
    """Device-side record of the steps since the last flush.

    Every step stores the loss. For classification, every `acc_every`-th step also keeps references to
    its outputs and targets; accuracy is computed for them all at flush. Keeping every step's outputs
    alive cost ~3 % of a small MLP's throughput (bench/bench_engine.py), and a batch accuracy every few
    steps draws the same trend. Every `every` steps it also stores per-parameter gradient norms,
    ‖Δw‖/‖w‖ and ‖w‖, which need a copy of the weights before the optimizer step.
    """
    layer_of_param: list[int]
    layer_names: list[str]
    every: int
    acc_every: int = 1
    steps: list[int] = field(default_factory=list)
    acc_steps: list[int] = field(default_factory=list)
    acc_sizes: list[int] = field(default_factory=list)
    losses: list[torch.Tensor] = field(default_factory=list)
    norms: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    targets: list[torch.Tensor] = field(default_factory=list)
    sampled: list[int] = field(default_factory=list)
    updates: list[torch.Tensor] = field(default_factory=list)  # per sampled step: ‖Δw‖ of each param, then ‖w‖
    samples: int = 0
    since: float = field(default_factory=time.perf_counter)
    per_step_rows: bool = False                  # data parallel: each step's rows are kept to weigh the ranks
    sizes: list[int] = field(default_factory=list)
    _snapshot: list[torch.Tensor] | None = None  # the weights before a sampled step (allocated once, reused)
    _pending: bool = False                       # a snapshot waits for its step's after_step

    def __len__(self) -> int:
        return len(self.steps)

    def before_step(self, params: list[torch.Tensor], step: int) -> None:
        """On sampled steps: gradient norms (before clipping) and a snapshot of the weights.

        Sampled, not every step: on a small MLP the per-step norms alone cost ~6 % of throughput
        (bench/bench_engine.py); the loss, recorded every step, is what catches divergence. A sample is a
        handful of foreach ops on the whole parameter list (each one dispatch), into buffers allocated once:
        per-parameter clones and subtractions cost 1.6x as much on the small MLP.
        """
        if step % self.every:
            return
        self.norms.append(torch.stack(torch._foreach_norm(_gradients(params))))
        if self._snapshot is None:
            self._snapshot = [torch.empty_like(p) for p in params]
        with torch.no_grad():
            torch._foreach_copy_(self._snapshot, params)
        self._pending = True

    def after_step(self, params, step: int, loss: torch.Tensor, outputs: torch.Tensor | None,
                   targets: torch.Tensor) -> None:
        """Record this step's loss and, on accuracy steps of classification runs, its outputs and targets
        (references only: accuracy is computed at flush); update and weight norms when the weights were
        snapshotted."""
        self.steps.append(step)
        self.losses.append(loss.detach())
        rows = len(targets)
        self.samples += rows
        if self.per_step_rows:
            self.sizes.append(rows)
        if outputs is not None and step % self.acc_every == 0:
            if outputs.dim() == 3:  # next-token logits (N, T, V): accuracy over the batch's positions
                outputs, targets = outputs.flatten(0, 1), targets.flatten()
            self.outputs.append(outputs.detach())
            self.targets.append(targets)
            self.acc_steps.append(step)
            self.acc_sizes.append(len(targets))
        if self._pending:
            with torch.no_grad():
                torch._foreach_sub_(self._snapshot, params)  # before − after: the update, up to its sign
                self.updates.append(torch.stack([*torch._foreach_norm(self._snapshot), *torch._foreach_norm(params)]))
            self.sampled.append(step)
            self._pending = False

    def _reduced(self, losses: torch.Tensor, correct: torch.Tensor | None, reduce, extra: list[float]):
        """Data parallel: each step's loss as the mean over every rank's rows (each rank's mean, weighted by
        its rows), the correct predictions of all ranks, the rows behind them and `extra`, in one all-reduce."""
        device = losses.device
        rows = torch.tensor(self.sizes, dtype=torch.float32, device=device)
        acc_rows = torch.tensor(self.acc_sizes if correct is not None else [], dtype=torch.float32, device=device)
        more = torch.tensor(extra, dtype=torch.float32, device=device)  # memory in bytes: float32 keeps 7 digits
        pieces = [losses * rows, rows, more, acc_rows, rows.sum().reshape(1)]
        if correct is not None:
            pieces.insert(2, correct.float())
        summed = reduce(torch.cat(pieces))
        n, a = len(rows), len(acc_rows)
        losses = summed[:n] / summed[n:2 * n]
        if correct is not None:
            correct, rest = summed[2 * n:2 * n + a], summed[2 * n + a:]
        else:
            rest = summed[2 * n:]
        return losses, correct, [rest]  # extra, acc rows then all rows, decoded after the one transfer

    def _correct_per_step(self, predict) -> torch.Tensor:
        """Correct predictions of each buffered step, from a few batched ops instead of three per step."""
        hits = (predict(torch.cat(self.outputs)) == torch.cat(self.targets)).float().cumsum(0)
        ends = torch.tensor(self.acc_sizes, device=hits.device).cumsum(0) - 1
        totals = hits[ends]
        return torch.cat([totals[:1], totals[1:] - totals[:-1]])

    def flush(self, predict=None, reduce=None, extra: list[float] | None = None) -> Flushed:
        """Pull everything to the host in one transfer and reset. `reduce` (data parallel) sums a tensor over the
        ranks: the losses and batch accuracies are then those of the whole batches, the same on every rank, and
        `extra` (floats, the same length on every rank) comes back summed over them in Flushed.extra."""
        # note: this is the CPU-GPU sync point, once per flush rather than once per step.
        n, p = len(self.steps), len(self.layer_of_param)
        losses = torch.stack(self.losses).float()
        has_acc = bool(self.outputs) and predict is not None
        correct = self._correct_per_step(predict) if has_acc else None
        a = len(self.acc_steps) if has_acc else 0
        tail: list[torch.Tensor] = []
        if reduce is not None and n:
            losses, correct, tail = self._reduced(losses, correct, reduce, extra or [])
        parts = [losses]
        if self.norms:
            parts.append(torch.stack(self.norms).float().flatten())
        if has_acc:
            parts.append(correct)
        if self.sampled:
            parts.append(torch.stack(self.updates).float().flatten())
        flat = torch.cat([t.to("cpu", torch.float64) for t in parts + tail]).tolist() if n else []
        samples, acc_sizes = self.samples, list(self.acc_sizes)
        summed: list[float] = []
        if tail:  # `extra`, then the rows of all ranks: per accuracy step, then in all
            e = len(extra or [])
            samples, acc_sizes = int(flat[-1]), [int(v) for v in flat[-1 - a:-1]]
            summed, flat = flat[len(flat) - 1 - a - e:-1 - a], flat[:len(flat) - 1 - a - e]
        s = len(self.sampled)
        losses, flat = flat[:n], flat[n:]
        norms = {step: flat[i * p:(i + 1) * p] for i, step in enumerate(self.sampled)}
        flat = flat[s * p:]
        correct, flat = (flat[:a], flat[a:]) if has_acc else ([], flat)
        deltas = [flat[2 * i * p:(2 * i + 1) * p] for i in range(s)]
        weights = [flat[(2 * i + 1) * p:(2 * i + 2) * p] for i in range(s)]
        now = time.perf_counter()
        out = Flushed(
            step=list(self.steps), loss=losses, correct=correct,
            grad_norm=[_total(norms[st]) for st in self.sampled],
            acc_steps=list(self.acc_steps) if has_acc else [], acc_sizes=acc_sizes if has_acc else [],
            layer_steps=list(self.sampled),
            layer_grad_norm=[self._by_layer(norms[st]) for st in self.sampled],
            update_ratio=[_ratio(self._by_layer(d), self._by_layer(w)) for d, w in zip(deltas, weights)],
            weight_norm=[self._by_layer(w) for w in weights],
            samples=samples, seconds=now - self.since, extra=summed,
        )
        self._find_bad(out, norms)
        snapshot = self._snapshot
        self.__init__(self.layer_of_param, self.layer_names, self.every, self.acc_every,
                      per_step_rows=self.per_step_rows)
        self.since, self._snapshot = now, snapshot
        return out

    def _by_layer(self, param_norms: list[float]) -> list[float]:
        sq = [0.0] * len(self.layer_names)
        for i, v in zip(self.layer_of_param, param_norms):
            sq[i] += v * v
        return [math.sqrt(s) for s in sq]

    def _find_bad(self, out: Flushed, norms: dict[int, list[float]]) -> None:
        if all(map(math.isfinite, out.loss)) and all(all(map(math.isfinite, v)) for v in norms.values()):
            return  # the common case, without a Python loop over every step
        for i, step in enumerate(out.step):
            bad_params = [j for j, v in enumerate(norms.get(step, ())) if not math.isfinite(v)]
            if bad_params:
                out.bad_step, out.bad_what = step, "gradients"
                out.bad_layer = self.layer_names[self.layer_of_param[bad_params[0]]]
                return
            if not math.isfinite(out.loss[i]):
                out.bad_step, out.bad_what = step, "loss"
                return


def _total(norms: list[float]) -> float:
    return math.sqrt(sum(v * v for v in norms))


def _ratio(delta: list[float], weight: list[float]) -> list[float]:
    return [d / w if w > 0 else 0.0 for d, w in zip(delta, weight)]


def _gradients(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each parameter's gradient for a norm: zeros where it has none, a sparse one's coalesced values."""
    grads = [p.grad for p in params]
    if any(g is None or g.is_sparse for g in grads):  # sparse_adam's embeddings, frozen-then-unfrozen layers
        grads = [torch.zeros_like(p) if g is None else g.coalesce().values() if g.is_sparse else g
                 for p, g in zip(params, grads)]
    return grads
