"""A run's per-neuron profiles (``neurons.npz``), written by its final evaluation for the neuron inspector,
and read back checked: a truncated or altered file, or arrays of the wrong shape or type, is one line
saying so, never an exception in the reader or in whatever draws the profiles.

Arrays (m neurons, F factors, n evaluation samples, ``top`` examples a neuron, k neighbours):

- ``factors`` (F,): the factors' names; ``eval_indices`` (n,): each evaluation sample's index in its
  dataset, from which its image is rendered again (images are not stored);
- ``frequency``, ``max_activation``, ``mean_activation`` (m,); ``dead`` (m,) as the evaluation counts it;
- ``top_examples`` (m, top): rows of the evaluation set, largest activation first, -1 padding;
  ``top_values`` (m, top);
- ``nmi`` (m, F): normalised mutual information with each factor; ``best_factor`` (m,);
- ``tuning/<factor>`` (m, values): mean activation at each value of the factor, and
  ``tuning_values/<factor>`` those values (indices into the factor's grid);
- ``neighbours``, ``neighbour_cosines`` (m, k): the neurons whose decoder directions are nearest
  (by cosine), nearest first, -1 padding;
- ``auroc`` (m,): where the neuron is the best single detector of some factor's value, its highest
  such AUROC (NaN elsewhere), for the factor ``auroc_factor`` (index into ``factors``, -1 elsewhere) and
  its value ``auroc_value`` (-1 elsewhere); absent in runs written before it existed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from collapse_tui.store import layout
from collapse_tui.store.files import load_npz_bounded, write_atomic

__all__ = ["load_neurons", "neurons_problem", "read_neurons", "write_neurons"]

# A run's profiles hold at most this many bytes of arrays (a damaged header could claim any size).
MAX_BYTES = 2 * 2**30
_PER_NEURON = ("frequency", "max_activation", "mean_activation", "dead", "best_factor")
_TABLES = ("top_examples", "top_values", "nmi", "neighbours", "neighbour_cosines")
_REQUIRED = ("factors", "eval_indices", *_PER_NEURON, *_TABLES)
_AUROC = ("auroc", "auroc_factor", "auroc_value")
_INDICES = ("best_factor", "auroc_factor", "auroc_value")  # integer arrays: indices into factors and grids


def write_neurons(run_dir: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write a run's per-neuron profiles (the arrays the module describes), ``<run_dir>/neurons.npz``,
    atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = layout.run_file(run_dir, layout.NEURONS_FILE)
    write_atomic(path, buffer.getvalue())
    return path


def _numeric(a: np.ndarray) -> bool:
    return a.dtype.kind in "biuf"


def _integer(a: np.ndarray) -> bool:
    return a.dtype.kind in "iu"


def neurons_problem(arrays: dict[str, np.ndarray]) -> str | None:
    """What keeps ``arrays`` from being the profiles :func:`write_neurons` describes (a missing array, a
    shape or type that does not fit the others, an index out of range); None when they are."""
    missing = [key for key in _REQUIRED if key not in arrays]
    if missing:
        return f"no {missing[0]!r} array"
    factors, frequency = arrays["factors"], arrays["frequency"]
    if factors.ndim != 1 or factors.dtype.kind not in "US" or factors.size == 0:
        return "factors must be a non-empty vector of names"
    if arrays["eval_indices"].ndim != 1 or not _integer(arrays["eval_indices"]):
        return "eval_indices must be an integer vector"
    m, n_factors, n_eval = frequency.shape[0] if frequency.ndim == 1 else -1, factors.size, arrays["eval_indices"].size
    if m < 0:
        return "frequency must be a vector of one value a neuron"
    if any(key in arrays for key in _AUROC) and not all(key in arrays for key in _AUROC):
        return f"{', '.join(_AUROC)} come together or not at all"
    for key in _PER_NEURON + tuple(k for k in _AUROC if k in arrays):
        a, integer = arrays[key], key in _INDICES
        if a.shape != (m,) or not (_integer(a) if integer else _numeric(a)):
            return f"{key} must be {'an integer' if integer else 'a numeric'} vector of one value a neuron ({m})"
    for key in _TABLES:
        a = arrays[key]
        if a.ndim != 2 or a.shape[0] != m or not _numeric(a):
            return f"{key} must be a numeric table of one row a neuron ({m})"
    if arrays["nmi"].shape[1] != n_factors:
        return f"nmi must have one column a factor ({n_factors})"
    if arrays["top_values"].shape != arrays["top_examples"].shape or not _integer(arrays["top_examples"]):
        return "top_examples must be integer rows of the evaluation set, the shape of top_values"
    if arrays["neighbour_cosines"].shape != arrays["neighbours"].shape or not _integer(arrays["neighbours"]):
        return "neighbours must be integer neuron indices, the shape of neighbour_cosines"
    ranges = [("best_factor", 0, n_factors), ("top_examples", -1, n_eval), ("neighbours", -1, m)]
    if "auroc_factor" in arrays:
        ranges.append(("auroc_factor", -1, n_factors))
    for key, low, high in ranges:
        a = arrays[key]
        if a.size and (int(a.min()) < low or int(a.max()) >= high):
            return f"{key} holds an index outside {low}..{high - 1}"
    for name in (str(f) for f in factors):
        tuning, values = arrays.get(f"tuning/{name}"), arrays.get(f"tuning_values/{name}")
        if tuning is None or values is None:
            return f"no tuning curve of factor {name!r}"
        if values.ndim != 1 or tuning.shape != (m, values.size) or not (_numeric(tuning) and _numeric(values)):
            return f"tuning/{name} must be a numeric (neurons, values) table over tuning_values/{name}"
    return None


def _read(path: Path) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The arrays at ``path`` checked, or what is wrong with them (never raises)."""
    try:
        if not path.is_file():
            raise ValueError("not a regular file")
        arrays = load_npz_bounded(path, MAX_BYTES)
        problem = neurons_problem(arrays)
    # A damaged archive fails in any of its layers: the zip (BadZipFile, KeyError), its compression
    # (zlib.error), the arrays' headers (ValueError, EOFError), the disk (OSError), a claimed size.
    except Exception as exc:  # noqa: BLE001 - whatever the file did, the reader reports it in one line
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        return None, " ".join(problem.split())  # one line, whatever the exception's text held
    return arrays, None


def load_neurons(run_dir: str | Path) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The profiles :func:`write_neurons` wrote, and None; ``(None, None)`` if the run has none (not
    finished, or older); ``(None, "unreadable: <file>: <problem>")`` for anything else: a truncated or
    altered file, another kind of file, arrays missing or of the wrong shape or type. Never raises."""
    path = layout.run_file(run_dir, layout.NEURONS_FILE)
    if not path.exists():
        return None, None
    profiles, problem = _read(path)
    return profiles, None if problem is None else f"unreadable: {path}: {problem}"


def read_neurons(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """As :func:`load_neurons`, the problem raised: the profiles, None if the run has none, ValueError
    (one line naming the file) if they cannot be read."""
    path = layout.run_file(run_dir, layout.NEURONS_FILE)
    if not path.exists():
        return None
    profiles, problem = _read(path)
    if problem is not None:
        raise ValueError(f"{path}: unreadable neuron profiles ({problem})")
    return profiles
