"""Activations read from a user's file: any representation, N rows of D features, to train SAEs on.

A file holds ``activations`` (N × D, float16, float32 or float64) and, optionally, ``factors`` (N × F
non-negative integers, a ground-truth factor per column) and ``factor_names`` (F strings), in one of
four formats chosen by its extension:

* ``.npz``: the three as arrays (``factor_names`` a Unicode array); pickles are never read.
* ``.h5`` / ``.hdf5``: the three as HDF5 datasets (``factor_names`` as byte or str strings).
* ``.safetensors``: tensors ``activations`` and ``factors``; the names in the metadata under
  ``factor_names``, a JSON list of strings.
* ``.npy``: the activations alone, read a slab at a time, so a file larger than memory is never read whole.

Opening a file checks everything about it (shapes, dtypes, every value finite, factors and names
consistent) in one streamed pass, so a file that opens is good; every refusal and every kind of damage
is one ``DatasetFileError`` line naming the file and the array. Rows are then read on request, a block
at a time in storage order, as float32. ``write_activations`` writes the same layouts, refusing what
opening would refuse before writing anything; its HDF5 and npz files carry checksums (Fletcher-32, the
zip's CRC-32) that opening verifies, so a damaged byte in them is refused, never read as another number.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from collapse_tui.config.vocabulary import ACTIVATION_SUFFIXES
from collapse_tui.data.activation_formats import (ACTIVATIONS, FACTOR_NAMES, FACTORS, FORMATS, SUFFIX_FORMATS,
                                                   ActivationReader, damage_refused, slabs)
from collapse_tui.data.base import DatasetFileError, ProgressFn

__all__ = ["ACTIVATION_SUFFIXES", "ActivationFile", "open_activations", "write_activations"]

_FLOATS = {np.dtype(np.float16).itemsize, np.dtype(np.float32).itemsize, np.dtype(np.float64).itemsize}
_INT32_MAX = int(np.iinfo(np.int32).max)
_SCAN_ROWS = 65536  # rows checked for NaN at a time (fewer when rows are wide: see _scan_rows)
_SCAN_BYTES = 64 << 20
_HASH_BLOCK = 4 << 20


def _format_of(path: Path) -> str:
    # ACTIVATION_SUFFIXES and SUFFIX_FORMATS list the formats in the same order: the vocabulary names the
    # extensions, the readers their formats.
    by_suffix = dict(zip(ACTIVATION_SUFFIXES, SUFFIX_FORMATS, strict=True))
    fmt = by_suffix.get(path.suffix.lower())
    if fmt is None:
        raise DatasetFileError(path, f"unknown extension {path.suffix or '(none)'!r} for activations; "
                                     f"expected {', '.join(ACTIVATION_SUFFIXES)}")
    return fmt


# ------------------------------------------------------------------------------------------ checks
# Shared by reading and writing, so that a file write_activations writes is one open_activations opens.
def _check_activations(path, shape: tuple, dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise DatasetFileError(path, f"{ACTIVATIONS} holds Python objects, which are never unpickled")
    if len(shape) != 2:
        raise DatasetFileError(path, f"{ACTIVATIONS} has shape {tuple(shape)}, expected 2 dimensions (rows × features)")
    if dtype.kind != "f" or dtype.itemsize not in _FLOATS:
        raise DatasetFileError(path, f"{ACTIVATIONS} has dtype {dtype}, expected float16, float32 or float64")
    if shape[0] < 2:
        raise DatasetFileError(path, f"{ACTIVATIONS} has {shape[0]} row(s); at least 2 are needed")
    if shape[1] < 1:
        raise DatasetFileError(path, f"{ACTIVATIONS} has no columns; at least 1 is needed")


def _check_factors_layout(path, shape: tuple, dtype: np.dtype, n: int) -> None:
    if len(shape) != 2:
        raise DatasetFileError(path, f"{FACTORS} has shape {tuple(shape)}, expected 2 dimensions (rows × factors)")
    if dtype.kind not in "iu":
        raise DatasetFileError(path, f"{FACTORS} has dtype {dtype}, expected integers")
    if shape[0] != n:
        raise DatasetFileError(path, f"{FACTORS} has {shape[0]} rows, {ACTIVATIONS} {n}")
    if shape[1] < 1:
        raise DatasetFileError(path, f"{FACTORS} has no columns; leave it out for a file without factors")


def checked_factors(path, factors: np.ndarray) -> np.ndarray:
    """``factors`` (checked for layout) as int32, refusing negative values and values beyond int32."""
    negative = np.argwhere(factors < 0)
    if negative.size:
        row, col = negative[0]
        raise DatasetFileError(path, f"{FACTORS} has negative values (first at row {row}, factor {col}); "
                                     "each factor's values must be 0..n-1")
    top = int(factors.max())
    if top > _INT32_MAX:
        raise DatasetFileError(path, f"{FACTORS} has values up to {top:,}, beyond {_INT32_MAX:,}")
    return np.ascontiguousarray(factors, dtype=np.int32)


def checked_names(path, names, num_factors: int) -> tuple[str, ...]:
    """The factor names as a tuple of strings, one per factor, each printable and different."""
    names = list(names)
    if not all(isinstance(name, str) for name in names):
        odd = next(name for name in names if not isinstance(name, str))
        raise DatasetFileError(path, f"{FACTOR_NAMES} holds {type(odd).__name__} values, expected strings")
    if len(names) != num_factors:
        raise DatasetFileError(path, f"{FACTOR_NAMES} has {len(names)} names, {FACTORS} {num_factors} columns")
    for i, name in enumerate(names):
        if not name or not name.isprintable():
            raise DatasetFileError(path, f"{FACTOR_NAMES} has an empty or unprintable name at position {i}")
    repeated = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if repeated is not None:
        raise DatasetFileError(path, f"{FACTOR_NAMES} names {repeated!r} twice")
    return tuple(names)


def _scan_rows(dim: int, itemsize: int) -> int:
    return max(1, min(_SCAN_ROWS, _SCAN_BYTES // max(1, dim * itemsize)))


def _check_finite(path, blocks) -> None:
    """Refuse activations with a NaN or an infinity, from ``blocks`` (their rows in order, a block at a
    time), saying how many rows are bad and the first."""
    bad, first, start = 0, None, 0
    for block in blocks:
        rows_bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if rows_bad.size and first is None:
            first = start + int(rows_bad[0])
        bad += int(rows_bad.size)
        start += len(block)
    if bad:
        raise DatasetFileError(path, f"{ACTIVATIONS} has {bad:,} row(s) with NaN or infinite values "
                                     f"(the first is row {first})")


# -------------------------------------------------------------------------------------------- file
class ActivationFile:
    """An opened, checked activations file: its shape and dtype, its factors (read whole: they are
    small), and its rows read on request (``rows``)."""

    def __init__(self, path: Path, fmt: str, reader: ActivationReader, factors: np.ndarray | None,
                 factor_names: tuple[str, ...]):
        self.path = path
        self.format = fmt
        self._reader = reader
        self.n, self.dim = (int(s) for s in reader.shape)
        self.dtype: np.dtype = reader.dtype
        self.factors = factors
        self.factor_names = factor_names
        self.factors_num_values: list[int] = [] if factors is None else [int(v) + 1 for v in factors.max(axis=0)]
        st = path.stat()
        self._stamp = (st.st_size, st.st_mtime_ns)
        self._sha256: str | None = None

    @property
    def description(self) -> str:
        count = len(self.factor_names)
        held = (f"{count} factor{'s' if count != 1 else ''}: {', '.join(self.factor_names)}" if self.factors is not None
                else "no factors")
        return f"activations {self.n:,} × {self.dim:,} {self.dtype.name} from {self.path.name} ({held})"

    def __repr__(self) -> str:
        return f"<ActivationFile {self.description}>"

    def fingerprint(self) -> str:
        """The sha256 (hex) of the file's bytes, read in blocks once and remembered."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
                    digest.update(block)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def _check_indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.size == 0:
            return np.zeros(0, dtype=np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(f"{self.path.name}: row indices must be a 1-D array of integers, got "
                             f"shape {idx.shape} dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        outside = np.flatnonzero((idx < 0) | (idx >= self.n))
        if outside.size:
            raise ValueError(f"{self.path.name}: row index {idx[outside[0]]} is outside the {self.n:,} rows of "
                             f"its {ACTIVATIONS} ({outside.size:,} indices are)")
        return idx

    def rows(self, indices, progress: ProgressFn | None = None, batch_size: int = 65536) -> np.ndarray:
        """float32 (len(indices), D): the rows ``indices`` (any order, repeats allowed) in their order.
        The storage is read in sorted order, ``batch_size`` indices at a time, each block converted to
        float32 as it is read; ``progress(done, total)`` follows each block (once (0, 0) for none)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        idx = self._check_indices(indices)
        out = np.empty((idx.size, self.dim), dtype=np.float32)
        if idx.size == 0:
            if progress is not None:
                progress(0, 0)
            return out
        st = self.path.stat() if self.path.is_file() else None
        if st is None or (st.st_size, st.st_mtime_ns) != self._stamp:
            raise DatasetFileError(self.path, f"{ACTIVATIONS}: the file changed or went away since it was "
                                              "opened; open it again")
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        reader = self._reader
        with damage_refused(self.path, self.format, reader, "reading"), reader:
            reader.reading = ACTIVATIONS
            for start in range(0, idx.size, int(batch_size)):
                stop = min(start + int(batch_size), idx.size)
                wanted, where = np.unique(ordered[start:stop], return_inverse=True)
                out[order[start:stop]] = reader.take(wanted)[where.reshape(-1)]
                if progress is not None:
                    progress(stop, idx.size)
        return out


def open_activations(path: str | os.PathLike) -> ActivationFile:
    """The activations file at ``path``, opened and checked whole (one streamed pass over its rows).
    Raises DatasetFileError, one line naming the file and the array, for anything unusable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetFileError(path, f"no such file (expected {ACTIVATIONS} in {', '.join(ACTIVATION_SUFFIXES)})")
    if not path.is_file():  # reading a pipe or a device would wait for ever, or for ever more bytes
        raise DatasetFileError(path, f"not a regular file; expected {ACTIVATIONS} in a file")
    fmt = _format_of(path)
    reader = FORMATS[fmt](path)
    with damage_refused(path, fmt, reader, "reading"), reader:
        reader.reading = ACTIVATIONS
        shape, dtype = reader.activations_layout()
        _check_activations(path, shape, dtype)
        n, dim = shape
        factors, names = None, ()
        reader.reading = FACTORS
        layout = reader.factors_layout()
        reader.reading = FACTOR_NAMES
        raw_names = reader.names()
        if layout is None and raw_names is not None:
            raise DatasetFileError(path, f"{FACTOR_NAMES} given without {FACTORS}")
        if layout is not None:
            reader.reading = FACTORS
            _check_factors_layout(path, *layout, n)
            factors = checked_factors(path, reader.factors())
            names = (checked_names(path, raw_names, factors.shape[1]) if raw_names is not None
                     else tuple(f"factor_{i}" for i in range(factors.shape[1])))
        reader.reading = ACTIVATIONS
        _check_finite(path, reader.scan(_scan_rows(dim, dtype.itemsize)))
        reader.reading = None
    return ActivationFile(path, fmt, reader, factors, names)


def write_activations(path: str | os.PathLike, activations, factors=None, factor_names=None) -> Path:
    """Write ``activations`` (N × D floats), with optional ``factors`` (N × F non-negative integers) and
    ``factor_names`` (F strings), to ``path`` in the format its extension names (.npy: activations only).
    Everything ``open_activations`` would refuse is refused first, with nothing written; the file appears
    whole or not at all (written beside it, then renamed)."""
    path = Path(path).expanduser()
    fmt = _format_of(path)
    acts = np.asarray(activations)
    _check_activations(path, acts.shape, acts.dtype)
    _check_finite(path, (acts[lo:hi] for lo, hi in slabs(acts.shape[0], _scan_rows(acts.shape[1], acts.itemsize))))
    arrays = {ACTIVATIONS: acts}
    names = None
    if factors is None and factor_names is not None:
        raise DatasetFileError(path, f"{FACTOR_NAMES} given without {FACTORS}")
    if factors is not None:
        if not FORMATS[fmt].holds_factors:
            holding = [s for s, f in zip(ACTIVATION_SUFFIXES, SUFFIX_FORMATS, strict=True) if FORMATS[f].holds_factors]
            raise DatasetFileError(path, f"a {path.suffix} file holds {ACTIVATIONS} only; write {FACTORS} to "
                                         f"one of {', '.join(holding)}")
        facts = np.asarray(factors)
        _check_factors_layout(path, facts.shape, facts.dtype, acts.shape[0])
        checked_factors(path, facts)
        arrays[FACTORS] = facts
        if factor_names is not None:
            names = checked_names(path, np.asarray(factor_names).tolist() if isinstance(factor_names, np.ndarray)
                                   else factor_names, facts.shape[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        FORMATS[fmt].write(Path(partial), arrays, names)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return path
