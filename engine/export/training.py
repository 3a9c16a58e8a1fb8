"""The training sections of an exported script: loss, optimizer, lr schedule, live changes and the loop.

They mirror engine/run/optim.py and loop.py: the same batch order per (seed, epoch), the same step,
clip and schedule order, evaluation after each epoch (and every eval_every steps), early stopping.
"""

from __future__ import annotations

import inspect

from torchtui.engine.export.parts import Part, fill, unsupported
from torchtui.engine.run.optim import OPTIMIZERS

LOSSES = {  # name -> (code defining loss_fn, needs F)
    "mse": ("loss_fn = nn.MSELoss()\n", False),
    "l1": ("loss_fn = nn.L1Loss()\n", False),
    "smooth_l1": ("loss_fn = nn.SmoothL1Loss()\n", False),
    "huber": ("loss_fn = nn.HuberLoss(delta=$delta)\n", False),
    "cross_entropy": ("loss_fn = nn.CrossEntropyLoss($smoothing)\n", False),
    "bce_with_logits": (("def loss_fn(out, y):\n    # One logit per sample: the positive class's.\n"
                        "    return F.binary_cross_entropy_with_logits(out.squeeze(1), y.float())\n"), True),
    "nll": (("def loss_fn(out, y):\n    # The model returns logits; nll wants log-probabilities.\n"
            "    return F.nll_loss(F.log_softmax(out, dim=1), y)\n"), True),
    "kl_div": (("def loss_fn(out, y):\n    # KL divergence from the one-hot targets to the predicted distribution.\n"
               "    return F.kl_div(F.log_softmax(out, dim=1), F.one_hot(y, out.shape[1]).float(), "
               "reduction=\"batchmean\")\n"), True),
}
EARLY_STOP_METRICS = ("loss", "accuracy", "mse", "mae")  # what the script's evaluate() computes


def check_train(train) -> None:
    """Refuse training settings the script would not replicate, before any data is loaded."""
    if train.early_stop_metric and train.early_stop_metric not in EARLY_STOP_METRICS:
        raise unsupported("train.early_stop_metric", train.early_stop_metric,
                          f"export computes {', '.join(EARLY_STOP_METRICS)}: pick one of them, "
                          "or turn early stopping off")
    if not train.epochs:
        raise unsupported("train.epochs", 0, "a script's loop needs an end: set train.epochs")
    spec = OPTIMIZERS[train.optimizer]
    if any(getattr(spec, flag, False) for flag in ("closure", "sparse", "matrices")):
        raise unsupported("train.optimizer", train.optimizer, "export steps plain dense optimizers: use adam, "
                          "adamw, sgd or another that needs no closure and no sparse or matrix-only weights")


def loss_part(train, loss_name: str, task: str, n_out: int) -> Part:
    code, functional = LOSSES[loss_name]
    code = fill(code, delta=repr(train.huber_delta),
                smoothing=f"label_smoothing={train.label_smoothing!r}" if train.label_smoothing else "")
    if task == "regression":
        metrics = ("# Regression: the loss, and the mean squared and absolute errors.\n"
                   "def metrics(out, y):\n    return {\"loss\": loss_fn(out, y).item(), "
                   "\"mse\": F.mse_loss(out, y).item(), \"mae\": F.l1_loss(out, y).item()}\n")
        functional = True
    else:
        predict = "(out.squeeze(1) > 0).long()" if n_out == 1 else "out.argmax(dim=1)"
        metrics = ("# Classification: the loss and the share of samples whose predicted class is right.\n"
                   "def metrics(out, y):\n"
                   "    return {\"loss\": loss_fn(out, y).item(), "
                   f"\"accuracy\": ({predict} == y).float().mean().item()}}\n")
    imports = {"from torch import nn"} | ({"import torch.nn.functional as F"} if functional else set())
    return Part(f"loss: {loss_name}", code + "\n\n" + metrics, [], imports)


