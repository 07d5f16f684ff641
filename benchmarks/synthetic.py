"""Ground-truth factors and smooth features of them, for the benchmarks' synthetic SAE codes.

Factors are sampled from the dSprites or Shapes3D grid; each enters as a few sines of its normalised
value (continuous factors are ordinal), so codes built from the features carry the factors the way a
VAE's would.
"""

from __future__ import annotations

import numpy as np

GRIDS = {"dsprites": (3, 6, 40, 32, 32), "shapes3d": (10, 10, 10, 8, 4, 15)}


def factors_and_features(rng: np.random.Generator, samples: int, dataset: str, per_factor: int):
    """(factors: samples x n_factors ints, features: samples x n_factors * per_factor floats)."""
    sizes = GRIDS[dataset]
    factors = np.stack([rng.integers(0, v, samples) for v in sizes], axis=1)
    scaled = factors / np.maximum(np.array(sizes) - 1, 1)
    freqs = rng.uniform(0.5, 3.0, size=(len(sizes), per_factor))
    feats = np.concatenate([np.sin(np.pi * scaled[:, [j]] * freqs[j]) for j in range(len(sizes))], axis=1)
    return factors, feats
