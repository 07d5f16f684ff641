"""The four storage formats of an activations file, each read and written by one reader class.

A reader answers the questions ``activations.open_activations`` asks (the layout of each array, the
factors and names, the activations' rows in order for the NaN scan) and reads rows for
``ActivationFile.rows``: sorted, distinct rows, a slab of neighbouring rows at a time, as float32. Used
as a context manager, it holds the file open for one opening or one request. It raises
DatasetFileError for what it can name itself; everything its library raises on a damaged file is turned
into one line by the caller. ``.npy`` is read a slab at a time at its offset, never memory-mapped.
"""

from __future__ import annotations

import json
import struct
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from collapse_tui.data.base import DatasetFileError

ACTIVATIONS, FACTORS, FACTOR_NAMES = "activations", "factors", "factor_names"
_SLAB_BYTES = 64 << 20  # at most this much is read at once for one slab of rows
_GAP_BYTES = 1 << 20  # unwanted rows between wanted ones are read through up to this much, not skipped


def one_line(err: BaseException) -> str:
    """An exception as a short line: its type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def slabs(n: int, step: int):
    """(lo, hi) covering 0..n in order, ``step`` rows at a time."""
    for lo in range(0, n, step):
        yield lo, min(lo + step, n)


def runs(rows: np.ndarray, row_bytes: int):
    """Group sorted, distinct ``rows`` into slabs read in one go: (lo, hi, i, j), rows[i:j] lying in
    lo..hi. Rows less than a megabyte apart share a slab; no slab is over 64 MB (or one row)."""
    max_rows = max(1, _SLAB_BYTES // max(1, row_bytes))
    gap = max(1, _GAP_BYTES // max(1, row_bytes))
    breaks = np.flatnonzero(np.diff(rows) > gap) + 1  # where a new slab must start
    i = 0
    while i < rows.size:
        lo = int(rows[i])
        j = int(np.searchsorted(rows, lo + max_rows, side="left"))
        k = int(np.searchsorted(breaks, i, side="right"))
        if k < breaks.size:
            j = min(j, int(breaks[k]))
        yield lo, int(rows[j - 1]) + 1, i, j
        i = j


def _npy_header(fh, path: Path, key: str):
    """(shape, fortran order, dtype, data offset) from the .npy header at ``fh``, refusing pickled
    (object) arrays before anything else is read."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise DatasetFileError(path, f"{key} is in .npy format version {version}; expected 1.0 or 2.0")
    if dtype.hasobject:
        raise DatasetFileError(path, f"{key} holds Python objects, which are never unpickled")
    return tuple(shape), fortran, dtype, fh.tell()


def _names_from_strings(path: Path, values: np.ndarray) -> list[str]:
    if values.ndim != 1:
        raise DatasetFileError(path, f"{FACTOR_NAMES} has shape {values.shape}, expected one name per factor")
    return [str(v) for v in values.tolist()]


def _float32_rows(rows: np.ndarray, dim: int, itemsize: int, slab) -> np.ndarray:
    """float32 (len(rows), dim) of sorted distinct ``rows``, each slab (``slab(lo, hi)``) converted as read."""
    out = np.empty((rows.size, dim), dtype=np.float32)
    for lo, hi, i, j in runs(rows, dim * itemsize):
        out[i:j] = slab(lo, hi)[rows[i:j] - lo]
    return out


@contextmanager
def damage_refused(path: Path, fmt: str, reader: ActivationReader | None, doing: str):
    """Any exception of the file's library (h5py, zipfile, safetensors, numpy) while ``doing`` becomes one
    DatasetFileError line saying which array was being read: a damaged file raises a zoo of them."""
    try:
        yield
    except DatasetFileError:
        raise
    except Exception as err:  # the one boundary where damage of every kind becomes a line
        what = reader.reading if reader is not None and reader.reading else "its layout"
        raise DatasetFileError(path, f"not a readable {fmt} file: {doing} {what} failed ({one_line(err)})") from None


