"""Representational stability: does sparsification keep the features the SAE found, or replace them?

Two views of the question "how much does sparsification distort the features the network uses?":

- *feature survival* (:func:`feature_survival`): match the decoder directions of two dictionaries one to
  one (Hungarian matching on cosine) and count how many of the reference's directions reappear. Applied
  to the dense stage after its first epoch against a later, sparser stage it says which features
  survived; applied to two seeds' dictionaries trained alike it is the baseline, the churn that has
  nothing to do with sparsity (Paulo & Belrose 2025, "Sparse autoencoders trained on the same data learn
  different features", who align seeds this way and find that only part of the latents are shared).
- *linear CKA* (:func:`linear_cka`, Kornblith et al. 2019, "Similarity of neural network representations
  revisited"): how alike two codes of the same samples are as whole representations, invariant to
  rotations and isotropic scaling of either, so it needs no neuron-to-neuron correspondence.

numpy and scipy only; deterministic, and free of NaN or warnings on dead (all-zero) neurons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from collapse_tui.metrics.disentanglement import _as_2d

__all__ = ["FEATURE_MATCH_COSINE", "SURVIVAL_MAX_LIVE", "Survival", "SurvivalTooLarge", "feature_survival",
           "linear_cka"]

# A reference direction survives when its Hungarian partner's cosine is at least this; the cutoff
# Paulo & Belrose (2025) use to call a latent shared between two seeds' SAEs.
FEATURE_MATCH_COSINE = 0.7

# Survival is not computed when either side has more live neurons than this: its cosine matrix (float64,
# live x live) grows as the square of the dictionary and its Hungarian matching faster (the cube at worst),
# and the engine measures it at every evaluation. Measured once each (scipy 1.17, two dictionaries of n directions
# in 64 dimensions, half of them the other's slightly turned, on a 2-core CPU shared with ~4x its load in
# other work): at n = 4,096 the matrix is 128 MiB and the matching took 27 s; at 8,192, 512 MiB and 98 s,
# too long to repeat every epoch. At 100,000 neurons the matrix alone would be 80 GB.
SURVIVAL_MAX_LIVE = 4096


class SurvivalTooLarge(ValueError):
    """Feature survival asked of dictionaries with more live neurons than :data:`SURVIVAL_MAX_LIVE`: not
    computed (nothing of its size is allocated); the message says why, for the report of the metric."""

    def __init__(self, n_reference: int, n_later: int):
        super().__init__(f"feature survival is not computed above {SURVIVAL_MAX_LIVE:,} live neurons on a side "
                         f"({n_reference:,} and {n_later:,} here): its cosine matrix and matching grow as the "
                         "square and the cube of the dictionary")
        self.n_reference, self.n_later = n_reference, n_later


def _finite(name: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite (NaN or inf found)")
    return a


def _unit_rows(name: str, w) -> tuple[np.ndarray, np.ndarray]:
    """``w`` (neurons x input_dim) with rows scaled to unit length in float64, and which rows have a
    direction (norm > 0); an all-zero row stays zero."""
    w = _finite(name, _as_2d(name, w, allow_1d=False)).astype(np.float64, copy=False)
    norms = np.linalg.norm(w, axis=1)
    has = norms > 0
    unit = np.divide(w, norms[:, None], out=np.zeros_like(w), where=has[:, None])
    return unit, has


def _mask(name: str, mask, size: int) -> np.ndarray:
    if mask is None:
        return np.ones(size, dtype=bool)
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != (size,):
        raise ValueError(f"{name} must be a boolean array of shape ({size},) (one entry per neuron), "
                         f"got dtype {m.dtype} and shape {m.shape}")
    return m


@dataclass(frozen=True)
class Survival:
    """Which of the reference dictionary's directions reappear in a later (or another seed's) dictionary.

    ``pairs`` (p, 2): the Hungarian assignment as (reference row, later row), indices into the full
    arrays passed in, sorted by reference row; ``cosine`` (p,): each pair's cosine; ``matched`` (p,):
    ``cosine >= threshold``. Only rows that are considered (their ``alive`` entry True, or all rows) and
    have a direction (not all zero) take part in the assignment, so p = min of those counts on each side.
    ``best_cosine`` (n_reference,): for each considered reference row, its best cosine with any considered
    later row, one-to-one or not (0 for a reference row without a direction, or when no later row has one).
    ``n_reference`` and ``n_later``: the considered rows on each side, all-zero rows included: the
    denominators of :attr:`share_matched` and :attr:`share_of_later`.
    """

    pairs: np.ndarray
    cosine: np.ndarray
    matched: np.ndarray
    best_cosine: np.ndarray
    n_reference: int
    n_later: int
    threshold: float

    @property
    def n_matched(self) -> int:
        return int(self.matched.sum())

    @property
    def share_matched(self) -> float:
        """Matched pairs over the considered reference rows (all-zero ones included, which never match);
        0.0 when no reference row is considered."""
        return self.n_matched / self.n_reference if self.n_reference else 0.0

    @property
    def share_of_later(self) -> float:
        """Matched pairs over the considered later rows: the part of the later dictionary that continues
        the reference (1 - it is new or moved). 0.0 when no later row is considered."""
        return self.n_matched / self.n_later if self.n_later else 0.0

    @property
    def mean_max_cosine(self) -> float:
        """Mean over the considered reference rows of :attr:`best_cosine` (not one-to-one: two reference
        rows may share their best later row); 0.0 when no reference row is considered."""
        return float(self.best_cosine.mean()) if self.best_cosine.size else 0.0


def feature_survival(reference, later, cosine: float = FEATURE_MATCH_COSINE, reference_alive=None,
                     later_alive=None) -> Survival:
    """Hungarian matching of the decoder directions of ``reference`` to those of ``later``.

    ``reference`` and ``later`` are dictionaries as (neurons x input_dim) arrays, one decoder direction
    per row (neuron counts may differ, input_dim must agree). Rows are normalised here; the cosine is
    signed, since an SAE's activations are non-negative and a direction and its opposite are different
    features. An all-zero row is a neuron with no direction: it takes no part in the assignment and
    matches nothing. ``reference_alive`` / ``later_alive`` (boolean, one entry per row) restrict each side
    to live neurons; the rows left out count nowhere, not even in the denominators.

    The assignment (scipy's ``linear_sum_assignment``, maximising the summed cosine) pairs each reference
    row with at most one later row and vice versa; a reference row *survives* when its partner's cosine
    is >= ``cosine``. ``share_matched`` is the survivors over the considered reference rows.

    The baseline is the same function on two seeds' dictionaries trained with the same settings (Paulo &
    Belrose 2025 align seeds this way, by Hungarian matching on latent cosine similarity, and call a
    latent shared above 0.7): a drop in survival along sparsification is only a finding beyond that churn.

    Raises :class:`SurvivalTooLarge` when either side has more than :data:`SURVIVAL_MAX_LIVE` live rows
    with a direction, before anything of the matrix's size is allocated.
    """
    try:
        threshold = float(cosine)
    except (TypeError, ValueError):
        raise ValueError(f"cosine must be a number in [-1, 1], got {cosine!r}") from None
    if isinstance(cosine, bool) or not -1.0 <= threshold <= 1.0:
        raise ValueError(f"cosine must be a number in [-1, 1], got {cosine!r}")
    ref, ref_has = _unit_rows("reference", reference)
    lat, lat_has = _unit_rows("later", later)
    if ref.shape[1] != lat.shape[1]:
        raise ValueError(f"reference and later must have the same input_dim (columns), got "
                         f"{ref.shape[1]} in reference and {lat.shape[1]} in later")
    ref_keep = _mask("reference_alive", reference_alive, ref.shape[0])
    lat_keep = _mask("later_alive", later_alive, lat.shape[0])

    ref_rows = np.flatnonzero(ref_keep & ref_has)
    lat_rows = np.flatnonzero(lat_keep & lat_has)
    if max(ref_rows.size, lat_rows.size) > SURVIVAL_MAX_LIVE:
        raise SurvivalTooLarge(int(ref_rows.size), int(lat_rows.size))
    # best_cosine follows the considered reference rows in order; rows without a direction keep 0.
    considered = np.flatnonzero(ref_keep)
    best = np.zeros(considered.size)
    if ref_rows.size and lat_rows.size:
        # One matrix, no copy of it: the smaller side as its rows (scipy would otherwise solve a transposed
        # copy), clipped and negated in place (maximize=True would negate a copy), so the matching minimises.
        tall = ref_rows.size > lat_rows.size
        cos = lat[lat_rows] @ ref[ref_rows].T if tall else ref[ref_rows] @ lat[lat_rows].T
        np.clip(cos, -1.0, 1.0, out=cos)
        best[np.searchsorted(considered, ref_rows)] = cos.max(axis=0 if tall else 1)
        np.negative(cos, out=cos)
        rows, cols = linear_sum_assignment(cos)
        pair_cos = -cos[rows, cols]
        r, c = (cols, rows) if tall else (rows, cols)
        order = np.argsort(r, kind="stable")  # by reference row
        r, c, pair_cos = r[order], c[order], pair_cos[order]
        pairs = np.stack([ref_rows[r], lat_rows[c]], axis=1).astype(np.int64)
    else:
        pairs = np.zeros((0, 2), dtype=np.int64)
        pair_cos = np.zeros(0)
    return Survival(pairs=pairs, cosine=pair_cos, matched=pair_cos >= threshold, best_cosine=best,
                    n_reference=int(considered.size), n_later=int(lat_keep.sum()), threshold=threshold)


# ------------------------------------------------------------------------------------------ linear CKA

def _centred(name: str, a) -> np.ndarray:
    """Columns centred in float64; a constant column (dead neuron included) becomes exactly 0 rather than
    its mean's rounding residue, then the whole array is scaled to unit Frobenius norm (CKA is scale
    invariant; this keeps the products of large or tiny activations in range)."""
    a = _finite(name, _as_2d(name, a)).astype(np.float64, copy=False)
    const = (a == a[:1]).all(axis=0)
    c = np.where(const[None, :], 0.0, a - a.mean(axis=0))
    norm = np.linalg.norm(c)
    return c / norm if norm > 0 else c


def linear_cka(x, y, method: str = "auto") -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) of two representations of the same samples,
    in [0, 1]: 1 when one is an orthogonal transform and isotropic scaling of the other.

    ``x`` (samples x p) and ``y`` (samples x q), p and q free, rows paired by sample. After centring each
    column, CKA = ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) (``method="features"``, p x q products), equal to
    <XX', YY'>_F / (||XX'||_F ||YY'||_F) on the centred Gram matrices (``method="gram"``, samples x
    samples); ``"auto"`` takes the cheaper, the Gram form when there are fewer samples than features.
    A representation with no variance (every column constant, e.g. all neurons dead) gives 0.0, not NaN.
    Comparing an SAE's code before and after sparsification asks whether the samples keep their geometry
    even when the neurons that carry it changed; it needs no matching of neurons, unlike
    :func:`feature_survival`.
    """
    if method not in ("auto", "features", "gram"):
        raise ValueError(f"method must be 'auto', 'features' or 'gram', got {method!r}")
    xc = _centred("x", x)
    yc = _centred("y", y)
    if xc.shape[0] != yc.shape[0]:
        raise ValueError(f"x and y must hold the same samples (rows), got {xc.shape[0]} in x and "
                         f"{yc.shape[0]} in y")
    n, p, q = xc.shape[0], xc.shape[1], yc.shape[1]
    if method == "auto":
        # multiply-adds of the three products in each form
        method = "gram" if n * n * (p + q) < n * (p * q + p * p + q * q) else "features"
    if method == "features":
        cross = np.sum((yc.T @ xc) ** 2)
        den = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    else:
        kx = xc @ xc.T
        ky = yc @ yc.T
        cross = np.sum(kx * ky)
        den = np.linalg.norm(kx) * np.linalg.norm(ky)
    if den <= 0:
        return 0.0
    return float(np.clip(cross / den, 0.0, 1.0))
