"""Factor grids as values: the factors that generate a dataset, and the official index order over them.

A ``FactorGrid`` is a fact about a dataset, not about where its images come from, so every source of a
dataset (the renderer, an official file, a tfds copy, the render cache) holds the same instance:
``DSPRITES`` or ``SHAPES3D``. Index ``i`` is the official storage order: factors in C order, the last one
fastest. Conversions check their input and refuse rather than wrap, truncate or round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def as_int64(values, what: str) -> np.ndarray:
    """``values`` as int64, refusing booleans, fractions and non-numbers instead of truncating them."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as err:  # ragged nested lists
        raise ValueError(f"{what} must be an array of integers: {err}") from None
    if arr.dtype == bool:
        raise ValueError(f"{what} must be integers, got booleans")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if arr.size == 0:
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        flat = arr.ravel()
        bad = ~np.isfinite(flat)
        bad[~bad] = np.mod(flat[~bad], 1) != 0
        if bad.any():
            raise ValueError(f"{what} must be whole numbers, got {flat[bad][0]}")
        # Beyond this float64 stops holding every integer and int64 would overflow.
        if np.abs(flat).max() >= 2.0**53:
            raise ValueError(f"{what} out of range, got {flat[np.argmax(np.abs(flat))]}")
        return arr.astype(np.int64)
    raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")


def _read_only(values: np.ndarray) -> np.ndarray:
    values.setflags(write=False)
    return values