class ActivationReader:
    """One format: subclasses implement the methods below for their files and ``write`` for new ones."""

    holds_factors = True
    #: The array being read, named when damage is reported.
    reading: str | None = None

    def __init__(self, path: Path):
        self.path = path
        self.shape: tuple[int, ...] = ()
        self.dtype: np.dtype = np.dtype(np.float32)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def activations_layout(self) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of the activations, remembered as ``shape`` and ``dtype``."""
        raise NotImplementedError

    def factors_layout(self) -> tuple[tuple[int, ...], np.dtype] | None:
        """(shape, dtype) of the factors, None when the file has none."""
        return None

    def factors(self) -> np.ndarray:
        raise NotImplementedError

    def names(self) -> list | None:
        """The factor names as stored (strings, to be checked), None when the file has none."""
        return None

    def slab(self, lo: int, hi: int) -> np.ndarray:
        """Activation rows lo..hi as stored."""
        raise NotImplementedError

    def scan(self, step: int):
        """The activations' rows in order, ``step`` at a time, for the NaN scan; a format with a checksum
        verifies it on the way."""
        for lo, hi in slabs(self.shape[0], step):
            yield self.slab(lo, hi)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """float32 activations of sorted, distinct ``rows``."""
        return _float32_rows(rows, self.shape[1], self.dtype.itemsize, self.slab)

    @staticmethod
    def write(path: Path, arrays: dict[str, np.ndarray], names: tuple[str, ...] | None) -> None:
        raise NotImplementedError


class NpyReader(ActivationReader):
    """A .npy of activations alone, read a slab at a time from its offset, so no more than a slab is ever in
    memory."""

    holds_factors = False

    def __init__(self, path: Path):
        super().__init__(path)
        self.offset: int | None = None

    def activations_layout(self):
        with open(self.path, "rb") as fh:
            shape, _, dtype, offset = _npy_header(fh, self.path, ACTIVATIONS)
        self.shape, self.dtype, self.offset = shape, dtype, offset
        if len(shape) == 2 and dtype.kind == "f":  # other layouts are refused by the caller, unmapped
            expected = offset + int(np.prod(shape)) * dtype.itemsize
            size = self.path.stat().st_size
            if size < expected:
                raise DatasetFileError(self.path, f"{ACTIVATIONS} is truncated: the file has {size:,} of the "
                                                  f"{expected:,} bytes its header promises")
            if size > expected:
                raise DatasetFileError(self.path, f"{ACTIVATIONS}: the file has {size - expected:,} bytes more "
                                                  "than its header accounts for")
        return shape, dtype

    def slab(self, lo, hi):
        # Read, not memory-mapped: pages of a mapping count in the process's resident memory as long as the
        # mapping lives, so a checked or streamed file would weigh its whole size there.
        count, row_bytes = (hi - lo) * self.shape[1], self.shape[1] * self.dtype.itemsize
        with open(self.path, "rb") as fh:
            data = np.fromfile(fh, dtype=self.dtype, count=count, offset=self.offset + lo * row_bytes)
        if data.size != count:
            raise DatasetFileError(self.path, f"{ACTIVATIONS} is truncated before row {hi}")
        return data.reshape(hi - lo, self.shape[1])

    @staticmethod
    def write(path, arrays, names):
        with open(path, "wb") as fh:
            np.save(fh, np.ascontiguousarray(arrays[ACTIVATIONS]), allow_pickle=False)


class NpzReader(ActivationReader):
    """A .npz (a zip of .npy members, stored or deflated). Members are streamed, never loaded with
    ``np.load``, and read to their end once on opening so that the zip's CRC-32 vouches for every byte."""

    def __enter__(self):
        self._zip = zipfile.ZipFile(self.path)
        self._members = set(self._zip.namelist())
        self._stream = None  # the activations member, open for a request, only ever read forwards
        return self

    def __exit__(self, *exc):
        if self._stream is not None:
            self._stream.close()
        self._zip.close()

    def _open(self, key: str, required: bool = True):
        """(stream, shape, fortran, dtype, data offset) of member ``key``, or None when absent."""
        member = key + ".npy"
        if member not in self._members:
            if not required:
                return None
            found = ", ".join(sorted(m[:-4] for m in self._members if m.endswith(".npy"))) or "none"
            raise DatasetFileError(self.path, f"no '{key}' array (arrays: {found})")
        fh = self._zip.open(member)
        try:
            shape, fortran, dtype, offset = _npy_header(fh, self.path, key)
            expected = offset + int(np.prod(shape)) * dtype.itemsize
            size = self._zip.getinfo(member).file_size
            if size != expected:
                raise DatasetFileError(self.path, f"{key} holds {size:,} bytes, its header promises {expected:,}")
        except BaseException:
            fh.close()
            raise
        return fh, shape, fortran, dtype, offset

    def _layout(self, key: str, required: bool):
        opened = self._open(key, required)
        if opened is None:
            return None
        fh, shape, fortran, dtype, _ = opened
        fh.close()
        if key == ACTIVATIONS and fortran and len(shape) == 2 and min(shape) > 1:
            raise DatasetFileError(self.path, f"{ACTIVATIONS} is stored in Fortran order, which cannot be read by "
                                              "rows; save np.ascontiguousarray(activations)")
        return shape, dtype

    def check_directory(self) -> None:
        """Every byte before the zip's directory belongs to a member it lists, under the name it lists. The
        directory has no checksum of its own: damaged, it could hide a member or rename one unnoticed."""
        ends = {0}  # where the next member may start: after a member, or after it and its data descriptor
        with open(self.path, "rb") as fh:
            for info in sorted(self._zip.infolist(), key=lambda i: i.header_offset):
                if info.header_offset not in ends:
                    raise DatasetFileError(self.path, f"not a readable npz file: its zip directory does not "
                                                      f"account for the bytes before member '{info.filename}'")
                self._zip.open(info).close()  # zipfile checks the member's own header names it alike
                fh.seek(info.header_offset + 26)
                name_len, extra_len = struct.unpack("<HH", fh.read(4))
                end = info.header_offset + 30 + name_len + extra_len + info.compress_size
                # A data descriptor (flag bit 3) follows the data: CRC and sizes, 4 or 8 bytes each, and
                # perhaps a signature.
                ends = {end} if not info.flag_bits & 0x08 else {end + size for size in (12, 16, 20, 24)}
        if self._zip.start_dir not in ends:
            raise DatasetFileError(self.path, "not a readable npz file: its zip directory does not account for "
                                              "the bytes before the directory")

    def activations_layout(self):
        self.check_directory()
        self.shape, self.dtype = self._layout(ACTIVATIONS, True)
        return self.shape, self.dtype

    def factors_layout(self):
        return self._layout(FACTORS, False)

    def _whole(self, key: str) -> np.ndarray:
        fh, shape, fortran, dtype, _ = self._open(key)
        with fh:
            data = fh.read(int(np.prod(shape)) * dtype.itemsize)
            if fh.read(1):  # the end of the member: the zip checks its CRC-32 here
                raise DatasetFileError(self.path, f"{key} is longer than its header says")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")

    def member(self, key: str, required: bool = True):
        """(shape, dtype) of member ``key`` as its header gives them (None when absent and not required);
        Fortran-ordered members are refused, as ``array`` would read them by rows."""
        opened = self._open(key, required)
        if opened is None:
            return None
        fh, shape, fortran, dtype, _ = opened
        fh.close()
        if fortran and len(shape) > 1 and sum(d > 1 for d in shape) > 1:
            raise DatasetFileError(self.path, f"{key} is stored in Fortran order; save np.ascontiguousarray({key})")
        return shape, dtype

    def array(self, key: str) -> np.ndarray:
        """Member ``key`` whole, read to its end so the zip's CRC-32 vouches for it."""
        return self._whole(key)

    def factors(self):
        return self._whole(FACTORS)

    def names(self):
        opened = self._open(FACTOR_NAMES, required=False)
        if opened is None:
            return None
        fh, shape, _, dtype, _ = opened
        fh.close()
        if dtype.kind != "U":
            raise DatasetFileError(self.path, f"{FACTOR_NAMES} has dtype {dtype}, expected strings (a Unicode array)")
        return _names_from_strings(self.path, self._whole(FACTOR_NAMES))

    def scan(self, step):
        fh, (n, dim), _, dtype, _ = self._open(ACTIVATIONS)
        with fh:
            for lo, hi in slabs(n, step):
                data = fh.read((hi - lo) * dim * dtype.itemsize)
                if len(data) != (hi - lo) * dim * dtype.itemsize:
                    raise DatasetFileError(self.path, f"{ACTIVATIONS} is truncated after row {lo}")
                yield np.frombuffer(data, dtype=dtype).reshape(hi - lo, dim)
            if fh.read(1):  # the end of the member: the zip checks its CRC-32 here
                raise DatasetFileError(self.path, f"{ACTIVATIONS} is longer than its header says")

    def slab(self, lo, hi):
        if self._stream is None:
            self._stream, _, _, _, self._offset = self._open(ACTIVATIONS)
        row_bytes = self.shape[1] * self.dtype.itemsize
        self._stream.seek(self._offset + lo * row_bytes)  # forwards only: requests come in sorted order
        data = self._stream.read((hi - lo) * row_bytes)
        if len(data) != (hi - lo) * row_bytes:
            raise DatasetFileError(self.path, f"{ACTIVATIONS} is truncated before row {hi}")
        return np.frombuffer(data, dtype=self.dtype).reshape(hi - lo, self.shape[1])

    @staticmethod
    def write(path, arrays, names):
        members = {key: np.ascontiguousarray(value) for key, value in arrays.items()}
        if names is not None:
            members[FACTOR_NAMES] = np.array(names, dtype=str)
        with open(path, "wb") as fh:  # a file object: np.savez adds no extension of its own
            np.savez(fh, **members)


