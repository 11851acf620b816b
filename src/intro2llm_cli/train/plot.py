"""Loss curves without a plotting library: a text plot for the terminal and a small PNG.

The PNG is drawn pixel by pixel (lines, axes, a 3×5 digit font for the tick labels)
and written with zlib, so a run needs no matplotlib. Blue: training loss per logged
step; orange: evaluation loss.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import Any

TRAIN_RGB = (31, 119, 180)
EVAL_RGB = (255, 127, 14)
AXIS_RGB = (60, 60, 60)
GRID_RGB = (225, 225, 225)

# 3×5 glyphs, rows top to bottom, 3 bits per row (4 = left pixel).
_GLYPHS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "-": (0, 0, 7, 0, 0),
    "k": (4, 5, 6, 5, 5), "e": (7, 5, 7, 4, 7),
}


def _series(history: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    return [(float(m["step"]), float(m[key])) for m in history
            if key in m and m[key] is not None and math.isfinite(float(m[key]))]


def _tick(value: float, integer: bool = False) -> str:
    if abs(value) >= 10000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}" if integer or abs(value) >= 10 else f"{value:.2f}"


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, rgb: tuple[int, int, int], size: int = 1) -> None:
        for dx in range(size):
            for dy in range(size):
                px, py = x + dx, y + dy
                if 0 <= px < self.width and 0 <= py < self.height:
                    i = (py * self.width + px) * 3
                    self.pixels[i: i + 3] = bytes(rgb)

    def line(self, x0: float, y0: float, x1: float, y1: float, rgb: tuple[int, int, int], size: int = 2) -> None:
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        for i in range(steps + 1):
            t = i / steps
            self.dot(round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t), rgb, size)

    def text(self, x: int, y: int, text: str, rgb: tuple[int, int, int] = AXIS_RGB, scale: int = 2) -> None:
        for char in text:
            for row, bits in enumerate(_GLYPHS.get(char, (0, 0, 0, 0, 0))):
                for col in range(3):
                    if bits & (4 >> col):
                        self.dot(x + col * scale, y + row * scale, rgb, scale)
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.pixels[y * self.width * 3: (y + 1) * self.width * 3])
                       for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def write_loss_png(history: list[dict[str, Any]], path: Path, width: int = 640, height: int = 360) -> Path | None:
    """Draw the training (blue) and evaluation (orange) loss against the step; None when nothing was logged."""
    train, evals = _series(history, "loss"), _series(history, "eval_loss")
    points = train + evals
    if not points:
        return None
    left, right, top, bottom = 60, width - 20, 20, height - 40
    x_lo, x_hi = 0.0, max(p[0] for p in points) or 1.0
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    if y_hi - y_lo < 1e-9:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * (right - left)

    def sy(y: float) -> float:
        return bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top)

    canvas = _Canvas(width, height)
    for i in range(5):
        y_value = y_lo + (y_hi - y_lo) * i / 4
        canvas.line(left, sy(y_value), right, sy(y_value), GRID_RGB, 1)
        canvas.text(6, round(sy(y_value)) - 5, _tick(y_value))
        x_value = x_lo + (x_hi - x_lo) * i / 4
        canvas.text(round(sx(x_value)) - 8, bottom + 10, _tick(x_value, integer=True))
    canvas.line(left, top, left, bottom, AXIS_RGB, 1)
    canvas.line(left, bottom, right, bottom, AXIS_RGB, 1)
    for series, rgb in ((train, TRAIN_RGB), (evals, EVAL_RGB)):
        for (xa, ya), (xb, yb) in zip(series, series[1:], strict=False):
            canvas.line(sx(xa), sy(ya), sx(xb), sy(yb), rgb)
        for x, y in series:
            canvas.dot(round(sx(x)) - 2, round(sy(y)) - 2, rgb, 4 if rgb == EVAL_RGB else 2)
    path.write_bytes(canvas.png())
    return path


def text_plot(history: list[dict[str, Any]], width: int = 60, height: int = 12) -> list[str]:
    """The training loss as rows of text ('•' train, 'o' eval), with the y range on the left."""
    train, evals = _series(history, "loss"), _series(history, "eval_loss")
    points = train + evals
    if not points:
        return []
    x_hi = max(p[0] for p in points) or 1.0
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    span = (y_hi - y_lo) or 1.0
    grid = [[" "] * width for _ in range(height)]
    for series, mark in ((train, "•"), (evals, "o")):
        for x, y in series:
            col = min(width - 1, round(x / x_hi * (width - 1)))
            row = min(height - 1, round((y_hi - y) / span * (height - 1)))
            grid[row][col] = mark
    rows = []
    for i, cells in enumerate(grid):
        label = f"{y_hi:7.3f} ┤" if i == 0 else (f"{y_lo:7.3f} ┤" if i == height - 1 else "        │")
        rows.append(label + "".join(cells))
    rows.append("        └" + "─" * width)
    rows.append(f"         0{'step ' + str(int(x_hi)):>{width - 1}}")
    return rows
