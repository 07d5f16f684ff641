"""Shapes3D: one object in a walled room, over three hues, scale, shape and the camera's angle, 64x64 RGB.

``ProceduralShapes3D`` renders any of the 480,000 factor combinations on demand, in the official index
order. The scene was matched by eye and by pixel measurements to the published sample montage and
animation: a sky band (RGB 153, 226, 249) above a back wall in HSV(wall_hue, 1, 1), darker side walls
beyond the room's corners, a floor in HSV(floor_hue, 1, 1) lit from the left, and the object resting on
the floor in HSV(object_hue, 1, 1) with diffuse shading, a white highlight and a dark shadow to the lower
right. Orientation orbits the camera (and the lights, which move with it) around the object, so the
room's corners sweep across the image and the cube shows its sides.

Only scale, shape and orientation (8 x 4 x 15 = 480 combinations) change the geometry. Each geometry is
ray-cast once (3x3 samples a pixel, for anti-aliased edges) into per-pixel weights of the three hue
colours plus a constant colour (sky and highlight); those tables are cached, so an image is just
``weights @ hue colours + constant``, which makes rendering a batch a gather and a few multiply-adds.
"""

from __future__ import annotations

import threading

import numpy as np

from collapse_tui.data.base import ProceduralDataset
from collapse_tui.data.grid import SHAPES3D

# Bump whenever the pixels a factor combination renders to change: models cached on the data fingerprint
# are then trained afresh instead of being reused for different images.
RENDERER_VERSION = 1

SHAPES = ("cube", "cylinder", "sphere", "capsule")
FACTOR_NAMES, FACTOR_SIZES, FACTOR_VALUES = SHAPES3D.factor_names, SHAPES3D.factor_sizes, SHAPES3D.factor_values

SKY_RGB = np.array([153.0, 226.0, 249.0])

_SIZE = 64
_SUPERSAMPLE = 3
# Camera: focal length in pixels, the row of the eye level (the principal point sits below the image
# centre, so the camera looks level while the floor fills the lower third), its distance from the
# object's axis and its height. Lengths are in units of the scale-1 cube's side.
_FOCAL = 64.0
_EYE_ROW = 37.5
_CAM_DIST = 4.5
_CAM_HEIGHT = 1.03
# Room: the back wall faces the camera at orientation 0; side walls at +-_SIDE_X; walls _WALL_HEIGHT tall,
# open to the sky above.
_BACK_Z = -17.5
_SIDE_X = 14.0
_WALL_HEIGHT = 8.2
# Object sizes, in units of the cube's side (which is scale / 0.75: the smallest cube is the unit).
_SPHERE_RADIUS = 0.6
_CAPSULE_RADIUS = 0.48
_CAPSULE_BODY = 0.92  # the straight part between the hemispheres
# Lights, in the camera's frame (right, up, away from the camera), relative to the object's foot.
_SHADOW_LIGHT = np.array([-1.1, 9.0, 1.6])
# The floor's light is placed relative to the camera's foot (fitted to the published floor shading).
_FLOOR_LIGHT = np.array([-7.0, 9.0, 4.0])
_OBJECT_LIGHT_DIR = np.array([-0.45, 0.55, -1.0])
_SHADOW_FACTOR = 0.3


def hsv_to_rgb(hue: np.ndarray) -> np.ndarray:
    """RGB in [0, 255], float64 (..., 3), of fully saturated, full-value hues in [0, 1) (...)."""
    h = (np.asarray(hue, dtype=np.float64) % 1.0) * 6.0
    # Each channel is a triangle wave over the hue circle, clipped to [0, 1].
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None]) % 6.0
    return 255.0 * (1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))


# ---------------------------------------------------------------------------------------------- geometry
def _hit_box(o, d, half, height):
    lo = np.array([-half, 0.0, -half])
    hi = np.array([half, height, half])
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (lo - o) * inv
        t2 = (hi - o) * inv
    tmin = np.minimum(t1, t2)
    tmax = np.maximum(t1, t2)
    tmin = np.where(np.isnan(tmin), -np.inf, tmin)
    tmax = np.where(np.isnan(tmax), np.inf, tmax)
    t_in = tmin.max(axis=1)
    t_out = tmax.min(axis=1)
    hit = (t_in <= t_out) & (t_in > 1e-6)
    axis = tmin.argmax(axis=1)
    normal = np.zeros_like(o)
    rows = np.arange(o.shape[0])
    normal[rows, axis] = -np.sign(d[rows, axis])
    return np.where(hit, t_in, np.inf), normal


def _hit_sphere(o, d, centre, r):
    oc = o - centre
    b = np.einsum("ij,ij->i", oc, d)
    c = np.einsum("ij,ij->i", oc, oc) - r * r
    a = np.einsum("ij,ij->i", d, d)
    disc = b * b - a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > 1e-6), t, np.inf)


def _hit_vertical_tube(o, d, r, y0, y1):
    """Side of the open cylinder x^2 + z^2 = r^2, y0 <= y <= y1 (outside hits only)."""
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - r * r
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / a
    y = o[:, 1] + t * d[:, 1]
    ok = (disc >= 0) & (a > 1e-12) & (t > 1e-6) & (y >= y0) & (y <= y1)
    return np.where(ok, t, np.inf)


