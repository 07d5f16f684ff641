"""dSprites: 2D shapes (square, ellipse, heart) over scale, rotation and position, 64x64 binary.

``ProceduralDSprites`` renders any of the 737,280 factor combinations on demand, in the official index
order, for exactly the indices asked for. The geometry was fitted to the 320 frames of the official
demo animation, whose factors can be read off its latent traversals: with the constants below the
renders differ from those frames by 0.1 px per image on average for the square, 0.3 px for the
ellipse and 4 px (of about 220) for the heart. Sprite centre 64·(0.25 + 0.5·pos) pixels (posX = 0 at
the left edge, posY = 0 at the top row), binary pixels sampled at pixel centres, no anti-aliasing.
"""

from __future__ import annotations

import numpy as np

from collapse_tui.data.base import ProceduralDataset
from collapse_tui.data.grid import DSPRITES

# Bump whenever the pixels a factor combination renders to change: models cached on the data fingerprint
# are then trained afresh instead of being reused for different images.
RENDERER_VERSION = 2

SHAPES = ("square", "ellipse", "heart")
FACTOR_NAMES, FACTOR_SIZES, FACTOR_VALUES = DSPRITES.factor_names, DSPRITES.factor_sizes, DSPRITES.factor_values

_SIZE = 64
_N_ORIENT = FACTOR_SIZES[2]

# Shapes at scale 1, in pixels, in the sprite's frame: u to the right, v up, origin at the sprite centre.
# The official sprites are a little smaller than their nominal sizes: these fit their pixels exactly.
_SQUARE_HALF = 9.6            # side 19.2: 20 px upright, but 368 px (not 400) once rotated
_ELLIPSE_A, _ELLIPSE_B = 12.75, 7.225  # 26 x 14 px and 288 px at orientation 0
# Heart: a diamond (the lower point, a right angle) under two round lobes, with a narrow notch between
# the lobes; 20 px wide and 17 px tall at scale 1, point down.
_DIAMOND_HX, _DIAMOND_HY, _DIAMOND_Y = 7.8, 8.1, -0.5
_LOBE_X, _LOBE_Y, _LOBE_R = 4.29, 4.03, 5.33
_NOTCH_Y, _NOTCH_SLOPE = 5.3, 0.575  # the notch: |u| < slope·(v − y) above y

# Every sprite lies within 13.6 px of its centre (the rotated square's half-diagonal). A 32x32 window
# starting 16 px left of and above the centre's pixel covers at least 14.5 px on every side, and since
# centres lie in [16, 48] it never leaves the 64x64 image: only a quarter of the pixels are evaluated.
_WINDOW = 32
_HALF = _WINDOW // 2


def _inside(shape: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether sprite-frame points (u right, v up, in scale-1 pixels; arrays (n, H, W)) lie in each
    sample's shape (n,). Each shape's test is evaluated only on the samples of that shape."""
    inside = np.zeros(u.shape, dtype=bool)
    for kind in range(len(SHAPES)):
        sel = np.flatnonzero(shape == kind)
        if sel.size == 0:
            continue
        uk, vk = u[sel], v[sel]
        if kind == 0:
            inside[sel] = (np.abs(uk) <= _SQUARE_HALF) & (np.abs(vk) <= _SQUARE_HALF)
        elif kind == 1:
            inside[sel] = (uk / _ELLIPSE_A) ** 2 + (vk / _ELLIPSE_B) ** 2 <= 1.0
        else:
            au = np.abs(uk)  # the heart is mirror-symmetric about its vertical axis
            diamond = au / _DIAMOND_HX + np.abs(vk - _DIAMOND_Y) / _DIAMOND_HY <= 1.0
            lobes = (au - _LOBE_X) ** 2 + (vk - _LOBE_Y) ** 2 <= _LOBE_R**2
            notch = (vk > _NOTCH_Y) & (au < _NOTCH_SLOPE * (vk - _NOTCH_Y))
            inside[sel] = (diamond | lobes) & ~notch
    return inside


def render(factors: np.ndarray) -> np.ndarray:
    """Binary uint8 images (n, 64, 64, 1) for factor classes (n, 5): shape, scale, orientation, pos_x, pos_y.

    Classes are trusted here (``ProceduralDSprites`` validates them). Orientation turns the sprite
    counter-clockwise on screen as it grows, as the official demo animation shows; orientation 39 (2π)
    renders exactly as orientation 0.
    """
    f = np.asarray(factors, dtype=np.int64)
    n = f.shape[0]
    shape = f[:, 0]
    scale = FACTOR_VALUES[1][f[:, 1]]
    # Index 39 is 2π: taking it modulo 39 makes it exactly 0 (sin(2π) in floating point is -2.4e-16,
    # which could flip a pixel lying on an edge).
    theta = 2 * np.pi * (f[:, 2] % (_N_ORIENT - 1)) / (_N_ORIENT - 1)
    cx = _SIZE * (0.25 + 0.5 * FACTOR_VALUES[3][f[:, 3]])
    cy = _SIZE * (0.25 + 0.5 * FACTOR_VALUES[4][f[:, 4]])
    ox = np.floor(cx).astype(np.int64) - _HALF
    oy = np.floor(cy).astype(np.int64) - _HALF
    centres = np.arange(_WINDOW, dtype=np.float64) + 0.5  # pixel i covers [i, i + 1)
    inv_scale = (1.0 / scale)[:, None, None]
    right = ((ox - cx)[:, None, None] + centres[None, None, :]) * inv_scale  # (n, 1, W)
    up = -((oy - cy)[:, None, None] + centres[None, :, None]) * inv_scale    # (n, H, 1): rows grow down
    cos = np.cos(theta)[:, None, None]
    sin = np.sin(theta)[:, None, None]
    # Screen points turned back by -theta land in the frame of a sprite turned by +theta.
    u = cos * right + sin * up
    v = cos * up - sin * right
    mask = _inside(shape, u, v)
    out = np.zeros((n, _SIZE, _SIZE), dtype=np.uint8)
    rows = oy[:, None] + np.arange(_WINDOW)[None, :]
    cols = ox[:, None] + np.arange(_WINDOW)[None, :]
    out[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = mask
    return out[..., None]


class ProceduralDSprites(ProceduralDataset):
    """dSprites rendered on demand for any of its 737,280 factor combinations."""

    grid, renderer_version, render = DSPRITES, RENDERER_VERSION, staticmethod(render)
    renderer_note = "renderer (fitted to the official sprites), not the official files"
