"""The official dataset files: dSprites' npz and hdf5, Shapes3D's 3dshapes.h5.

Files are read lazily: opening one reads and checks its labels (tens of MB), and images are read only
for the rows a run asks for, in sorted order, a storage chunk at a time, as uint8. A file may hold any
subset of the official rows, in any order, as long as its labels are consistent; every problem with a
file (missing keys, wrong shapes or dtypes, labels off the grid, truncation, damage) is reported as one
``DatasetFileError`` naming the file and what is wrong.

The dSprites npz is a zip of .npy members and its ``metadata`` member is a pickle: only the array members
are read, with pickles refused, and the compressed image member is streamed once into memory packed to a
bit per pixel (360 MB for the whole set) because a deflate stream cannot be read at random.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np

from collapse_tui.data.base import DatasetFileError, ProgressFn, StoredDataset, classes_from_values
from collapse_tui.data.dsprites import DSpritesGrid
from collapse_tui.data.shapes3d import Shapes3DGrid

# File name -> (size in bytes, sha256) of the published files; None where not published.
OFFICIAL_FILES: dict[str, dict[str, tuple[int | None, str | None]]] = {
    "dsprites": {
        "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5":
            (28_024_106, "729fa22e884c9c500e1f17415d580746b4c5894fbbb780a1319bbcfa39a745bb"),
        "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz": (None, None),
    },
    "shapes3d": {
        "3dshapes.h5": (267_573_662, "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"),
    },
}

# The official dSprites files carry colour as a sixth factor, first, with one value.
_DSPRITES_COLOUR = 1.0

_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, hex; remembered per (path, size, mtime) so a run reads the file once."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _sha_lock:
        if key in _sha_cache:
            return _sha_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    with _sha_lock:
        _sha_cache[key] = digest.hexdigest()
    return _sha_cache[key]


def is_official_release(name: str, path: str | Path, sha256: str) -> bool:
    """Whether ``path`` is byte for byte the published file of dataset ``name``."""
    expected = OFFICIAL_FILES.get(name, {}).get(Path(path).name, (None, None))[1]
    return expected is not None and expected == sha256


def find_official(name: str, directories) -> Path | None:
    """The first official file of dataset ``name`` in ``directories`` (searched in order; in each, the
    files in the order of ``OFFICIAL_FILES``), or None."""
    for directory in directories:
        for filename in OFFICIAL_FILES.get(name, {}):
            candidate = Path(directory).expanduser() / filename
            if candidate.is_file():
                return candidate
    return None


def open_official(name: str, path: str | Path) -> StoredDataset:
    """The dataset ``name`` ("dsprites" or "shapes3d") from the file at ``path``, chosen by its format."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetFileError(path, "no such file")
    if path.is_dir():
        found = find_official(name, [path])
        if found is None:
            raise DatasetFileError(path, f"no {name} file here; expected one of "
                                         f"{', '.join(OFFICIAL_FILES[name])}")
        path = found
    if name == "dsprites":
        return NpzDSprites(path) if zipfile.is_zipfile(path) else H5DSprites(path)
    if name == "shapes3d":
        return H5Shapes3D(path)
    raise ValueError(f"no official file format for dataset {name!r}")


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


class _FileIdentity:
    """What a dataset read from a file says about itself: keyed by the file's checksum."""

    name: str
    path: Path
    sha256: str

    @property
    def official(self) -> bool:
        return is_official_release(self.name, self.path, self.sha256)

    def fingerprint(self) -> str:
        return f"{self.name}-file-{self.sha256[:16]}"

    def _held(self) -> str:
        return (f"all {self.num_available:,} images" if self.num_available == len(self)
                else f"{self.num_available:,} of the {len(self):,} images")


