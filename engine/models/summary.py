"""Model summaries: per-layer output shapes and parameter counts from one dummy forward pass, as a table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass
class LayerRow:
    """One leaf layer of a summary; output_shape has -1 for the batch dimension."""

    name: str
    type: str
    output_shape: list[int]
    params: int
    trainable: int


@dataclass
class ModelSummary:
    """Per-layer rows and parameter totals; shapes use -1 for the batch dimension."""

    rows: list[LayerRow]
    total: int
    trainable: int
    input_shape: list[int]
    notes: list[str] = field(default_factory=list)  # what the model says of itself (a transformer: per block)

    def to_dict(self) -> dict:
        """Plain lists, ints and strings only, safe for events and JSON."""
        return asdict(self)


def _output_shapes(model: nn.Module, leaves: list[tuple[str, nn.Module]], input_shape: tuple[int, ...],
                   input_dtype: torch.dtype | None = None) -> dict[str, list[int]]:
    """Each leaf's output shape from one dummy forward pass, batch dimension replaced by -1."""
    shapes: dict[str, list[int]] = {}

    def record(name):
        def hook(_module, _inputs, output):
            if isinstance(output, (tuple, list)) and output:  # recurrent layers return (output, state)
                output = output[0]
            if isinstance(output, torch.Tensor):  # (a position embedding's output has no batch dimension)
                shapes[name] = [-1, *output.shape[1:]] if output.shape[:1] == (2,) else list(output.shape)
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in leaves]
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    if input_dtype is not None and not input_dtype.is_floating_point:
        dtype = input_dtype  # token ids: an embedding takes integers (id 0 is in every vocabulary)
    was_training = model.training
    # eval: BatchNorm must not fold the dummy batch into its running statistics, and dropout stays off.
    model.eval()
    try:
        with torch.no_grad():
            # a batch of 2, because BatchNorm1d refuses a batch of one in training mode
            model(torch.zeros(2, *input_shape, device=device, dtype=dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return shapes


def summarize(model: nn.Module, input_shape: int | tuple[int, ...], input_dtype: torch.dtype | None = None
              ) -> ModelSummary:
    """One row per leaf module with its output shape (batch dimension as -1) and parameter counts; `input_dtype`
    int64 for models that read token ids.

    Modules that hold parameters of their own besides children (a custom block's scale, say) get a row too.
    """
    input_shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    leaves = [(n, m) for n, m in model.named_modules()
              if n and (next(m.children(), None) is None or next(m.parameters(recurse=False), None) is not None)]
    shapes = _output_shapes(model, leaves, input_shape, input_dtype)
    rows = []
    for name, module in leaves:
        params = list(module.parameters(recurse=False))
        rows.append(LayerRow(
            name=name, type=type(module).__name__, output_shape=shapes.get(name, []),
            params=sum(p.numel() for p in params), trainable=sum(p.numel() for p in params if p.requires_grad),
        ))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    notes = list(model.summary_lines()) if callable(getattr(model, "summary_lines", None)) else []
    return ModelSummary(rows=rows, total=total, trainable=trainable, input_shape=[-1, *input_shape], notes=notes)


def _shape_text(shape: list[int]) -> str:
    """(N, 128): the batch dimension (-1) written as N."""
    if not shape:
        return "?"
    return "(" + ", ".join("N" if i == 0 and d == -1 else str(d) for i, d in enumerate(shape)) + ")"


def format_summary(summary: ModelSummary) -> str:
    """A plain-text table like Keras' model.summary() (batch dimension shown as N), then the totals."""
    header = ("Layer", "Type", "Output shape", "Params", "Trainable")
    body = [(r.name, r.type, _shape_text(r.output_shape), f"{r.params:,}", f"{r.trainable:,}")
            for r in summary.rows]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    numeric = (False, False, False, True, True)

    def line(row) -> str:
        cells = (c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric))
        return "  ".join(cells).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([
        f"Input shape: {_shape_text(summary.input_shape)}",
        line(header), rule, *map(line, body), rule,
        f"Total params: {summary.total:,}",
        f"Trainable params: {summary.trainable:,}",
        f"Non-trainable params: {summary.total - summary.trainable:,}",
        *summary.notes,
    ])