def optimizer_part(train) -> Part:
    """torch.optim's class with the settings the engine passes, leaving out those at torch's own default."""
    import torch

    spec = OPTIMIZERS[train.optimizer]
    if isinstance(spec, tuple):  # (class name, shared fields): the registry before optimizer_args
        class_name, fields, own = spec[0], spec[1], ()
    else:
        class_name, fields, own = spec.cls, spec.takes, spec.args
    kwargs = {name: getattr(train, name) for name in fields}
    for arg in own:
        value, _problem = arg.parse(getattr(train, "optimizer_args", {}).get(arg.name, arg.default))
        kwargs[arg.name] = None if arg.kind == "choice" and value == "none" else value
    defaults = inspect.signature(getattr(torch.optim, class_name)).parameters
    args = ["model.parameters()", "lr=lr"]
    for name, value in kwargs.items():
        value = tuple(value) if isinstance(value, list) else value
        default = defaults[name].default if name in defaults else inspect.Parameter.empty
        if default is inspect.Parameter.empty or value != default:
            args.append(f"{name}={value!r}")
    return Part(f"optimizer: {class_name}", f"optimizer = torch.optim.{class_name}({', '.join(args)})\n",
                [("lr", train.lr, "train.lr")])


def scheduler_part(train) -> Part:
    """The lr schedule, stepped after every optimizer step (plateau: after every evaluation)."""
    settings: list = []
    if train.scheduler == "none" and not train.warmup_steps:
        return Part("", "", settings)
    warm = train.warmup_steps and train.scheduler != "onecycle"
    per = "(len(x_train) + batch_size - 1) // batch_size"
    code = (f"steps_per_epoch = ({per} + accumulate - 1) // accumulate\n" if train.accumulate > 1
            else f"steps_per_epoch = {per}  # optimizer steps per epoch\n")
    code += "total_steps = max(1, epochs * steps_per_epoch)\n"
    if train.warmup_steps:
        settings.append(("warmup_steps", train.warmup_steps, "linear warm-up"))
        code += "warmup_steps = min(warmup_steps, total_steps - 1)\n"
    s = train.scheduler
    main = {
        "step": f"lr_scheduler.StepLR(optimizer, {train.step_size} * steps_per_epoch, gamma={train.gamma!r})",
        "multistep": ("lr_scheduler.MultiStepLR(optimizer, "
                      f"[max(1, m * steps_per_epoch{' - warmup_steps' if warm else ''}) "
                      f"for m in {list(train.milestones)!r}], gamma={train.gamma!r})"),
        "exponential": f"lr_scheduler.ExponentialLR(optimizer, gamma={train.gamma!r} ** (1.0 / steps_per_epoch))",
        "cosine": ("lr_scheduler.CosineAnnealingLR(optimizer, "
                   f"T_max=max(1, total_steps{' - warmup_steps' if warm else ''}), "
                   f"eta_min={train.min_lr!r})"),
        "onecycle": ("lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start="
                     + ("warmup_steps / total_steps)" if train.warmup_steps else "0.3)")),
        "plateau": (f"lr_scheduler.ReduceLROnPlateau(optimizer, factor={train.gamma!r}, "
                    f"patience={train.plateau_patience}, min_lr={train.min_lr!r})"),
    }.get(s)
    name = "plateau" if s == "plateau" else ("decay" if warm else "scheduler")
    if main is not None:
        code += f"{name} = {main}\n"
    if warm:
        code += ("warmup = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup_steps + 1), "
                 "total_iters=warmup_steps)\n")
        code += ("scheduler = lr_scheduler.SequentialLR(optimizer, [warmup, decay], milestones=[warmup_steps])\n"
                 if main is not None and s != "plateau" else "scheduler = warmup\n")
    title = f"lr schedule: {s}" + (" after a linear warm-up" if warm else "")
    return Part(title, code, settings, {"from torch.optim import lr_scheduler"})


def has_scheduler(train) -> bool:
    return (train.scheduler not in ("none", "plateau")) or bool(train.warmup_steps)


