"""An activations file's training rows left on disk and read as training uses them: a batch of rows at a
time, converted to float32 then, so a file larger than memory trains an SAE (``data.streaming``).

A ``.npy`` file is read with one positioned read (``os.preadv``) per run of consecutive rows into the
batch's own buffer: nothing of the file is mapped into the process, so its resident memory stays that of
one batch however large the file, and the operating system's page cache (not the process) holds what was
read recently. An ``.h5`` file is read through its chunks (``ActivationFile.rows``). Formats that can
only be read forwards (``.npz``, whose members may be deflated) or whole are never streamed.
"""

from __future__ import annotations

import os

import numpy as np

from collapse_tui.data.activation_formats import ACTIVATIONS
from collapse_tui.data.base import DatasetFileError

BLOCK_ROWS = 65536  # rows per block of a pass over every training row (the normalisation's statistics)


class TrainingRows:
    """Rows ``indices`` of the activations file ``file`` (an opened, checked
    :class:`~collapse_tui.data.activations.ActivationFile`), in that order: the training set of a run, as
    an (n, D) float32 array whose rows are read on request (``take``, ``blocks``), never held whole."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, file, indices):
        self.file = file
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1 or self.indices.size == 0:
            raise ValueError("the training rows must be a non-empty vector of row indices")
        self.shape = (int(self.indices.size), int(file.dim))
        reader = file._reader
        self._npy = getattr(reader, "offset", None) is not None and file.format == "npy"
        self._fd: int | None = None
        if self._npy:
            self._offset, self._file_dtype = int(reader.offset), np.dtype(reader.dtype)
            self._row_bytes = self.shape[1] * self._file_dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes held in memory: the row indices, not the rows."""
        return int(self.indices.nbytes)

    def __repr__(self) -> str:
        return f"<TrainingRows {self.shape[0]:,} × {self.shape[1]:,} of {self.file.path.name}, read as used>"

    def take(self, positions) -> np.ndarray:
        """float32 (len(positions), D): the training rows at ``positions`` (0..n-1), in that order."""
        rows = self.indices[np.asarray(positions, dtype=np.int64)]
        return self._read(rows) if self._npy else self.file.rows(rows)

    def blocks(self, size: int = BLOCK_ROWS):
        """Every training row once, in storage order, ``size`` at a time (float32 blocks)."""
        ordered = np.sort(self.indices)
        for lo in range(0, ordered.size, size):
            rows = ordered[lo:lo + size]
            yield self._read(rows) if self._npy else self.file.rows(rows)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """Rows of the .npy file (any order, repeats allowed) by positioned reads of each run of
        consecutive rows, converted to float32."""
        st = os.stat(self.file.path)
        if (st.st_size, st.st_mtime_ns) != self.file._stamp:  # never rows of another file under its name
            raise DatasetFileError(self.file.path, f"{ACTIVATIONS}: the file changed since it was opened")
        if self._fd is None:
            self._fd = os.open(self.file.path, os.O_RDONLY)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        wanted, where = np.unique(ordered, return_inverse=True)
        buffer = np.empty((wanted.size, self.shape[1]), dtype=self._file_dtype)
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [wanted.size]))
        for i, j in zip(starts.tolist(), ends.tolist()):
            view = memoryview(buffer[i:j]).cast("B")
            got = os.preadv(self._fd, [view], self._offset + int(wanted[i]) * self._row_bytes)
            if got != view.nbytes:  # the file shrank since it was opened and checked
                raise DatasetFileError(self.file.path, f"{ACTIVATIONS} is truncated before row {int(wanted[j - 1])}")
        out = np.empty((rows.size, self.shape[1]), dtype=np.float32)
        out[order] = buffer[where.reshape(-1)]
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to close with
            pass

    def __getstate__(self):  # a copy in another process opens the file again
        state = dict(self.__dict__)
        state["_fd"] = None
        return state
