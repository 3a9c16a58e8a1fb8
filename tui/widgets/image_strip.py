"""ImageStrip: a few sample images drawn in the terminal, two pixels per cell (▀ with fore- and background)."""

from __future__ import annotations

import os

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

SHADES = " ░▒▓█"  # NO_COLOR: one pixel per cell as a shade, darkest to brightest
GAP = 2


def _colour(pixel: list[float]) -> str:
    """rgb(...) of one pixel given as [grey] or [r, g, b] in 0..1."""
    r, g, b = (pixel * 3)[:3] if len(pixel) == 1 else pixel[:3]
    return f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})"


def render_image(image: list, plain: bool = False) -> list[Text]:
    """Lines of one [C][H][W] image: half blocks (2 rows per line) in colour, or shades when plain."""
    channels, height, width = len(image), len(image[0]), len(image[0][0])

    def pixel(r: int, c: int) -> list[float]:
        return [image[ch][r][c] for ch in range(channels)]

    if plain:
        return [Text("".join(SHADES[min(4, int(sum(pixel(r, c)) / channels * 5))] for c in range(width)))
                for r in range(height)]
    lines = []
    for r in range(0, height, 2):
        line = Text()
        for c in range(width):
            top = _colour(pixel(r, c))
            bottom = _colour(pixel(r + 1, c)) if r + 1 < height else "black"
            line.append("▀", Style.parse(f"{top} on {bottom}"))
        lines.append(line)
    return lines


class ImageStrip(Static):
    """Sample images side by side with their labels underneath; as many as fit the width."""

    DEFAULT_CSS = "ImageStrip { height: auto; display: none; }"

    def show_images(self, images: list, labels: list, class_names: list) -> None:
        self._images, self._labels, self._names = images, labels, class_names
        self.display = bool(images)
        self._render_strip()

    def on_resize(self, _event) -> None:
        if getattr(self, "_images", None):
            self._render_strip()

    def _render_strip(self) -> None:
        plain = "NO_COLOR" in os.environ
        drawn = [render_image(img, plain) for img in self._images]
        if not drawn:
            self.update("")
            return
        cell = len(drawn[0][0]) + GAP
        room = max(1, (self.size.width or 60) // cell)
        drawn, labels = drawn[:room], self._labels[:room]
        rows = max(len(d) for d in drawn)
        out = Text()
        for r in range(rows):
            for d in drawn:
                out.append_text(d[r] if r < len(d) else Text(" " * (cell - GAP)))
                out.append(" " * GAP)
            out.append("\n")
        for label in labels:
            name = self._names[label] if isinstance(label, int) and label < len(self._names) else str(label)
            out.append(name[: cell - 1].ljust(cell), style="dim")
        self.update(out)