def live_part(train, changes: dict[int, dict]) -> Part:
    """`live_changes` and the function that applies one, as the run's controls did (engine/run/controls.py)."""
    if not changes:
        return Part("", "", [])
    for step, change in changes.items():
        for key in change:
            if key not in ("lr", "weight_decay", "grad_clip"):
                raise unsupported(f"metrics.jsonl: the live change of {key} at step {step}", change[key],
                                  "export replays lr, weight_decay and grad_clip")
    rows = "".join(f"    {step}: {change!r},\n" for step, change in sorted(changes.items())).replace("'", '"')
    table = ("# Live changes made while the run trained (its metrics.jsonl): {optimizer steps taken: new values},\n"
             "# each applied before the next step, as the run applied it.\n" + f"live_changes = {{\n{rows}}}\n")
    clip = any("grad_clip" in c for c in changes.values())
    lines = ['def apply_live_change(change):', '    """Set what the run changed while it trained."""']
    lines += ["    global grad_clip"] if clip else []
    scheduled = has_scheduler(train) or train.scheduler == "plateau"
    if any("lr" in c for c in changes.values()):
        if scheduled:
            lines += ['    if "lr" in change:',
                      "        # Scale the lr and every lr the schedule moves towards: the schedule keeps its shape.",
                      '        factor = change["lr"] / optimizer.param_groups[0]["lr"]',
                      "        for group in optimizer.param_groups:",
                      '            for key in ("lr", "initial_lr", "max_lr", "min_lr"):',
                      "                if key in group:",
                      "                    group[key] *= factor"]
            if has_scheduler(train):
                lines += ['        for sched in [scheduler, *getattr(scheduler, "_schedulers", [])]:',
                          '            if hasattr(sched, "base_lrs"):',
                          "                sched.base_lrs = [base * factor for base in sched.base_lrs]",
                          '            if hasattr(sched, "eta_min"):',
                          "                sched.eta_min *= factor",
                          '            sched._last_lr = [group["lr"] for group in optimizer.param_groups]']
            if train.scheduler == "plateau":
                lines += ["        plateau.min_lrs = [m * factor for m in plateau.min_lrs]"]
        else:
            lines += ['    if "lr" in change:', "        for group in optimizer.param_groups:",
                      '            group["lr"] = change["lr"]']
    if any("weight_decay" in c for c in changes.values()):
        lines += ['    if "weight_decay" in change:', "        for group in optimizer.param_groups:",
                  '            group["weight_decay"] = change["weight_decay"]']
    lines += ['    grad_clip = change.get("grad_clip", grad_clip)'] if clip else []
    return Part("live changes", table + "\n\n" + "\n".join(lines) + "\n", [])