# eq=False: a grid is compared by identity (there is one per dataset), and numpy arrays have no truth
# value for the field-by-field comparison a dataclass would generate.
@dataclass(frozen=True, eq=False)
class FactorGrid:
    """The full grid of discrete factors of a dataset, the shape of its images and their pixel scale."""

    #: Short identifier, e.g. "dsprites".
    name: str
    #: How people write its name, e.g. "dSprites".
    title: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    #: The real value of each class of each factor (``factor_values[j][c]``), float64, read-only.
    factor_values: tuple[np.ndarray, ...]
    #: (height, width, channels) of one image.
    image_shape: tuple[int, int, int]
    #: uint8 pixels times this are in [0, 1]: 1.0 for 0/1 images, 1/255 for 8-bit ones.
    input_scale: float
    #: How far the index moves per step of each factor (C order, last factor fastest), read-only.
    strides: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        # Every dataset and every caller shares these arrays: one writing into them must not move the grid.
        values = tuple(_read_only(np.array(v, dtype=np.float64)) for v in self.factor_values)
        if not len(self.factor_names) == len(self.factor_sizes) == len(values) or \
                [v.size for v in values] != list(self.factor_sizes):
            raise ValueError(f"{self.name}: factor names, sizes and values disagree")
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        strides = np.append(np.cumprod(sizes[:0:-1])[::-1], 1).astype(np.int64)
        # The dataclass is frozen: these fields are set once, here, past its __setattr__.
        object.__setattr__(self, "factor_values", values)
        object.__setattr__(self, "strides", _read_only(strides))

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def num_images(self) -> int:
        """The size of the full grid: one image per combination of factor classes."""
        return int(np.prod(self.factor_sizes, dtype=np.int64))

    # ------------------------------------------------------------------ index -> factors
    def check_indices(self, indices) -> np.ndarray:
        """``indices`` as a 1-D int64 array (a scalar is one index), each checked to lie on the grid."""
        idx = as_int64(indices, "indices")
        if idx.ndim == 0:
            idx = idx.reshape(1)
        if idx.ndim != 1:
            raise ValueError(f"indices must be a 1-D array of integers, got shape {idx.shape}")
        n = self.num_images
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise ValueError(f"indices must be in [0, {n - 1}] for {self.name}, got {bad}")
        return idx

    def index_to_factors(self, indices) -> np.ndarray:
        """Factor classes, int64 (n, K), of each index (n,)."""
        idx = self.check_indices(indices)
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return (idx[:, None] // self.strides[None, :]) % sizes[None, :]

    # ------------------------------------------------------------------ factors -> index
    def _first_off_grid(self, classes: np.ndarray) -> tuple[int, int] | None:
        """(row, factor) of the first class outside its factor's range, or None."""
        bad = (classes < 0) | (classes >= np.asarray(self.factor_sizes, dtype=np.int64)[None, :])
        return tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else None

    def check_factors(self, factors) -> np.ndarray:
        """``factors`` as int64 (n, K) (one row (K,) is taken as n = 1), each class checked to be on the grid."""
        f = as_int64(factors, "factors")
        if f.ndim == 1 and f.size == self.num_factors:
            f = f[None, :]
        if f.ndim != 2 or f.shape[1] != self.num_factors:
            raise ValueError(f"factors must have shape (n, {self.num_factors}) for {self.name} "
                             f"({', '.join(self.factor_names)}), got {f.shape}")
        off = self._first_off_grid(f)
        if off is not None:
            row, col = off
            raise ValueError(f"factor {self.factor_names[col]} must be in [0, {self.factor_sizes[col] - 1}], "
                             f"got {f[row, col]} (row {row})")
        return f

    def factors_to_index(self, factors) -> np.ndarray:
        """Index, int64 (n,), of each row of factor classes (n, K); one row (K,) is taken as n = 1."""
        return self.check_factors(factors) @ self.strides

    def factor_value(self, factors) -> np.ndarray:
        """The real values, float64 (n, K), of factor classes (n, K)."""
        f = self.check_factors(factors)
        return np.stack([self.factor_values[j][f[:, j]] for j in range(self.num_factors)], axis=1)

    # ------------------------------------------------------------------ labels read from storage
    def index_of_rows(self, classes) -> np.ndarray:
        """Grid index, int64 (n,), of each row of factor classes read from storage (int (n, K)). Raises
        ValueError naming the first row whose class is off the grid."""
        classes = np.asarray(classes)
        if classes.ndim != 2 or classes.shape[1] != self.num_factors:
            raise ValueError(f"factor classes must have shape (n, {self.num_factors}), got {classes.shape}")
        off = self._first_off_grid(classes)
        if off is not None:
            row, col = off
            raise ValueError(f"row {row}: {self.factor_names[col]} class {classes[row, col]} is outside "
                             f"[0, {self.factor_sizes[col] - 1}]")
        return classes.astype(np.int64) @ self.strides

    def classes_of_values(self, values) -> np.ndarray:
        """Factor classes (int64 (n, K)) of real factor values (n, K) that lie on the grid. Raises ValueError
        naming the first value that is on no grid point."""
        values = np.asarray(values, dtype=np.float64)
        out = np.empty(values.shape, dtype=np.int64)
        for j, points in enumerate(self.factor_values):
            # Half the smallest gap between grid points, shrunk: rounding in a file never reaches it, a wrong
            # value does. A factor of one value accepts only (nearly) that value.
            tol = 1e-6 if points.size < 2 else float(np.min(np.diff(np.sort(points)))) * 1e-3
            nearest = np.abs(values[:, j, None] - points[None, :]).argmin(axis=1)
            off = np.abs(values[:, j] - points[nearest]) > tol
            if off.any():
                row = int(np.flatnonzero(off)[0])
                raise ValueError(f"row {row}: {self.factor_names[j]} value {float(values[row, j]):g} is not on "
                                 f"its grid ({', '.join(f'{v:g}' for v in points[:4])}"
                                 f"{', ...' if points.size > 4 else ''})")
            out[:, j] = nearest
        return out


# dSprites has six factors in its files, colour first; colour has a single value, so dropping it, as
# disentanglement_lib does, leaves the official index unchanged.
DSPRITES = FactorGrid(
    name="dsprites",
    title="dSprites",
    factor_names=("shape", "scale", "orientation", "pos_x", "pos_y"),
    factor_sizes=(3, 6, 40, 32, 32),
    factor_values=(
        np.array([1.0, 2.0, 3.0]),  # the official files label the shapes 1, 2, 3
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, 2 * np.pi, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    ),
    image_shape=(64, 64, 1),
    input_scale=1.0,  # pixels are 0/1, as in the official file
)

SHAPES3D = FactorGrid(
    name="shapes3d",
    title="Shapes3D",
    factor_names=("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
    factor_sizes=(10, 10, 10, 8, 4, 15),
    factor_values=(
        np.linspace(0.0, 0.9, 10),
        np.linspace(0.0, 0.9, 10),
        np.linspace(0.0, 0.9, 10),
        np.linspace(0.75, 1.25, 8),
        np.arange(4, dtype=np.float64),
        np.linspace(-30.0, 30.0, 15),  # degrees
    ),
    image_shape=(64, 64, 3),
    input_scale=1.0 / 255.0,
)

#: Dataset name -> its grid.
GRIDS: dict[str, FactorGrid] = {grid.name: grid for grid in (DSPRITES, SHAPES3D)}
