"""Datasets read from files in the official layouts: dSprites' npz and hdf5, Shapes3D's 3dshapes.h5.

Files are read lazily: opening one reads and checks its labels (tens of MB), and images are read only
for the rows a run asks for, in sorted order, a storage chunk at a time, as uint8. A file may hold any
subset of the official rows, in any order, as long as its labels are consistent; every problem with a
file (missing keys, wrong shapes or dtypes, labels off the grid, truncation, damage) is reported as one
``DatasetFileError`` naming the file and what is wrong. The HDF5 layouts are also written here
(``H5File.write``), for the render cache, so that a layout is read and written in one place.

The dSprites npz is a zip of .npy members and its ``metadata`` member is a pickle: only the array members
are read, with pickles refused, and the compressed image member is streamed once into memory packed to a
bit per pixel (360 MB for the whole set) because a deflate stream cannot be read at random.
"""

from __future__ import annotations

import abc
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np

from collapse_tui.data.base import DatasetFileError, ProgressFn, StoredDataset
from collapse_tui.data.grid import DSPRITES, SHAPES3D
from collapse_tui.data.official import (DSPRITES_HDF5, DSPRITES_NPZ, OFFICIAL_FILES, SHAPES3D_H5, OfficialFile,
                                        file_sha256, find_official)

# The official dSprites files carry colour as a sixth factor, first, with one value.
_DSPRITES_COLOUR = 1.0


def open_official(name: str, path: str | Path) -> FileDataset:
    """The dataset ``name`` ("dsprites" or "shapes3d") from the file at ``path``, chosen by its format."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetFileError(path, "no such file")
    if path.is_dir():
        found = find_official(name, [path])
        if found is None:
            raise DatasetFileError(path, f"no {name} file here; expected one of "
                                         f"{', '.join(f.filename for f in OFFICIAL_FILES[name])}")
        path = found
    if not path.is_file():  # reading a pipe or a device would wait for ever, or for ever more bytes
        raise DatasetFileError(path, "not a regular file")
    if name == "dsprites":
        return NpzDSprites(path) if zipfile.is_zipfile(path) else H5DSprites(path)
    if name == "shapes3d":
        return H5Shapes3D(path)
    raise ValueError(f"no official file format for dataset {name!r}")


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]


class FileDataset(StoredDataset):
    """A dataset read from one file in the layout of a published one (``layout``): labels read and checked
    on opening, images read per request. It is identified by the file's sha256."""

    source = "official"
    layout: OfficialFile

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DatasetFileError(self.path, "no such file")
        classes = self._read_labels()
        if classes.shape[0] == 0:
            raise DatasetFileError(self.path, "holds no images")
        try:
            self._set_rows(self.grid.index_of_rows(classes))
        except ValueError as err:
            raise DatasetFileError(self.path, f"inconsistent labels: {err}") from None
        self.sha256 = file_sha256(self.path)

    @abc.abstractmethod
    def _read_labels(self) -> np.ndarray:
        """The factor classes (n, K) of the file's rows, after checking its layout; raises DatasetFileError."""

    @property
    def official(self) -> bool:
        """Whether this is the published file itself, byte for byte."""
        return self.layout.is_release(self.path, self.sha256)

    def fingerprint(self) -> str:
        return f"{self.name}-file-{self.sha256[:16]}"

    @property
    def _kind_of_file(self) -> str:
        return "the official file" if self.official else "a file in the official layout"

    @property
    def description(self) -> str:
        held = (f"all {self.num_available:,} images" if self.num_available == len(self)
                else f"{self.num_available:,} of the {len(self):,} images")
        return f"{self.title} from {self._kind_of_file} {self.path} ({held}, sha256 {self.sha256[:12]})"


# ---------------------------------------------------------------------------------------------- hdf5
def _h5py():
    import h5py  # a core dependency; imported here so listing sources stays cheap

    return h5py


def _dataset(h5, path: Path, key: str, ndim: int, kinds: str, trailing: tuple[int, ...] | None = None):
    """``h5[key]`` checked to be an array of ``ndim`` dimensions with a dtype kind in ``kinds``."""
    h5py = _h5py()
    if key not in h5:
        raise DatasetFileError(path, f"no '{key}' array (keys: {', '.join(sorted(_all_keys(h5))) or 'none'})")
    ds = h5[key]
    if not isinstance(ds, h5py.Dataset):
        raise DatasetFileError(path, f"'{key}' is a group, not an array")
    if len(ds.shape) != ndim or (trailing is not None and tuple(ds.shape[1:]) != trailing):
        want = f"(n, {', '.join(map(str, trailing))})" if trailing else f"{ndim} dimensions"
        raise DatasetFileError(path, f"'{key}' has shape {tuple(ds.shape)}, expected {want}")
    if ds.dtype.kind not in kinds:
        raise DatasetFileError(path, f"'{key}' has dtype {ds.dtype}, expected "
                                     f"{'uint8' if kinds == 'u' else 'integers' if kinds == 'iu' else 'floats'}")
    return ds