def loop_part(train, changes: dict, has_val: bool, max_steps: int = 0) -> Part:
    """evaluate(), validate() and the epoch loop, printing val metrics per epoch, then the test split; with
    `max_steps` (a run that trained until stopped) the loop ends after that many steps, as the run did."""
    clip = train.grad_clip > 0 or any("grad_clip" in c for c in changes.values())
    settings = [("epochs", train.epochs, ""), ("batch_size", train.batch_size, "0 = the whole train split")]
    settings += [("accumulate", train.accumulate, "batches per optimizer step")] if train.accumulate > 1 else []
    if clip:
        settings += [("grad_clip", train.grad_clip, f"clip the gradients' {train.clip_mode} (0 = off)")]
    settings += [("eval_every", train.eval_every, "also evaluate every N steps")] if train.eval_every else []
    settings += [("seed", train.seed, "train.seed: batch order, dropout")]
    if max_steps:
        settings += [("max_steps", max_steps, "the run trained until stopped: it took this many steps")]
    stop = bool(train.early_stop_metric) and has_val
    code = fill("""
        def evaluate(x, y):
            \"\"\"The metrics of one split, in eval mode (no dropout; batch norm uses its running statistics).\"\"\"
            model.eval()
            with torch.no_grad():
                out = torch.cat([model(xb) for xb in x.split(8192)])
                result = metrics(out, y)
            model.train()
            return result
        """)
    code += "\n\n" + _validate(train, stop)
    acc = train.accumulate > 1
    first = []  # what happens before the first batch of each optimizer step
    if changes:
        first += ["if step in live_changes:", "    apply_live_change(live_changes[step])"]
    if stop and train.eval_every:
        first += ["if stop:  # an evaluation within the epoch stopped it", "    break"]
    if acc and first:
        inner = ["        if i % accumulate == 0:  # the first batch of an optimizer step"]
        inner += [f"            {line}" for line in first]
    else:
        inner = [f"        {line}" for line in first]
    inner += ["        idx = order[start:start + batch_size]",
              "        loss = loss_fn(model(x_train[idx]), y_train[idx])",
              "        (loss / accumulate).backward()" if acc else "        loss.backward()"]
    step_pad = "        "
    if acc:
        inner += ["        if (i + 1) % accumulate == 0 or i + 1 == len(starts):"]
        step_pad = "            "
    if clip:
        fn = ("torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)" if train.clip_mode == "value"
              else "torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=True)")
        inner += [f"{step_pad}if grad_clip > 0:", f"{step_pad}    {fn}"]
    inner += [f"{step_pad}optimizer.step()", f"{step_pad}optimizer.zero_grad(set_to_none=True)"]
    if has_scheduler(train):
        inner += [f"{step_pad}scheduler.step()"]
    inner += [f"{step_pad}step += 1"]
    if max_steps:
        inner += [f"{step_pad}if step == max_steps:", f"{step_pad}    break"]
    if train.eval_every and has_val:
        inner += [f"{step_pad}if step % eval_every == 0:", f"{step_pad}    validate(epoch, step, loss)"]
    loop = ["step = 0  # optimizer steps taken", "stop = False" if stop else "",
            "for epoch in range(epochs):",
            "    model.train()",
            "    # Each epoch's batch order comes from (seed, epoch), as in the run.",
            "    gen = torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + epoch) % 2**63)",
            "    order = torch.randperm(len(x_train), generator=gen).to(device)",
            "    starts = range(0, len(order), batch_size)",
            "    for i, start in enumerate(starts):" if acc else "    for start in starts:", *inner]
    if stop and train.eval_every:
        loop += ["    if stop:", "        break"]
    if max_steps:
        loop += ["    if step == max_steps:  # stopped there, before this epoch's end", "        break"]
    if has_val:
        loop += ["    validate(epoch + 1, step, loss)"]
    else:
        loop += ['    print(f"epoch {epoch + 1} step {step}: train loss {loss.item():.4f}")']
    if stop:
        loop += ["    if stop:", "        break"]
    code += "\n\n" + "\n".join(line for line in loop if line) + "\n"
    code += "\n" + fill("""
        if len(x_test):
            print(", ".join(f"test {name} {value:.4f}" for name, value in evaluate(x_test, y_test).items()))
        """)
    return Part("training", code, settings, {"import math"} if stop else set())


def _validate(train, stop: bool) -> str:
    lines = ["def validate(epoch, step, loss):",
             '    """Evaluate the val split after an epoch (or eval_every steps) and report it."""']
    if stop:
        lines.insert(1, "    global best, wait, stop")
    lines += ["    result = evaluate(x_val, y_val)",
              '    shown = ", ".join(f"val {name} {value:.4f}" for name, value in result.items())',
              '    print(f"epoch {epoch} step {step}: train loss {loss.item():.4f}, {shown}")']
    if train.scheduler == "plateau":
        lines += ['    plateau.step(result["loss"])']
    if stop:
        metric = train.early_stop_metric
        mode = train.early_stop_mode if train.early_stop_mode != "auto" else ("max" if metric == "accuracy" else "min")
        better = (f"value {'<' if mode == 'min' else '>'} best {'-' if mode == 'min' else '+'} "
                  f"{train.early_stop_min_delta!r}")
        lines += [f'    value = result["{metric}"]',
                  f"    if math.isfinite(value) and (best is None or {better}):",
                  "        best, wait = value, 0",
                  "    else:",
                  "        wait += 1",
                  f"        stop = wait >= {train.early_stop_patience}",
                  "        if stop:",
                  f'            print(f"early stop: val {metric} did not improve for {{wait}} evaluations")']
        lines = [f"best, wait = None, 0  # early stopping on val {metric} ({mode})", "", ""] + lines
    return "\n".join(lines) + "\n"
