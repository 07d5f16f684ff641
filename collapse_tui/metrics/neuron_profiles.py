"""What each SAE neuron responds to, for inspecting neurons one by one: how often and how strongly it
fires, the evaluation inputs it fires on most, and its tuning curves (its mean activation at each value
of each ground-truth factor). Arrays are samples x units, as everywhere in :mod:`collapse_tui.metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from collapse_tui.metrics.neurons import _acts

__all__ = ["decoder_neighbours", "neuron_profiles"]


def neuron_profiles(acts, factors, top: int = 16) -> dict[str, Any]:
    """Per-neuron statistics of ``acts`` (n x m) on samples whose ground-truth factor values (indices,
    n x F) are ``factors``:

    - ``frequency`` (m,): the fraction of samples on which the neuron fires (activation > 0);
    - ``max_activation``, ``mean_activation`` (m,): over all samples;
    - ``top_examples`` (m, top): the rows of its ``top`` largest activations, largest first, only where
      it fired (-1 pads a neuron that fired on fewer rows); ``top_values`` (m, top) those activations
      (0 where padded);
    - ``tuning``: one array per factor, (m, values): the neuron's mean activation over the samples at
      each value the factor takes in ``factors`` (``tuning_values``: those values, ascending).
    """
    acts = _acts(acts)
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[0] != acts.shape[0]:
        raise ValueError(f"factors must be samples x factors with {acts.shape[0]} rows, got shape {factors.shape}")
    top = int(top)
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    n, m = acts.shape
    keep = min(top, n)
    # The `keep` largest of each column, then ordered: a partition is linear in n, a full sort is not.
    rows = np.argpartition(-acts, keep - 1, axis=0)[:keep] if keep < n else np.tile(np.arange(n)[:, None], (1, m))
    values = np.take_along_axis(acts, rows, axis=0)
    order = np.argsort(-values, axis=0, kind="stable")
    rows, values = np.take_along_axis(rows, order, axis=0).T, np.take_along_axis(values, order, axis=0).T
    fired = values > 0
    top_examples = np.full((m, top), -1, dtype=np.int32)
    top_values = np.zeros((m, top), dtype=np.float32)
    top_examples[:, :keep] = np.where(fired, rows, -1)
    top_values[:, :keep] = np.where(fired, values, 0.0)
    tuning, tuning_values = [], []
    for j in range(factors.shape[1]):
        levels, inverse = np.unique(factors[:, j], return_inverse=True)
        sums = np.zeros((len(levels), m))
        np.add.at(sums, inverse, acts)
        counts = np.bincount(inverse, minlength=len(levels)).astype(np.float64)
        tuning.append((sums / counts[:, None]).T.astype(np.float32))
        tuning_values.append(levels)
    return {
        "frequency": (acts > 0).mean(axis=0).astype(np.float32),
        "max_activation": acts.max(axis=0).astype(np.float32) if n else np.zeros(m, np.float32),
        "mean_activation": acts.mean(axis=0).astype(np.float32) if n else np.zeros(m, np.float32),
        "top_examples": top_examples,
        "top_values": top_values,
        "tuning": tuning,
        "tuning_values": tuning_values,
    }


# Cosines held at once while finding neighbours (32 MiB of float64): the rows of a block are this many over the
# number of neurons, so memory stays linear in the dictionary's size (its whole matrix at 100,000 neurons
# would be 80 GB).
_NEIGHBOUR_BLOCK = 1 << 22


def _most_aligned(cos: np.ndarray, keep: int) -> np.ndarray:
    """The column indices of each row's ``keep`` largest values, largest first and ties to the lower index:
    exactly the first ``keep`` of a stable argsort of ``-cos``, at the cost of a partition where ``keep`` is
    small against the row."""
    if 4 * keep >= cos.shape[1] or np.isnan(cos).any():  # then a full sort costs no more (and ranks NaN last)
        return np.argsort(-cos, axis=1, kind="stable")[:, :keep]
    part = np.argpartition(-cos, keep - 1, axis=1)[:, :keep]
    kth = np.take_along_axis(cos, part, axis=1).min(axis=1, keepdims=True)  # each row's keep-th largest
    chosen = cos >= kth
    crowded = np.flatnonzero(chosen.sum(axis=1) > keep)  # more ties at the keep-th value than places
    if crowded.size:
        ties = cos[crowded] == kth[crowded]
        room = keep - (cos[crowded] > kth[crowded]).sum(axis=1, keepdims=True)
        chosen[crowded] = (cos[crowded] > kth[crowded]) | (ties & (np.cumsum(ties, axis=1) <= room))
    cols = np.nonzero(chosen)[1].reshape(cos.shape[0], keep)  # ascending index within each row
    order = np.argsort(-np.take_along_axis(cos, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


def decoder_neighbours(decoder, count: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """For each dictionary direction (a row of ``decoder``, neurons x inputs), the ``count`` others most
    aligned with it by cosine, most aligned first (ties to the lower index): ``(indices, cosines)``, each
    (m, count), padded with -1 and NaN when there are fewer others. Near-duplicate directions are the trace
    of feature splitting and absorption; a zero row has cosine 0 with every other. The cosines are taken a
    block of rows at a time (:data:`_NEIGHBOUR_BLOCK`), never as one m x m matrix."""
    w = np.asarray(decoder, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"decoder must be neurons x inputs, got shape {w.shape}")
    m = w.shape[0]
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    unit = np.divide(w, norms, out=np.zeros_like(w), where=norms > 0)
    keep = min(int(count), m - 1)
    indices = np.full((m, int(count)), -1, dtype=np.int32)
    cosines = np.full((m, int(count)), np.nan, dtype=np.float32)
    if keep <= 0:
        return indices, cosines
    rows = max(1, _NEIGHBOUR_BLOCK // m)
    for start in range(0, m, rows):
        stop = min(m, start + rows)
        cos = unit[start:stop] @ unit.T
        cos[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # never its own neighbour
        order = _most_aligned(cos, keep)
        indices[start:stop, :keep] = order
        cosines[start:stop, :keep] = np.take_along_axis(cos, order, axis=1)
    return indices, cosines