class _H5File(_FileIdentity, StoredDataset):
    """A dataset in an HDF5 file: labels read and checked on opening, images read per request."""

    source = "official"
    images_key = ""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DatasetFileError(self.path, "no such file")
        h5py = _h5py()
        try:
            with h5py.File(self.path, "r") as h5:
                classes = self._read_labels(h5)
                images = _dataset(h5, self.path, self.images_key, len(self.image_shape) + 1 - self._squeeze,
                                  "u", self._stored_shape)
                if images.shape[0] != classes.shape[0]:
                    raise DatasetFileError(self.path, f"'{self.images_key}' has {images.shape[0]} rows but the "
                                                      f"labels have {classes.shape[0]}")
                if images.dtype != np.uint8:
                    raise DatasetFileError(self.path, f"'{self.images_key}' has dtype {images.dtype}, "
                                                      "expected uint8")
        except DatasetFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
            raise DatasetFileError(self.path, f"not a readable HDF5 file ({_reason(err)})") from None
        if classes.shape[0] == 0:
            raise DatasetFileError(self.path, "holds no images")
        try:
            self._set_rows(classes, str(self.path))
        except ValueError as err:
            raise DatasetFileError(self.path, f"inconsistent labels: {err}") from None
        self.sha256 = file_sha256(self.path)

    _squeeze = 0
    _stored_shape: tuple[int, ...] = ()

    def _read_labels(self, h5) -> np.ndarray:
        raise NotImplementedError

    @property
    def description(self) -> str:
        which = "the official file" if self.official else "a file in the official layout"
        return f"{self.title} from {which} {self.path} ({self._held()}, sha256 {self.sha256[:12]})"

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        h5py = _h5py()
        try:
            with h5py.File(self.path, "r") as h5:
                images = read_h5_rows(h5[self.images_key], rows)
        except (OSError, KeyError, ValueError, RuntimeError) as err:
            raise DatasetFileError(self.path, f"images could not be read; the file is damaged or was changed "
                                              f"({_reason(err)})") from None
        return self._check_pixels(images.reshape(rows.size, *self.image_shape))

    def _check_pixels(self, images: np.ndarray) -> np.ndarray:
        return images


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]


class H5DSprites(DSpritesGrid, _H5File):
    """dSprites from ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5`` (keys ``imgs``, ``latents/classes``,
    ``latents/values``) or a file in its layout holding some of its rows."""

    images_key = "imgs"
    _squeeze = 1  # stored (n, 64, 64), served (n, 64, 64, 1)
    _stored_shape = (64, 64)

    def _read_labels(self, h5) -> np.ndarray:
        classes = _dataset(h5, self.path, "latents/classes", 2, "iu", (6,))
        values = _dataset(h5, self.path, "latents/values", 2, "f", (6,))
        if classes.shape[0] != values.shape[0]:
            raise DatasetFileError(self.path, f"'latents/classes' has {classes.shape[0]} rows but "
                                              f"'latents/values' has {values.shape[0]}")
        return _dsprites_classes(self.path, classes[()], values[()])

    def _check_pixels(self, images: np.ndarray) -> np.ndarray:
        return _binary_pixels(self.path, images)


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
    grid = DSpritesGrid
    try:
        from_values = classes_from_values(values[:, 1:], grid.factor_values, grid.factor_names)
    except ValueError as err:
        raise DatasetFileError(path, f"inconsistent labels: {err}") from None
    mismatch = np.flatnonzero((from_values != classes[:, 1:]).any(axis=1))
    if mismatch.size:
        row = int(mismatch[0])
        raise DatasetFileError(path, f"inconsistent labels: row {row} has classes {classes[row].tolist()} but "
                                     f"values {np.round(values[row], 4).tolist()}")
    return from_values


class H5Shapes3D(Shapes3DGrid, _H5File):
    """Shapes3D from ``3dshapes.h5`` (``images`` uint8 (n, 64, 64, 3), ``labels`` float (n, 6) holding the
    factor values) or a file in its layout holding some of its rows."""

    images_key = "images"
    _stored_shape = (64, 64, 3)

    def _read_labels(self, h5) -> np.ndarray:
        labels = _dataset(h5, self.path, "labels", 2, "f", (6,))[()]
        try:
            return classes_from_values(labels, self.factor_values, self.factor_names)
        except ValueError as err:
            raise DatasetFileError(self.path, f"inconsistent labels: {err}") from None


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