def _hit_object(shape: int, scale: float, o: np.ndarray, d: np.ndarray):
    """Distance along each ray (inf where it misses) to the object and the surface normal there."""
    r = 0.5 * scale
    if shape == 0:
        return _hit_box(o, d, r, scale)
    if shape == 1:
        t_side = _hit_vertical_tube(o, d, r, 0.0, scale)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_cap = (scale - o[:, 1]) / d[:, 1]
            p = o + t_cap[:, None] * d
        t_cap = np.where((t_cap > 1e-6) & (p[:, 0] ** 2 + p[:, 2] ** 2 <= r * r), t_cap, np.inf)
        t = np.minimum(t_side, t_cap)
        p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
        normal = np.stack([p[:, 0], np.zeros_like(t), p[:, 2]], axis=1) / r
        normal[t_cap <= t_side] = (0.0, 1.0, 0.0)
        return t, normal
    if shape == 2:
        r = _SPHERE_RADIUS * scale
        centre = np.array([0.0, r, 0.0])
        t = _hit_sphere(o, d, centre, r)
        p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
        return t, (p - centre) / r
    r = _CAPSULE_RADIUS * scale
    y0, y1 = r, r + _CAPSULE_BODY * scale
    t = np.minimum.reduce([
        _hit_vertical_tube(o, d, r, y0, y1),
        _hit_sphere(o, d, np.array([0.0, y0, 0.0]), r),
        _hit_sphere(o, d, np.array([0.0, y1, 0.0]), r),
    ])
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    axis_point = np.zeros_like(p)
    axis_point[:, 1] = np.clip(p[:, 1], y0, y1)
    return t, (p - axis_point) / r


def _geometry_tables(scale_idx: int, shape: int, orient_idx: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray-casts one geometry: per pixel, the weights (H*W, 3) of the wall, floor and object colours and
    a constant RGB (H*W, 3) (sky and highlight), both float32, averaged over the pixel's samples."""
    scale = float(FACTOR_VALUES[3][scale_idx]) / float(FACTOR_VALUES[3][0])
    phi = np.deg2rad(FACTOR_VALUES[5][orient_idx])
    # The camera orbits the object's axis; right/up/forward are its frame in world coordinates.
    forward = np.array([-np.sin(phi), 0.0, -np.cos(phi)])
    right = np.array([np.cos(phi), 0.0, -np.sin(phi)])
    up = np.array([0.0, 1.0, 0.0])
    cam = np.array([0.0, _CAM_HEIGHT, 0.0]) - _CAM_DIST * forward

    s = _SUPERSAMPLE
    offsets = (np.arange(s) + 0.5) / s
    coords = np.arange(_SIZE)[:, None] + offsets[None, :]  # (64, s) sub-pixel positions
    v = coords.reshape(-1)  # rows, sample-major within a pixel
    u = coords.reshape(-1)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    x = (uu - _SIZE / 2) / _FOCAL
    y = -(vv - _EYE_ROW) / _FOCAL
    d = x.reshape(-1, 1) * right + y.reshape(-1, 1) * up + forward
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    n = d.shape[0]
    o = np.broadcast_to(cam, (n, 3))

    weights = np.zeros((n, 3))
    const = np.zeros((n, 3))

    # The room: nearest of floor and the three walls the camera can face; above the walls, sky.
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[:, 1] < 0, -cam[1] / d[:, 1], np.inf)
        t_back = np.where(d[:, 2] < 0, (_BACK_Z - cam[2]) / d[:, 2], np.inf)
        t_left = np.where(d[:, 0] < 0, (-_SIDE_X - cam[0]) / d[:, 0], np.inf)
        t_right = np.where(d[:, 0] > 0, (_SIDE_X - cam[0]) / d[:, 0], np.inf)
    t_wall = np.minimum.reduce([t_back, t_left, t_right])
    wall_y = cam[1] + np.where(np.isfinite(t_wall), t_wall, 0.0) * d[:, 1]
    t_obj, n_obj = _hit_object(shape, scale, o, d)

    is_obj = t_obj < np.minimum(t_floor, t_wall)
    is_floor = ~is_obj & (t_floor <= t_wall)
    is_wall = ~is_obj & ~is_floor & (wall_y <= _WALL_HEIGHT)
    is_sky = ~(is_obj | is_floor | is_wall)
    const[is_sky] = SKY_RGB / 255.0

    # Walls: lit from the room's open front, so the back wall is at full colour and the side walls
    # darken towards the back corners.
    on_back = t_back <= np.minimum(t_left, t_right)
    wall_z = cam[2] + np.where(np.isfinite(t_wall), t_wall, 0.0) * d[:, 2]
    side_shade = 0.55 + 0.3 * np.clip((wall_z - _BACK_Z) / -_BACK_Z, 0.0, 1.0)
    weights[is_wall, 0] = np.where(on_back, 1.05, side_shade)[is_wall]

    # Floor: a light to the camera's left and above; the object shadows a light above and behind it.
    p_floor = cam + np.where(np.isfinite(t_floor), t_floor, 0.0)[:, None] * d
    lamp = cam * [1.0, 0.0, 1.0] + _FLOOR_LIGHT[0] * right + _FLOOR_LIGHT[1] * up + _FLOOR_LIGHT[2] * forward
    to_lamp = lamp - p_floor
    dist = np.linalg.norm(to_lamp, axis=1)
    floor_shade = np.clip(0.25 + 0.91 * to_lamp[:, 1] / dist, 0.0, 1.0)
    sun = _SHADOW_LIGHT[0] * right + _SHADOW_LIGHT[1] * up + _SHADOW_LIGHT[2] * forward
    fl = np.flatnonzero(is_floor)
    shadow_dir = sun - p_floor[fl]
    t_shadow, _ = _hit_object(shape, scale, p_floor[fl] + 1e-4 * up, shadow_dir)
    shaded = np.where(np.isfinite(t_shadow) & (t_shadow < 1.0), _SHADOW_FACTOR, 1.0)
    weights[fl, 1] = floor_shade[fl] * shaded

    # Object: diffuse light from the camera's upper left plus a white highlight.
    ob = np.flatnonzero(is_obj)
    light = _OBJECT_LIGHT_DIR[0] * right + _OBJECT_LIGHT_DIR[1] * up + _OBJECT_LIGHT_DIR[2] * forward
    light /= np.linalg.norm(light)
    normal = n_obj[ob]
    lambert = np.clip(normal @ light, 0.0, None)
    weights[ob, 2] = 0.5 + 0.6 * lambert
    half_vec = light - d[ob]
    half_vec /= np.linalg.norm(half_vec, axis=1, keepdims=True)
    spec = 0.35 * np.clip(np.einsum("ij,ij->i", normal, half_vec), 0.0, None) ** 24
    const[ob] += spec[:, None]

    def pool(a):  # (64*s * 64*s, 3) -> (64*64, 3), averaging each pixel's s x s samples
        return a.reshape(_SIZE, s, _SIZE, s, 3).mean(axis=(1, 3)).reshape(_SIZE * _SIZE, 3)

    return pool(weights).astype(np.float32), (255.0 * pool(const)).astype(np.float32)


