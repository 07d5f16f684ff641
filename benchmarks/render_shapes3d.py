"""Times the procedural Shapes3D renderer and writes a montage of its images.

    python benchmarks/render_shapes3d.py [--n 20000] [--out docs/shapes3d_procedural_montage.png]

The montage (4x4 renders at 4x, the factor combinations of the published sample montage's layout: an
orientation sweep, the shapes, scales, then object, wall and floor hues) is written with a small
zlib PNG writer, so no imaging library is needed.
"""

from __future__ import annotations

import argparse
import struct
import time
import zlib

import numpy as np

from collapse_tui.data.shapes3d import ProceduralShapes3D, render

# Rows of (floor_hue, wall_hue, object_hue, scale, shape, orientation), following the published montage.
MONTAGE_FACTORS = np.array([
    [0, 6, 3, 0, 0, 0], [0, 6, 3, 0, 0, 2], [0, 6, 3, 0, 0, 5], [0, 6, 3, 0, 0, 7],
    [0, 6, 3, 0, 0, 12], [0, 6, 3, 0, 1, 14], [0, 6, 3, 0, 3, 14], [0, 6, 3, 3, 3, 14],
    [0, 6, 3, 7, 3, 14], [0, 6, 6, 7, 3, 14], [0, 6, 9, 7, 3, 14], [0, 6, 2, 7, 3, 14],
    [0, 9, 2, 7, 3, 14], [0, 5, 2, 7, 3, 14], [3, 5, 2, 7, 3, 14], [0, 4, 2, 7, 3, 14],
])


def write_png(path: str, rgb: np.ndarray) -> None:
    """Writes a uint8 (H, W, 3) array as an 8-bit RGB PNG."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def montage(images: np.ndarray, cols: int = 4, zoom: int = 4, gap: int = 2) -> np.ndarray:
    n, h, w, _ = images.shape
    rows = -(-n // cols)
    big = np.repeat(np.repeat(images, zoom, axis=1), zoom, axis=2)
    out = np.full((rows * (h * zoom + gap) + gap, cols * (w * zoom + gap) + gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = gap + r * (h * zoom + gap), gap + c * (w * zoom + gap)
        out[y:y + h * zoom, x:x + w * zoom] = big[i]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="random images to time")
    parser.add_argument("--out", default="docs/shapes3d_procedural_montage.png", help="montage PNG path")
    args = parser.parse_args()
    data = ProceduralShapes3D()
    idx = data.sample_indices(args.n, random_state=0)
    start = time.perf_counter()
    data.images(np.arange(480))  # the first 480 indices cover every geometry: builds their tables once
    print(f"geometry tables (all 480): {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    data.images(idx)
    elapsed = time.perf_counter() - start
    print(f"{args.n} random images in {elapsed:.2f} s: {args.n / elapsed:,.0f} images/s")
    write_png(args.out, montage(render(MONTAGE_FACTORS)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
