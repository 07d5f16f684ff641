"""Images drawn in any terminal with half-block characters: each cell is "▀" with the upper pixel as its
foreground colour and the lower one as its background, so a cell holds two pixels, one above the other."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text


def downsample(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (H, W, C) as ``size`` x ``size`` pixels in [0, 1], each the mean of its block (a block
    of an image with H or W not divisible by ``size`` takes the rows and columns its share rounds to).
    The image is scaled to its own range first: dSprites' pixels are 0 and 1, Shapes3D's 0..255."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[:, :, None]
    lo, hi = img.min(), img.max()
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    h, w = img.shape[:2]
    rows = np.linspace(0, h, size + 1).round().astype(int)
    cols = np.linspace(0, w, size + 1).round().astype(int)
    out = np.zeros((size, size, img.shape[2]))
    for r in range(size):
        for c in range(size):
            block = img[rows[r]:max(rows[r + 1], rows[r] + 1), cols[c]:max(cols[c + 1], cols[c] + 1)]
            out[r, c] = block.reshape(-1, img.shape[2]).mean(axis=0)
    return out


def _color(pixel: np.ndarray) -> Color:
    rgb = np.clip(np.round(np.asarray(pixel) * 255), 0, 255).astype(int)
    if rgb.size == 1:
        rgb = np.repeat(rgb, 3)
    return Color.from_rgb(int(rgb[0]), int(rgb[1]), int(rgb[2]))


def render_images(images: Sequence[np.ndarray], size: int = 16, gap: int = 1) -> Text:
    """``images`` side by side, each ``size`` pixels square (``size`` columns, ``size / 2`` lines),
    ``gap`` columns apart."""
    text = Text(no_wrap=True, overflow="crop")
    small = [downsample(img, size) for img in images]
    for line in range(0, size, 2):
        for k, img in enumerate(small):
            if k:
                text.append(" " * gap)
            for c in range(size):
                upper = img[line, c]
                lower = img[line + 1, c] if line + 1 < size else upper
                text.append("▀", style=Style(color=_color(upper), bgcolor=_color(lower)))
        text.append("\n")
    return text
