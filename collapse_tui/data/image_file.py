"""A labelled image set of the user's: the images a model of theirs (``sae.model``) is applied to, and the
ground-truth factors its SAE's neurons are scored against.

The file is an ``.npz`` holding ``images`` (N × H × W × C, uint8: pixel values 0..255, shown to the
model as floats in [0, 1]), ``factors`` (N × F non-negative integers, each factor's values 0..n-1) and,
optionally, ``factor_names`` (F strings, a Unicode array). It is read with the activations files' npz
reader (members streamed, pickles never read, every byte vouched for by the zip's CRC-32) and checked
whole on opening, so every refusal and every kind of damage is one ``DatasetFileError`` line naming the
file and the array. The images are then held in memory: image sets fed to a model fit there, and the
model's activations of them are what the SAE trains on, not the images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from collapse_tui.config.vocabulary import IMAGE_SUFFIXES, IMAGES
from collapse_tui.data.activation_formats import FACTOR_NAMES, FACTORS, NpzReader, damage_refused
from collapse_tui.data.activations import checked_factors, checked_names
from collapse_tui.data.base import DatasetFileError, ProgressFn
from collapse_tui.data.official import file_sha256

IMAGE_ARRAY = "images"

__all__ = ["IMAGE_ARRAY", "ImageFile", "open_images", "write_images"]


class ImageFile:
    """An opened, checked labelled image set: ``images`` (uint8, N × H × W × C), ``factors`` (int32,
    N × F) and ``factor_names``; identified by the sha256 of its bytes."""

    input_scale = 1.0 / 255.0  # uint8 pixels to [0, 1]

    def __init__(self, path: Path, images: np.ndarray, factors: np.ndarray, factor_names: tuple[str, ...],
                 sha256: str):
        self.path = path
        self._images = images
        self.factors = factors
        self.factor_names = factor_names
        self.sha256 = sha256
        self.n = int(images.shape[0])
        self.image_shape = tuple(int(s) for s in images.shape[1:])
        self.factors_num_values = [int(v) + 1 for v in factors.max(axis=0)]

    @property
    def description(self) -> str:
        h, w, c = self.image_shape
        names = ", ".join(f"{name} ({k})" for name, k in zip(self.factor_names, self.factors_num_values))
        return f"{self.n:,} images {h}×{w}×{c} from {self.path.name} (factors: {names}; sha256 {self.sha256[:12]})"

    def __repr__(self) -> str:
        return f"<ImageFile {self.description}>"

    def fingerprint(self) -> str:
        """The images' identity in run records and caches: the dataset's name and the file's sha256."""
        return f"{IMAGES}-{self.sha256[:16]}"

    def images(self, indices, progress: ProgressFn | None = None) -> np.ndarray:
        """The images at ``indices`` (rows of the file), as uint8."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise ValueError(f"indices must be a vector of integers, got shape {idx.shape} of {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise ValueError(f"indices must lie in 0..{self.n - 1} (the images of {self.path.name})")
        out = self._images[idx.astype(np.intp, copy=False)]  # an empty list is float64 to numpy
        if progress is not None:
            progress(len(idx), len(idx))
        return out


def _check_images(path: Path, shape: tuple, dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise DatasetFileError(path, f"{IMAGE_ARRAY} holds Python objects, which are never unpickled")
    if len(shape) != 4:
        raise DatasetFileError(path, f"{IMAGE_ARRAY} has shape {tuple(shape)}, expected 4 dimensions "
                                     "(images × height × width × channels)")
    if dtype != np.uint8:
        raise DatasetFileError(path, f"{IMAGE_ARRAY} has dtype {dtype}, expected uint8 (pixel values 0..255)")
    if shape[0] < 2:
        raise DatasetFileError(path, f"{IMAGE_ARRAY} has {shape[0]} image(s); at least 2 are needed")
    if min(shape[1:]) < 1:
        raise DatasetFileError(path, f"{IMAGE_ARRAY} has an empty image shape {tuple(shape[1:])}")


def _check_factors(path: Path, shape: tuple, dtype: np.dtype, n: int) -> None:
    if dtype.hasobject:
        raise DatasetFileError(path, f"{FACTORS} holds Python objects, which are never unpickled")
    if len(shape) != 2:
        raise DatasetFileError(path, f"{FACTORS} has shape {tuple(shape)}, expected 2 dimensions (images × factors)")
    if dtype.kind not in "iu":
        raise DatasetFileError(path, f"{FACTORS} has dtype {dtype}, expected integers")
    if shape[0] != n:
        raise DatasetFileError(path, f"{FACTORS} has {shape[0]} rows, {IMAGE_ARRAY} {n}")
    if shape[1] < 1:
        raise DatasetFileError(path, f"{FACTORS} has no columns; a labelled image set needs at least one factor")


def open_images(path: str | os.PathLike) -> ImageFile:
    """The labelled image set at ``path``, opened and checked whole. Raises DatasetFileError, one line
    naming the file and the array, for anything unusable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetFileError(path, f"no such file (expected {IMAGE_ARRAY} and {FACTORS} in an npz)")
    if not path.is_file():  # reading a pipe or a device would wait for ever
        raise DatasetFileError(path, f"not a regular file; expected {IMAGE_ARRAY} and {FACTORS} in an npz")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DatasetFileError(path, f"unknown extension {path.suffix or '(none)'!r} for {IMAGE_ARRAY} and "
                                     f"{FACTORS}; expected {', '.join(IMAGE_SUFFIXES)}")
    reader = NpzReader(path)
    with damage_refused(path, "npz", reader, "reading"), reader:
        reader.reading = IMAGE_ARRAY
        reader.check_directory()
        shape, dtype = reader.member(IMAGE_ARRAY)
        _check_images(path, shape, dtype)
        reader.reading = FACTORS
        layout = reader.member(FACTORS)
        _check_factors(path, *layout, int(shape[0]))
        factors = checked_factors(path, reader.array(FACTORS))
        reader.reading = FACTOR_NAMES
        raw_names = reader.names()
        names = (checked_names(path, raw_names, factors.shape[1]) if raw_names is not None
                 else tuple(f"factor_{i}" for i in range(factors.shape[1])))
        reader.reading = IMAGE_ARRAY
        images = reader.array(IMAGE_ARRAY)
        reader.reading = None
    return ImageFile(path, images, factors, names, file_sha256(path))


def write_images(path: str | os.PathLike, images, factors, factor_names=None) -> Path:
    """Write a labelled image set ``open_images`` opens, refusing (before writing anything) what it would
    refuse; written whole to a temporary file and renamed, so an interrupted write leaves no half file."""
    path = Path(path).expanduser()
    images = np.asarray(images)
    factors = np.asarray(factors)
    _check_images(path, images.shape, images.dtype)
    _check_factors(path, factors.shape, factors.dtype, images.shape[0])
    factors = checked_factors(path, factors)
    names = None if factor_names is None else checked_names(path, list(factor_names), factors.shape[1])
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DatasetFileError(path, f"{IMAGE_ARRAY} and {FACTORS} are written as {', '.join(IMAGE_SUFFIXES)}")
    arrays = {IMAGE_ARRAY: np.ascontiguousarray(images), FACTORS: factors}
    if names is not None:
        arrays[FACTOR_NAMES] = np.array(names, dtype=str)
    temporary = path.with_name(path.name + ".partial")
    with open(temporary, "wb") as fh:  # a file object: np.savez adds no extension of its own
        np.savez(fh, **arrays)
    os.replace(temporary, path)
    return path