class NpzDSprites(DSpritesGrid, _FileIdentity, StoredDataset):
    """dSprites from ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (arrays ``imgs``, ``latents_classes``,
    ``latents_values``; the pickled ``metadata`` is never read) or a file in its layout holding some rows."""

    source = "official"
    _bits_per_image = 64 * 64 // 8

    def __init__(self, path: str | Path, progress: ProgressFn | None = None):
        self.path = Path(path).expanduser()
        self._packed: np.ndarray | None = None
        self._lock = threading.Lock()
        if not self.path.is_file():
            raise DatasetFileError(self.path, "no such file")
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = set(zf.namelist())
                for key in ("imgs", "latents_classes", "latents_values"):
                    if key + ".npy" not in names:
                        found = ", ".join(sorted(n[:-4] for n in names if n.endswith(".npy"))) or "none"
                        raise DatasetFileError(self.path, f"no '{key}' array (arrays: {found})")
                classes = _read_member(zf, "latents_classes.npy", self.path, 2, "iu")
                values = _read_member(zf, "latents_values.npy", self.path, 2, "f")
                _, img_shape, img_dtype = self._image_header(zf)
        except DatasetFileError:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
            raise DatasetFileError(self.path, f"not a readable npz file ({_reason(err)})") from None
        if classes.shape[1:] != (6,) or values.shape[1:] != (6,):
            raise DatasetFileError(self.path, f"latents have shapes {classes.shape} and {values.shape}, "
                                              "expected (n, 6)")
        if not classes.shape[0] == values.shape[0] == img_shape[0]:
            raise DatasetFileError(self.path, f"'imgs' has {img_shape[0]} rows, 'latents_classes' "
                                              f"{classes.shape[0]}, 'latents_values' {values.shape[0]}")
        if classes.shape[0] == 0:
            raise DatasetFileError(self.path, "holds no images")
        try:
            self._set_rows(_dsprites_classes(self.path, classes, values), str(self.path))
        except ValueError as err:
            if isinstance(err, DatasetFileError):
                raise
            raise DatasetFileError(self.path, f"inconsistent labels: {err}") from None
        self.sha256 = file_sha256(self.path)
        self._progress = progress

    def _image_header(self, zf: zipfile.ZipFile):
        fh, shape, dtype = _npz_member_header(zf, "imgs.npy", self.path)
        if len(shape) != 3 or shape[1:] != (64, 64) or dtype != np.uint8:
            fh.close()
            raise DatasetFileError(self.path, f"'imgs' has shape {shape} and dtype {dtype}, expected "
                                              "(n, 64, 64) uint8")
        return fh, shape, dtype

    @property
    def description(self) -> str:
        return f"{self.title} from the npz file {self.path} ({self._held()}, sha256 {self.sha256[:12]})"

    def _unpack_all(self, progress: ProgressFn | None) -> np.ndarray:
        """Stream the compressed ``imgs`` member once into memory at a bit per pixel."""
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
                        block = np.frombuffer(data, dtype=np.uint8).reshape(stop - start, 4096)
                        if block.max() > 1:
                            raise DatasetFileError(self.path, f"image pixels go up to {block.max()}; dSprites "
                                                              "pixels are 0 or 1")
                        packed[start:stop] = np.packbits(block, axis=1)
                        if progress is not None:
                            progress(stop, n)
        except DatasetFileError:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
            raise DatasetFileError(self.path, f"images could not be read; the file is damaged ({_reason(err)})") \
                from None
        return packed

    def images(self, indices, progress: ProgressFn | None = None, batch_size: int = 2048) -> np.ndarray:
        with self._lock:
            if self._packed is None:
                # Decompressing is the long part (seconds): report it through the caller's progress.
                self._packed = self._unpack_all(progress or self._progress)
        return super().images(indices, progress=progress, batch_size=batch_size)

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        if self._packed is None:
            with self._lock:
                if self._packed is None:
                    self._packed = self._unpack_all(self._progress)
        return np.unpackbits(self._packed[rows], axis=1).reshape(rows.size, 64, 64, 1)


def directories_from_env(value: str | None = None) -> list[Path]:
    """The directories in ``$COLLAPSE_TUI_DATA`` (or ``value``), separated by os.pathsep."""
    value = os.environ.get("COLLAPSE_TUI_DATA", "") if value is None else value
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]
