"""A run's decoder directions at each evaluation mark (``decoders.npz``), and the codes of its first mark on
the first evaluation inputs: what representational stability is measured from (feature survival against
the first mark, linear CKA against its codes), kept on disk so that a resumed run measures against the
same reference and a sweep's table can match one seed's dictionary against another's.

Arrays (M marks, m neurons, d input units, r reference inputs):

- ``epochs``, ``updates`` (M,) int64: when each mark was taken, increasing;
- ``decoders`` (M, m, d) float16: the decoder's rows (unit norm, so float16's 3 digits keep cosines to
  about 1e-3), 0.25 MB a mark for 500 x 256;
- ``alive`` (M, m) bool: which neurons fired on the evaluation set at each mark;
- ``reference_acts`` (r, m) float16: the first mark's codes on the first r evaluation inputs.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapse_tui.store import layout
from collapse_tui.store.files import load_npz_bounded, write_atomic

__all__ = ["DecoderMarks", "read_decoders", "write_decoders"]

_KEYS = ("epochs", "updates", "decoders", "alive", "reference_acts")
# A run's decoder file holds at most this many bytes of arrays (a damaged header could claim any size).
MAX_BYTES = 2 * 2**30


@dataclass
class DecoderMarks:
    epochs: np.ndarray
    updates: np.ndarray
    decoders: np.ndarray
    alive: np.ndarray
    reference_acts: np.ndarray

    def upto(self, epoch: int) -> "DecoderMarks":
        """The marks taken at or before ``epoch`` (what a run resumed from that epoch had measured)."""
        keep = self.epochs <= epoch
        return DecoderMarks(self.epochs[keep], self.updates[keep], self.decoders[keep], self.alive[keep],
                            self.reference_acts)

    def then(self, epoch: int, updates: int, decoder: np.ndarray, alive: np.ndarray) -> "DecoderMarks":
        """These marks and one more, taken after the last."""
        return DecoderMarks(np.append(self.epochs, epoch), np.append(self.updates, updates),
                            np.concatenate([self.decoders, np.asarray(decoder, np.float16)[None]]),
                            np.concatenate([self.alive, np.asarray(alive, bool)[None]]), self.reference_acts)


def write_decoders(run_dir: str | Path, marks: DecoderMarks) -> Path:
    """Write ``marks`` into ``<run_dir>/decoders.npz`` atomically (the whole file each time: a mark adds a
    quarter of a megabyte, and a reader never sees half of one)."""
    buffer = io.BytesIO()
    np.savez(buffer, epochs=np.asarray(marks.epochs, np.int64), updates=np.asarray(marks.updates, np.int64),
             decoders=np.asarray(marks.decoders, np.float16), alive=np.asarray(marks.alive, bool),
             reference_acts=np.asarray(marks.reference_acts, np.float16))
    path = layout.run_file(run_dir, layout.DECODERS_FILE)
    write_atomic(path, buffer.getvalue())
    return path


def _problem(arrays: dict[str, np.ndarray]) -> str | None:
    missing = [key for key in _KEYS if key not in arrays]
    if missing:
        return f"no {missing[0]!r} array"
    epochs, updates, decoders = arrays["epochs"], arrays["updates"], arrays["decoders"]
    acts, alive = arrays["reference_acts"], arrays["alive"]
    if epochs.ndim != 1 or updates.shape != epochs.shape or epochs.dtype.kind not in "iu" \
            or updates.dtype.kind not in "iu":
        return "epochs and updates must be integer vectors of one length"
    if decoders.ndim != 3 or decoders.shape[0] != epochs.shape[0] or decoders.dtype.kind != "f":
        return "decoders must be a float (marks, neurons, inputs) array with one slice a mark"
    m = decoders.shape[1]
    if acts.ndim != 2 or acts.shape[1] != m or acts.dtype.kind != "f":
        return "reference_acts must be a float (inputs, neurons) array"
    if alive.shape != decoders.shape[:2] or alive.dtype != bool:
        return "alive must be a bool (marks, neurons) array"
    if epochs.size and (np.diff(epochs) <= 0).any():
        return "epochs must increase"
    if not (np.isfinite(decoders).all() and np.isfinite(acts).all()):
        return "non-finite values"
    return None


def read_decoders(run_dir: str | Path) -> DecoderMarks | None:
    """The marks :func:`write_decoders` wrote; None if the run has none (older, or no evaluation yet);
    ValueError naming the file and what is wrong for anything else (truncated, another kind of file,
    arrays missing or of the wrong shape or type, non-finite values, not a regular file)."""
    path = layout.run_file(run_dir, layout.DECODERS_FILE)
    if not path.exists():
        return None
    if not path.is_file():
        raise ValueError(f"{path}: unreadable decoder marks (not a regular file)")
    try:
        arrays = load_npz_bounded(path, MAX_BYTES, _KEYS)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError) as exc:
        raise ValueError(f"{path}: unreadable decoder marks ({type(exc).__name__}: {exc})") from None
    problem = _problem(arrays)
    if problem:
        raise ValueError(f"{path}: unreadable decoder marks ({problem})")
    return DecoderMarks(**{key: arrays[key] for key in _KEYS})