def _all_keys(h5) -> list[str]:
    keys: list[str] = []
    h5.visit(keys.append)
    return keys


def read_h5_rows(ds, rows: np.ndarray) -> np.ndarray:
    """Rows (sorted, distinct) of an h5 array, reading each storage chunk that holds any of them once
    (a contiguous array is read in runs of consecutive rows)."""
    out = np.empty((rows.size, *ds.shape[1:]), dtype=ds.dtype)
    if rows.size == 0:
        return out
    # Rows close together are read as one slab: a slice over several chunks costs far less than as many
    # separate reads, and up to ``gap`` unwanted rows between wanted ones are cheaper read than skipped.
    if ds.chunks is not None:
        block = ds.chunks[0]
        first = rows // block * block
        last = np.minimum(rows // block * block + block, ds.shape[0])
        gap = 2 * block
    else:
        first, last, gap = rows, rows + 1, 4
    row_bytes = max(1, int(np.prod(ds.shape[1:])) * ds.dtype.itemsize)
    max_rows = max(int(block if ds.chunks is not None else 1), (64 << 20) // row_bytes)  # slabs of <= 64 MB
    start = 0
    while start < rows.size:
        stop = start + 1
        while (stop < rows.size and first[stop] - last[stop - 1] <= gap
               and last[stop] - first[start] <= max_rows):
            stop += 1
        lo, hi = int(first[start]), int(last[stop - 1])
        out[start:stop] = ds[lo:hi][rows[start:stop] - lo]
        start = stop
    return out


class H5File(FileDataset):
    """A dataset in an HDF5 file; subclasses name the layout, read its labels and write them."""

    #: One image as the file stores it (dSprites' have no channel axis).
    _stored_shape: tuple[int, ...] = ()

    def _read_labels(self) -> np.ndarray:
        key = self.layout.images_key
        h5py = _h5py()
        try:
            with h5py.File(self.path, "r") as h5:
                classes = self._labels(h5)
                images = _dataset(h5, self.path, key, len(self._stored_shape) + 1, "u", self._stored_shape)
                if images.shape[0] != classes.shape[0]:
                    raise DatasetFileError(self.path, f"'{key}' has {images.shape[0]} rows but the "
                                                      f"labels have {classes.shape[0]}")
                if images.dtype != np.uint8:
                    raise DatasetFileError(self.path, f"'{key}' has dtype {images.dtype}, expected uint8")
        except DatasetFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
            raise DatasetFileError(self.path, f"not a readable HDF5 file ({_reason(err)})") from None
        return classes

    @abc.abstractmethod
    def _labels(self, h5) -> np.ndarray:
        """The factor classes (n, K) of the rows, from the label arrays of the open file ``h5``."""

    def _images_batch(self, rows: np.ndarray) -> np.ndarray:
        h5py = _h5py()
        try:
            with h5py.File(self.path, "r") as h5:
                images = read_h5_rows(h5[self.layout.images_key], rows)
        except (OSError, KeyError, ValueError, RuntimeError) as err:
            raise DatasetFileError(self.path, f"images could not be read; the file is damaged or was changed "
                                              f"({_reason(err)})") from None
        return self._check_pixels(images.reshape(rows.size, *self.image_shape))

    def _check_pixels(self, images: np.ndarray) -> np.ndarray:
        return images

    @classmethod
    def write(cls, path: str | Path, indices: np.ndarray, images: np.ndarray,
              attrs: dict[str, str] | None = None) -> None:
        """Write ``images`` (uint8 (n, H, W, C)) of grid ``indices`` to ``path`` in this layout, so that
        ``cls(path)`` reads them back; ``attrs`` become attributes of the file, and ``complete``, written
        last, marks a file that was not cut short."""
        h5py = _h5py()
        n = len(indices)
        labels = cls._label_arrays(cls.grid.index_to_factors(indices))
        # Chunks of 256 images keep a read of a few scattered rows cheap; gzip level 1 shrinks binary
        # sprites ~100x and smooth Shapes3D scenes several times at little cost in time.
        chunks = (min(256, max(1, n)), *cls._stored_shape)
        with h5py.File(path, "w") as h5:
            h5.create_dataset(cls.layout.images_key, data=images.reshape(n, *cls._stored_shape), chunks=chunks,
                              compression="gzip", compression_opts=1)
            for key, data in zip(cls.layout.label_keys, labels, strict=True):
                h5.create_dataset(key, data=data)
            for key, value in (attrs or {}).items():
                h5.attrs[key] = value
            h5.attrs["complete"] = 1

    @classmethod
    @abc.abstractmethod
    def _label_arrays(cls, factors: np.ndarray) -> tuple[np.ndarray, ...]:
        """The label arrays, in the order of ``layout.label_keys``, of rows of factor classes (n, K)."""


class H5DSprites(H5File):
    """dSprites from ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5`` (keys ``imgs``, ``latents/classes``,
    ``latents/values``) or a file in its layout holding some of its rows."""

    grid, layout = DSPRITES, DSPRITES_HDF5
    _stored_shape = (64, 64)  # served as (64, 64, 1)

    def _labels(self, h5) -> np.ndarray:
        classes_key, values_key = self.layout.label_keys
        classes = _dataset(h5, self.path, classes_key, 2, "iu", (6,))
        values = _dataset(h5, self.path, values_key, 2, "f", (6,))
        if classes.shape[0] != values.shape[0]:
            raise DatasetFileError(self.path, f"'{classes_key}' has {classes.shape[0]} rows but "
                                              f"'{values_key}' has {values.shape[0]}")
        return _dsprites_classes(self.path, classes[()], values[()])

    def _check_pixels(self, images: np.ndarray) -> np.ndarray:
        return _binary_pixels(self.path, images)

    @classmethod
    def _label_arrays(cls, factors: np.ndarray) -> tuple[np.ndarray, ...]:
        n = len(factors)
        classes = np.concatenate([np.zeros((n, 1), np.int64), factors], axis=1)
        values = np.concatenate([np.full((n, 1), _DSPRITES_COLOUR), cls.grid.factor_value(factors)], axis=1)
        return classes, values


def _binary_pixels(path: Path, images: np.ndarray) -> np.ndarray:
    if images.size and images.max() > 1:
        raise DatasetFileError(path, f"image pixels go up to {images.max()}; dSprites pixels are 0 or 1")
    return images


def _dsprites_classes(path: Path, classes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Our five factor classes from the official six columns, after checking the classes and the values
    agree with each other and with the grid."""
    if classes.shape[0] and (classes[:, 0] != 0).any():
        raise DatasetFileError(path, f"inconsistent labels: colour class {classes[classes[:, 0] != 0][0, 0]}; "
                                     "dSprites has one colour (class 0)")
    if values.shape[0] and not np.allclose(values[:, 0], _DSPRITES_COLOUR):
        raise DatasetFileError(path, "inconsistent labels: colour values other than 1.0")
    try:
        from_values = DSPRITES.classes_of_values(values[:, 1:])
    except ValueError as err:
        raise DatasetFileError(path, f"inconsistent labels: {err}") from None
    mismatch = np.flatnonzero((from_values != classes[:, 1:]).any(axis=1))
    if mismatch.size:
        row = int(mismatch[0])
        raise DatasetFileError(path, f"inconsistent labels: row {row} has classes {classes[row].tolist()} but "
                                     f"values {np.round(values[row], 4).tolist()}")
    return from_values


class H5Shapes3D(H5File):
    """Shapes3D from ``3dshapes.h5`` (``images`` uint8 (n, 64, 64, 3), ``labels`` float (n, 6) holding the
    factor values) or a file in its layout holding some of its rows."""

    grid, layout = SHAPES3D, SHAPES3D_H5
    _stored_shape = (64, 64, 3)

    def _labels(self, h5) -> np.ndarray:
        (labels_key,) = self.layout.label_keys
        labels = _dataset(h5, self.path, labels_key, 2, "f", (6,))[()]
        try:
            return self.grid.classes_of_values(labels)
        except ValueError as err:
            raise DatasetFileError(self.path, f"inconsistent labels: {err}") from None

    @classmethod
    def _label_arrays(cls, factors: np.ndarray) -> tuple[np.ndarray, ...]:
        return (cls.grid.factor_value(factors),)


# ----------------------------------------------------------------------------------------------- npz
def _npz_member_header(zf: zipfile.ZipFile, member: str, path: Path):
    """(open member stream, shape, dtype) of a .npy member, refusing pickled (object) arrays."""
    fh = zf.open(member)
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except ValueError as err:
        fh.close()
        raise DatasetFileError(path, f"member '{member}' is not a numpy array ({_reason(err)})") from None
    if dtype.hasobject:
        fh.close()
        raise DatasetFileError(path, f"member '{member}' holds Python objects, which are never unpickled")
    if fortran:
        fh.close()
        raise DatasetFileError(path, f"member '{member}' is stored in Fortran order; expected C order")
    return fh, tuple(shape), dtype


def _read_member(zf: zipfile.ZipFile, member: str, path: Path, ndim: int, kinds: str) -> np.ndarray:
    fh, shape, dtype = _npz_member_header(zf, member, path)
    with fh:
        if len(shape) != ndim or dtype.kind not in kinds:
            raise DatasetFileError(path, f"'{member[:-4]}' has shape {shape} and dtype {dtype}")
        count = int(np.prod(shape))
        data = fh.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise DatasetFileError(path, f"'{member[:-4]}' is truncated")
        return np.frombuffer(data, dtype=dtype).reshape(shape)


class NpzDSprites(FileDataset):
    """dSprites from ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (arrays ``imgs``, ``latents_classes``,
    ``latents_values``; the pickled ``metadata`` is never read) or a file in its layout holding some rows."""

    grid, layout = DSPRITES, DSPRITES_NPZ
    _kind_of_file = "the npz file"  # the npz publishes no checksum, so it is never "the official file"
    _bits_per_image = 64 * 64 // 8

    def __init__(self, path: str | Path, progress: ProgressFn | None = None):
        self._packed: np.ndarray | None = None
        self._lock = threading.Lock()
        #: Follows the decompression when the first ``images`` call brings no progress of its own.
        self._progress = progress
        super().__init__(path)

    def _read_labels(self) -> np.ndarray:
        classes_key, values_key = self.layout.label_keys
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = set(zf.namelist())
                for key in (self.layout.images_key, classes_key, values_key):
                    if key + ".npy" not in names:
                        found = ", ".join(sorted(n[:-4] for n in names if n.endswith(".npy"))) or "none"
                        raise DatasetFileError(self.path, f"no '{key}' array (arrays: {found})")
                classes = _read_member(zf, classes_key + ".npy", self.path, 2, "iu")
                values = _read_member(zf, values_key + ".npy", self.path, 2, "f")
                fh, img_shape, _ = self._image_header(zf)
                fh.close()
        except DatasetFileError:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
            raise DatasetFileError(self.path, f"not a readable npz file ({_reason(err)})") from None
        if classes.shape[1:] != (6,) or values.shape[1:] != (6,):
            raise DatasetFileError(self.path, f"latents have shapes {classes.shape} and {values.shape}, "
                                              "expected (n, 6)")
        if not classes.shape[0] == values.shape[0] == img_shape[0]:
            raise DatasetFileError(self.path, f"'{self.layout.images_key}' has {img_shape[0]} rows, "
                                              f"'{classes_key}' {classes.shape[0]}, '{values_key}' {values.shape[0]}")
        return _dsprites_classes(self.path, classes, values)

    def _image_header(self, zf: zipfile.ZipFile):
        key = self.layout.images_key
        fh, shape, dtype = _npz_member_header(zf, key + ".npy", self.path)
        if len(shape) != 3 or shape[1:] != (64, 64) or dtype != np.uint8:
            fh.close()
            raise DatasetFileError(self.path, f"'{key}' has shape {shape} and dtype {dtype}, expected "
                                              "(n, 64, 64) uint8")
        return fh, shape, dtype

    def _unpack_all(self, progress: ProgressFn | None) -> np.ndarray:
        """Stream the compressed image member once into memory at a bit per pixel."""
        rows_per_read = 4096
        try:
            with zipfile.ZipFile(self.path) as zf:
                fh, shape, _ = self._image_header(zf)
                n = shape[0]
                packed = np.empty((n, self._bits_per_image), dtype=np.uint8)
                with fh:
                    for start in range(0, n, rows_per_read):
                        stop = min(start + rows_per_read, n)
                        data = fh.read((stop - start) * 4096)
                        if len(data) != (stop - start) * 4096:
                            raise DatasetFileError(self.path, f"'imgs' is truncated after {start} images")
                        block = _binary_pixels(self.path, np.frombuffer(data, dtype=np.uint8))
                        packed[start:stop] = np.packbits(block.reshape(stop - start, 4096), axis=1)
                        if progress is not None:
                            progress(stop, n)
        except DatasetFileError:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
            raise DatasetFileError(self.path, f"images could not be read; the file is damaged ({_reason(err)})") \
                from None
        return packed

    def _prepare(self, progress: ProgressFn | None) -> None:
        with self._lock:
            if self._packed is None:
                # Decompressing is the long part (seconds): report it through the caller's progress.
                self._packed = self._unpack_all(progress or self._progress)

    def _images_batch(self, rows: np.ndarray) -> np.ndarray:
        return np.unpackbits(self._packed[rows], axis=1).reshape(rows.size, 64, 64, 1)
