"""How fast images come from each source: official-layout files and the render cache.

Builds a full-size dSprites file in both official formats (hdf5 and npz) from procedural renders in a
temporary directory, then times opening each (labels read and checked, sha256) and fetching the images
of a run (``--n`` random indices); then times Shapes3D rendered afresh against read back from the
render cache. Prints one line per measurement.

    python benchmarks/read_datasets.py [--n 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from collapse_tui.data import get_dataset, open_dataset
from collapse_tui.data.files import open_official


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="images a run fetches")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="collapse-tui-bench-"))

    grid = get_dataset("dsprites")
    n = len(grid)
    everything = np.arange(n)
    imgs, t_render = timed(lambda: grid.images(everything, batch_size=32768)[..., 0])
    factors = grid.index_to_factors(everything)
    classes = np.concatenate([np.zeros((n, 1), np.int64), factors], axis=1)
    values = np.concatenate([np.ones((n, 1)), grid.factor_value(factors)], axis=1)
    print(f"dsprites: rendered all {n:,} images in {t_render:.1f} s to build the files")
    h5_path = tmp / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
    with h5py.File(h5_path, "w") as h5:
        h5.create_dataset("imgs", data=imgs, chunks=(32, 64, 64), compression="gzip")
        h5.create_dataset("latents/classes", data=classes)
        h5.create_dataset("latents/values", data=values)
    npz_path = tmp / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    np.savez_compressed(npz_path, imgs=imgs, latents_classes=classes, latents_values=values)
    del imgs
    want = grid.sample_indices(args.n, 0)
    for path in (h5_path, npz_path):
        ds, t_open = timed(lambda: open_official("dsprites", path))
        got, t_read = timed(lambda: ds.images(want))
        assert np.array_equal(got, grid.images(want))
        print(f"dsprites {path.suffix[1:]:>5} ({path.stat().st_size / 1e6:.0f} MB): open {t_open:.2f} s, "
              f"{args.n:,} images {t_read:.2f} s ({args.n / t_read:,.0f} images/s)")

    cache_dir = tmp / "cache"
    want = get_dataset("shapes3d").sample_indices(args.n, 0)
    first, t_first = timed(lambda: open_dataset("shapes3d", "procedural", cache_dir=cache_dir).images(want))
    second, t_second = timed(lambda: open_dataset("shapes3d", "procedural", cache_dir=cache_dir).images(want))
    assert np.array_equal(first, second)
    size = sum(p.stat().st_size for p in cache_dir.rglob("*.h5"))
    print(f"shapes3d {args.n:,} images: rendered and cached {t_first:.1f} s, read back from the cache "
          f"{t_second:.2f} s ({t_first / t_second:.0f}x faster; cache {size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