_N_GEOM = FACTOR_SIZES[3] * FACTOR_SIZES[4] * FACTOR_SIZES[5]
_WEIGHTS = np.zeros((_N_GEOM, _SIZE * _SIZE, 3), dtype=np.float32)
_CONST = np.zeros((_N_GEOM, _SIZE * _SIZE, 3), dtype=np.float32)
_READY = np.zeros(_N_GEOM, dtype=bool)
_LOCK = threading.Lock()


def _ensure_geometries(geom: np.ndarray) -> None:
    missing = np.unique(geom[~_READY[geom]])
    if missing.size == 0:
        return
    with _LOCK:
        for g in missing:
            if _READY[g]:
                continue
            rest, orient = divmod(int(g), FACTOR_SIZES[5])
            scale_idx, shape = divmod(rest, FACTOR_SIZES[4])
            _WEIGHTS[g], _CONST[g] = _geometry_tables(scale_idx, shape, orient)
            _READY[g] = True


def render(factors: np.ndarray) -> np.ndarray:
    """uint8 RGB images (n, 64, 64, 3) for factor classes (n, 6): floor_hue, wall_hue, object_hue,
    scale, shape, orientation. Classes are trusted here (``ProceduralShapes3D`` validates them)."""
    f = np.asarray(factors, dtype=np.int64)
    n = f.shape[0]
    geom = (f[:, 3] * FACTOR_SIZES[4] + f[:, 4]) * FACTOR_SIZES[5] + f[:, 5]
    _ensure_geometries(geom)
    hues = np.stack([FACTOR_VALUES[1][f[:, 1]], FACTOR_VALUES[0][f[:, 0]], FACTOR_VALUES[2][f[:, 2]]], axis=1)
    colours = hsv_to_rgb(hues).astype(np.float32)  # (n, 3 surfaces: wall, floor, object, 3 RGB)
    out = np.empty((n, _SIZE * _SIZE, 3), dtype=np.uint8)
    # Chunks keep the float intermediates in cache-sized pieces.
    step = 256
    for start in range(0, n, step):
        sl = slice(start, min(start + step, n))
        w = _WEIGHTS[geom[sl]]
        img = _CONST[geom[sl]]
        c = colours[sl]
        for k in range(3):
            img += w[:, :, k:k + 1] * c[:, None, k, :]
        np.clip(img, 0.0, 255.0, out=img)
        out[sl] = (img + 0.5).astype(np.uint8)
    return out.reshape(n, _SIZE, _SIZE, 3)


class ProceduralShapes3D(ProceduralDataset):
    """Shapes3D rendered on demand for any of its 480,000 factor combinations."""

    grid, renderer_version, render = SHAPES3D, RENDERER_VERSION, staticmethod(render)
    renderer_note = "ray-cast renderer (matched to the published samples), not the official 3dshapes.h5"
