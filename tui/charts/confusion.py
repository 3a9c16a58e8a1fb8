"""Text blocks for the prediction view where a plot does not fit the data: a confusion matrix, and held-out
images with the classes the model gave them."""

from __future__ import annotations

from rich.text import Text

from torchtui.tui.widgets.image_strip import render_image

RIGHT, WRONG, ZERO = "bold green", "bold red", "dim"
GAP = 2


def confusion_lines(matrix: list[list[int]], names: list[str], width: int, height: int) -> list[Text]:
    """Rows true, columns predicted, the diagonal in green and mistakes in red; when the matrix does not
    fit `width` x `height`, the most frequent mistakes as a list instead."""
    k = len(matrix)
    labels = [_name(names, i) for i in range(k)]
    biggest = max((v for row in matrix for v in row), default=0)
    cell = max(len(f"{biggest:,}"), min(4, max((len(n) for n in labels), default=1))) + 1
    side = min(10, max((len(n) for n in labels), default=1))
    if k and side + 1 + k * cell <= width and k + 2 <= height:
        return _matrix(matrix, labels, cell, side)
    return _mistakes(matrix, labels, width, height)


def _matrix(matrix, labels, cell: int, side: int) -> list[Text]:
    head = Text(" " * (side + 1), no_wrap=True)
    head.append("".join(n[: cell - 1].rjust(cell) for n in labels), style="dim")
    lines = [Text("true ↓  predicted →", style="dim"), head]
    for i, row in enumerate(matrix):
        line = Text(labels[i][:side].rjust(side) + " ", style="dim", no_wrap=True)
        for j, count in enumerate(row):
            style = ZERO if not count else RIGHT if i == j else WRONG
            line.append((f"{count:,}" if count else "·").rjust(cell), style=style)
        lines.append(line)
    return lines


def _mistakes(matrix, labels, width: int, height: int) -> list[Text]:
    """"accuracy 0.97 (349 of 359)" and the commonest mistakes, "3→8 ×4", as many as fit."""
    total = sum(map(sum, matrix))
    right = sum(matrix[i][i] for i in range(len(matrix)))
    lines = [Text(f"accuracy {right / total:.3g} ({right:,} of {total:,})" if total else "no samples")]
    mistakes = sorted(((count, i, j) for i, row in enumerate(matrix) for j, count in enumerate(row)
                       if i != j and count), reverse=True)
    if not mistakes:
        return lines
    lines.append(Text("commonest mistakes (true→predicted):", style="dim"))
    line = Text(no_wrap=True)
    for count, i, j in mistakes:
        item = f"{labels[i]}→{labels[j]} ×{count:,}"
        if len(line) and len(line) + GAP + len(item) > width:
            if len(lines) + 1 >= height:
                break
            lines.append(line)
            line = Text(no_wrap=True)
        line.append(" " * GAP * bool(len(line)))
        line.append(item, style=WRONG)
    if len(line):
        lines.append(line)
    return lines


def image_lines(images: list, predicted: list, true: list, names: list[str], width: int, height: int,
                plain: bool = False) -> list[Text]:
    """As many of the images as fit side by side, each with its predicted class under it: green when
    right, red with the true class ("3≠5") when wrong."""
    drawn = [render_image(img, plain) for img in images]
    if not drawn or width <= 0:
        return []
    rows = max(len(d) for d in drawn)
    if rows + 2 > height:
        return []
    cell = max(len(drawn[0][0]), 4) + GAP
    room = max(0, width // cell)
    drawn = drawn[:room]
    if not drawn:
        return []
    lines = [Text("predicted (≠ true)", style="dim")]
    for r in range(rows):
        line = Text(no_wrap=True)
        for d in drawn:
            line.append_text(d[r] if r < len(d) else Text(" " * (cell - GAP)))
            line.append(" " * (cell - len(d[0])))
        lines.append(line)
    labels = Text(no_wrap=True)
    for p, t in zip(predicted[: len(drawn)], true[: len(drawn)]):
        text = _name(names, p) if p == t else f"{_name(names, p)}≠{_name(names, t)}"
        labels.append(text[: cell - 1].ljust(cell), style=RIGHT if p == t else WRONG)
    lines.append(labels)
    return lines


def side_by_side(left: list[Text], right: list[Text], width: int) -> list[Text]:
    """Two blocks next to each other (left padded to its widest line), or one under the other."""
    if not right:
        return left
    if not left:
        return right
    left_width = max(len(line) for line in left)
    if left_width + 4 + max(len(line) for line in right) > width:
        return left + [Text("")] + right
    out = []
    for i in range(max(len(left), len(right))):
        line = left[i].copy() if i < len(left) else Text()
        line.append(" " * (left_width + 4 - len(line)))
        if i < len(right):
            line.append_text(right[i])
        out.append(line)
    return out


def _name(names: list[str], k) -> str:
    return str(names[k]) if isinstance(k, int) and 0 <= k < len(names) else str(k)