def _h5py():
    import h5py  # a core dependency; imported here so that importing the data package stays cheap

    return h5py


class H5Reader(ActivationReader):
    """An HDF5 file with datasets ``activations``, ``factors`` and ``factor_names`` at its root."""

    def __enter__(self):
        self._h5 = _h5py().File(self.path, "r")
        return self

    def __exit__(self, *exc):
        self._h5.close()

    def _dataset(self, key: str, required: bool = True):
        if key not in self._h5:
            if not required:
                return None
            raise DatasetFileError(self.path, f"no '{key}' dataset (keys: {', '.join(sorted(self._h5)) or 'none'})")
        ds = self._h5[key]
        if not isinstance(ds, _h5py().Dataset):
            raise DatasetFileError(self.path, f"'{key}' is a group, not an array")
        return ds

    def activations_layout(self):
        ds = self._dataset(ACTIVATIONS)
        self.shape, self.dtype = tuple(ds.shape or ()), ds.dtype
        return self.shape, self.dtype

    def factors_layout(self):
        ds = self._dataset(FACTORS, required=False)
        return None if ds is None else (tuple(ds.shape or ()), ds.dtype)

    def factors(self):
        return np.asarray(self._dataset(FACTORS)[()])

    def names(self):
        ds = self._dataset(FACTOR_NAMES, required=False)
        if ds is None:
            return None
        if _h5py().check_string_dtype(ds.dtype) is None:
            raise DatasetFileError(self.path, f"{FACTOR_NAMES} has dtype {ds.dtype}, expected strings")
        return _names_from_strings(self.path, np.asarray(ds.asstr()[()]))

    def slab(self, lo, hi):
        return self._h5[ACTIVATIONS][lo:hi]

    def take(self, rows):
        from collapse_tui.data.files import read_h5_rows  # chunk-aware, for rows scattered over the file

        return read_h5_rows(self._h5[ACTIVATIONS], rows).astype(np.float32, copy=False)

    @staticmethod
    def write(path, arrays, names):
        h5py = _h5py()
        # libver "latest" checksums the file's own structure and Fletcher-32 each chunk of data, so that
        # damage is found on opening instead of read as other numbers.
        with h5py.File(path, "w", libver="latest") as h5:
            for key, value in arrays.items():
                row_bytes = max(1, value.shape[1] * value.itemsize)
                chunk_rows = max(1, min(value.shape[0], (1 << 20) // row_bytes))
                h5.create_dataset(key, data=value, chunks=(chunk_rows, value.shape[1]), fletcher32=True)
            if names is not None:
                encoded = [name.encode("utf-8") for name in names]
                text = h5py.string_dtype("utf-8", max(len(e) for e in encoded))  # fixed width: checksummed too
                h5.create_dataset(FACTOR_NAMES, data=np.array(encoded, dtype=text), chunks=(len(encoded),),
                                  fletcher32=True)


class SafetensorsReader(ActivationReader):
    """A .safetensors file, read through its memory map; the names are JSON in its metadata."""

    _DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16,
               "I32": np.int32, "I64": np.int64, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
               "U64": np.uint64, "BOOL": np.bool_}

    def __enter__(self):
        from safetensors import safe_open

        self._opened = safe_open(str(self.path), framework="numpy")
        self._file = self._opened.__enter__()
        self._keys = set(self._file.keys())
        return self

    def __exit__(self, *exc):
        self._opened.__exit__(*exc)

    def _layout(self, key: str, expected: str):
        if key not in self._keys:
            return None
        tensor = self._file.get_slice(key)
        name = tensor.get_dtype()
        if name not in self._DTYPES:
            raise DatasetFileError(self.path, f"{key} has dtype {name}, expected {expected}")
        return tuple(tensor.get_shape()), np.dtype(self._DTYPES[name])

    def activations_layout(self):
        layout = self._layout(ACTIVATIONS, "float16, float32 or float64")
        if layout is None:
            raise DatasetFileError(self.path, f"no '{ACTIVATIONS}' tensor (tensors: {', '.join(sorted(self._keys)) or 'none'})")
        self.shape, self.dtype = layout
        return layout

    def factors_layout(self):
        return self._layout(FACTORS, "integers")

    def factors(self):
        return self._file.get_tensor(FACTORS)

    def names(self):
        raw = (self._file.metadata() or {}).get(FACTOR_NAMES)
        if raw is None:
            return None
        try:
            names = json.loads(raw)
        except ValueError:
            names = None
        if not isinstance(names, list):
            raise DatasetFileError(self.path, f"{FACTOR_NAMES} in the metadata is not a JSON list of strings")
        return names

    def slab(self, lo, hi):
        return self._file.get_slice(ACTIVATIONS)[lo:hi]

    @staticmethod
    def write(path, arrays, names):
        from safetensors.numpy import save_file

        tensors = {key: np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
                   for key, value in arrays.items()}
        save_file(tensors, str(path), metadata=None if names is None else {FACTOR_NAMES: json.dumps(list(names))})


#: Each format's reader, in the order of ``config.vocabulary.ACTIVATION_SUFFIXES`` (.h5 and .hdf5 alike).
SUFFIX_FORMATS = ("npz", "npy", "hdf5", "hdf5", "safetensors")
FORMATS: dict[str, type[ActivationReader]] = {"npz": NpzReader, "npy": NpyReader, "hdf5": H5Reader,
                                              "safetensors": SafetensorsReader}
