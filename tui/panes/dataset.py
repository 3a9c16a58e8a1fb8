"""The Dataset pane: the data config form (fields for the chosen source only), split sizes and a preview plot."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static
from textual_plotext import PlotextPlot

from torchtui.engine.config import DataConfig
from torchtui.engine.protocol import DataPreviewed
from torchtui.tui.panes.form import ConfigForm
from torchtui.tui.panes.form_pane import FormPane
from torchtui.tui.widgets.image_strip import ImageStrip

SECTION = "data"
SYNTHETIC = ("line", "moons", "circles", "xor", "spiral", "blobs", "sine")
FILES = ("csv", "idx", "tensors", "torchvision", "code", "text")
IMAGES = ("digits", "idx", "tensors", "torchvision", "code")  # sources that can hold images
# Fields that only some sources read; every other field applies to all of them.
SOURCE_FIELDS = {
    "n_samples": ("moons", "circles", "xor", "spiral", "blobs", "sine"),
    "noise": SYNTHETIC,
    "classes": ("spiral", "blobs"),
    "features": ("blobs",),
    "factor": ("circles",),
    "weight": ("line",), "bias": ("line",), "start": ("line",), "end": ("line",), "step": ("line",),
    "seq_len": ("sine",),
    "path": FILES, "target": ("csv",), "columns": ("csv",), "missing": ("csv",), "categorical": ("csv",),
    "dataset": ("torchvision",), "kwargs": ("code",),
    "limit": ("csv", "idx", "tensors", "torchvision", "code", "digits", "iris", "wine", "breast_cancer", "text"),
    "image_size": ("torchvision",),
    "flip": IMAGES, "crop": IMAGES,
    "stream": ("code", "torchvision", "text"), "workers": ("code", "torchvision"),
    "tokenizer": ("text", "csv"), "vocab_size": ("text", "csv"), "block_size": ("text", "csv"), "files": ("text",),
    "text_columns": ("csv",),
}
TEXT_FIELDS = ("tokenizer", "vocab_size", "block_size")  # on a CSV: only when data.text_columns names some
GROUPS = [
    ("Source", ["source", "dataset", "path", "files", "target", "columns", "missing", "categorical", "kwargs",
                "n_samples", "noise", "classes", "features", "factor", "weight", "bias", "start", "end", "step",
                "seq_len", "seed"]),
    ("Text", ["text_columns", "tokenizer", "vocab_size", "block_size"]),
    ("Loading", ["limit", "image_size", "stream", "workers"]),
    ("Augmentation (images)", ["flip", "crop"]),
    ("Splits", ["val_fraction", "test_fraction", "shuffle", "standardize", "standardize_target"]),
]
# plotext colour names, one per class (cycled when there are more classes).
CLASS_COLORS = ("cyan", "orange", "green", "magenta", "yellow", "blue", "red", "white")


def shape_words(shape: list[int]) -> str:
    """What one sample is, in words: "2 features" for a row of numbers, "each sample 1×28×28" otherwise."""
    if len(shape) == 1:
        return f"{shape[0]:,} feature{'s' * (shape[0] != 1)}"
    return f"each sample {'×'.join(map(str, shape))}" if shape else ""


class DatasetPane(FormPane):
    """Edits `DataConfig`; `show_preview` fills the sizes line and the plot from the engine's reply."""

    SECTION = SECTION

    DEFAULT_CSS = """
    DatasetPane { padding: 0 1; }
    DatasetPane #data-sizes { margin-top: 1; color: $text-muted; }
    DatasetPane #data-sizes.-error { color: $text-error; }
    DatasetPane #data-columns { color: $text-muted; }
    DatasetPane #data-preview { height: 16; min-width: 20; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        # Built here, not in compose, so set_values and show_preview work before the pane is mounted.
        self.form = ConfigForm(DataConfig, SECTION, groups=GROUPS, id="data-form")
        self.sizes = Static("preview: waiting for the engine…", id="data-sizes")
        self.columns = Static("", id="data-columns")  # a CSV's columns: type, missing, distinct values
        self.columns.display = False
        self.images = ImageStrip(id="data-images")
        self.preview = PlotextPlot(id="data-preview")
        self._show_relevant()

    def compose(self) -> ComposeResult:
        yield self.form
        yield self.sizes
        yield self.columns
        yield self.images
        yield self.preview

    def after_set(self) -> None:
        self._show_relevant()

    def on_edit(self, path: str) -> None:
        if path in (f"{SECTION}.source", f"{SECTION}.tokenizer", f"{SECTION}.text_columns"):
            self._show_relevant()

    def _show_relevant(self) -> None:
        source = self.form.raw("source")
        named = str(self.form.raw("text_columns")).strip() not in ("", "[]")
        text = source == "text" or (source == "csv" and named)
        for name, sources in SOURCE_FIELDS.items():
            relevant = source in sources and (text or name not in TEXT_FIELDS)
            if name == "vocab_size":  # only a BPE learns a vocabulary of a chosen size
                relevant = relevant and str(self.form.raw("tokenizer")).strip() == "bpe"
            self.form.set_relevant(name, relevant)

    # ------------------------------------------------------------------ preview

    def show_preview(self, reply: DataPreviewed) -> None:
        """Show split sizes and a scatter of the sample: x–y coloured by class, or feature against target."""
        sizes, plot = self.sizes, self.preview
        plt = plot.plt
        plt.clear_figure()
        sizes.set_class(bool(reply.error), "-error")
        self.columns.update(Text("\n".join(reply.columns)))
        self.columns.display = bool(reply.columns)
        if reply.error:
            self.images.show_images([], [], [])
            sizes.update(Text(f"preview: {reply.error}"))
            plot.refresh()
            return
        counts = " · ".join(f"{split} {reply.sizes.get(split, 0):,}" for split in ("train", "val", "test"))
        shape = shape_words(reply.input_shape)
        if reply.task == "tokens" and reply.input_shape:
            shape = f"next-token windows of {reply.input_shape[0]:,}"
        detail = ", ".join(part for part in (reply.task, shape) if part)
        sizes.update(Text(f"{counts}   ({detail})" if detail else counts))
        self.images.show_images(reply.images, reply.image_labels, reply.class_names)
        if reply.images or (reply.class_counts and len(reply.input_shape) != 1):
            self._plot_counts(plt, reply.class_counts, reply.class_names)
        elif reply.task == "regression":
            self._plot_regression(plt, reply.x, reply.y)
        else:
            self._plot_classes(plt, reply.x, reply.y, reply.class_names)
        plot.refresh()

    @staticmethod
    def _plot_counts(plt: Any, counts: list, class_names: list) -> None:
        """Train samples per class, for data a scatter cannot show (images, sequences)."""
        if not counts:
            return
        names = [str(class_names[i]) if i < len(class_names) else str(i) for i in range(len(counts))]
        plt.bar([n[:8] for n in names], counts, color="cyan")
        plt.title("train samples per class")

    @staticmethod
    def _plot_classes(plt: Any, x: list, y: list, class_names: list) -> None:
        points: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
        for row, label in zip(x, y):
            px, py = points[int(label)]
            px.append(row[0])
            # One feature: spread the points by class so they stay visible.
            py.append(row[1] if len(row) > 1 else float(label))
        for label in sorted(points):
            name = class_names[label] if label < len(class_names) else str(label)
            plt.scatter(*points[label], marker="dot", color=CLASS_COLORS[label % len(CLASS_COLORS)], label=name)
        if x and len(x[0]) > 2:
            plt.title(f"first 2 of {len(x[0])} features")

    @staticmethod
    def _plot_regression(plt: Any, x: list, y: list) -> None:
        # Windows (sine) plot their last value against the next one; a single feature plots x against y.
        xs = [row[-1] for row in x]
        ys = [v[0] if isinstance(v, list) else v for v in y]
        plt.scatter(xs, ys, marker="dot", color="cyan")
        plt.xlabel("x" if x and len(x[0]) == 1 else "x[-1]")
        plt.ylabel("y")
