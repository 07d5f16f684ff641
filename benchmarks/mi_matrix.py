"""Time of ``mutual_info_matrix`` against disentanglement_lib's per-pair loop, on Top-k-like SAE codes.

disentanglement_lib discretises the codes, then calls ``sklearn.metrics.mutual_info_score(factor, code)``
for every (code column, factor column) pair (``utils.discrete_mutual_info``). This script builds codes
shaped like a Top-k SAE's (10,000 samples x 500 neurons, about 50 positive entries a row, skewed values
that follow some factors, a third of the neurons dead), then times in interleaved rounds, so that a
neighbour's load hits every variant alike:

* ``mutual_info_matrix`` (its discretisation included),
* the previous vectorised version (one bincount over all samples x units per factor), kept here only
  for comparison,
* the per-pair sklearn reference: :func:`discretize` (bit-identical to disentanglement_lib's
  ``np.histogram`` / ``np.digitize``) then the loop over pairs; its time includes the discretisation,
  and the discretisation's own median is printed beside it.

It prints the median seconds of each, the ratios, and checks that all agree to 1e-9 (absolute).

    python benchmarks/mi_matrix.py [--samples 10000] [--neurons 500] [--k 50] [--n-bins 20]
                                   [--repeats 5] [--dataset dsprites|shapes3d|all]

Needs scikit-learn for the reference (not a dependency of the project: ``pip install scikit-learn``);
without it only the two numpy versions are compared. Timings on a shared machine are noisy: read the
medians, and rerun when another job competes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from collapse_tui.metrics import discretize, mutual_info_matrix
from collapse_tui.metrics.disentanglement import _labels
from synthetic import GRIDS, factors_and_features  # noqa: E402 - beside this script

try:
    from sklearn.metrics import mutual_info_score
except ImportError:  # the reference is optional: the project itself never needs scikit-learn
    mutual_info_score = None

TARGET = 50  # mutual_info_matrix should take at most 1/TARGET of the per-pair reference's time
TOLERANCE = 1e-9


def make_codes(samples: int, neurons: int, k: int, dataset: str, seed: int = 0):
    """(Top-k codes as float32, integer factors): realistic sparsity and skew, random content."""
    rng = np.random.default_rng(seed)
    # Smooth features of the factors drive the pre-activations, so winning neurons (and how strongly
    # they fire) follow the factors; a spread of biases leaves some neurons never in the top k: dead.
    factors, feats = factors_and_features(rng, samples, dataset, per_factor=4)
    pre = feats @ rng.normal(size=(feats.shape[1], neurons)) + 0.5 * rng.normal(size=(samples, neurons))
    pre += rng.normal(0.0, 3.0, size=neurons)
    top = np.argpartition(-pre, k - 1, axis=1)[:, :k]
    rows = np.arange(samples)[:, None]
    codes = np.zeros((samples, neurons), dtype=np.float32)
    # Log-normal-like magnitudes: a few large activations, many small ones.
    winners = pre[rows, top]
    codes[rows, top] = np.exp(0.5 * (winners - winners.mean(axis=1, keepdims=True))).astype(np.float32)
    return codes, factors


def previous_mutual_info_matrix(codes, factors, n_bins: int = 20) -> np.ndarray:
    """The version before the sparse one: a bincount over combined (unit, bin, label) indices of all entries."""
    n, units = codes.shape
    bins = discretize(codes, n_bins) - 1
    cell = bins + (np.arange(units, dtype=np.int64) * n_bins)[None, :]
    code_counts = np.bincount(cell.ravel(), minlength=units * n_bins).reshape(units, n_bins)
    log_n = np.log(n)
    mi = np.zeros((units, factors.shape[1]))
    for j in range(factors.shape[1]):
        labels, v = _labels(factors[:, j])
        if v == 1:
            continue
        joint = np.bincount((cell * v + labels[:, None]).ravel(), minlength=units * n_bins * v)
        joint = joint.reshape(units, n_bins, v)
        factor_counts = np.bincount(labels, minlength=v)
        u, b, f = np.nonzero(joint)
        n_cf = joint[u, b, f].astype(np.float64)
        terms = n_cf / n * (np.log(n_cf) + log_n - np.log(code_counts[u, b]) - np.log(factor_counts[f]))
        mi[:, j] = np.bincount(u, weights=terms, minlength=units)
    return np.maximum(mi, 0.0)


def per_pair_reference(codes, factors, n_bins: int = 20) -> np.ndarray:
    """disentanglement_lib's discrete_mutual_info on its (columns x samples) layout, after discretize."""
    mus = np.ascontiguousarray((discretize(codes, n_bins)).T)
    ys = np.ascontiguousarray(factors.T)
    m = np.zeros((mus.shape[0], ys.shape[0]))
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            m[i, j] = mutual_info_score(ys[j, :], mus[i, :])
    return m


def interleaved_medians(variants: dict, repeats: int) -> dict:
    """Median seconds of each variant, over ``repeats`` rounds that run every variant once."""
    times = {name: [] for name in variants}
    for r in range(repeats):
        names = list(variants)
        names = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
        for name in names:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def run(dataset: str, args) -> None:
    codes, factors = make_codes(args.samples, args.neurons, args.k, dataset)
    nb = args.n_bins
    dead = float((codes.max(axis=0) == 0).mean())
    l0 = float((codes > 0).sum(axis=1).mean())
    print(f"{args.samples:,} samples x {args.neurons} neurons, Top-k k={args.k} (L0 {l0:.1f}, dead {dead:.0%}), "
          f"{dataset} factors {GRIDS[dataset]}, n_bins {nb}; {os.cpu_count()} CPUs seen; "
          f"median of {args.repeats} interleaved rounds (shared machine: noisy)")

    variants = {
        "mutual_info_matrix": lambda: mutual_info_matrix(codes, factors, nb),
        "previous vectorised version": lambda: previous_mutual_info_matrix(codes, factors, nb),
    }
    if mutual_info_score is not None:
        variants["discretize alone"] = lambda: discretize(codes, nb)
        variants["per-pair sklearn (incl. discretize)"] = lambda: per_pair_reference(codes, factors, nb)

    # Warm-up and the agreement check, on the values each variant returns.
    mi = mutual_info_matrix(codes, factors, nb)
    references = {"previous vectorised version": previous_mutual_info_matrix(codes, factors, nb)}
    if mutual_info_score is not None:
        references["per-pair sklearn"] = per_pair_reference(codes, factors, nb)
    diffs = {name: float(np.abs(mi - ref).max()) for name, ref in references.items()}

    medians = interleaved_medians(variants, args.repeats)
    width = max(map(len, medians))
    new = medians["mutual_info_matrix"]
    for name, s in medians.items():
        note = "" if name == "mutual_info_matrix" else f"   ({s / new:6.1f} x mutual_info_matrix)"
        print(f"  {name:<{width}}  {s:8.4f} s{note}")
    if mutual_info_score is not None:
        ratio = medians["per-pair sklearn (incl. discretize)"] / new
        loop_only = medians["per-pair sklearn (incl. discretize)"] - medians["discretize alone"]
        print(f"mutual_info_matrix / per-pair sklearn: 1/{ratio:.0f} (1/{loop_only / new:.0f} against the loop "
              f"alone); target <= 1/{TARGET} -> {'OK' if ratio >= TARGET else 'TOO SLOW'}")
    else:
        print("scikit-learn is not installed: per-pair reference skipped (pip install scikit-learn)")
    print("max |difference| from mutual_info_matrix: "
          + ", ".join(f"{name} {d:.2e}" for name, d in diffs.items()) + f" (tolerance {TOLERANCE:g})")
    assert max(diffs.values()) <= TOLERANCE, f"values differ by more than {TOLERANCE:g}: {diffs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--neurons", type=int, default=500)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--n-bins", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dataset", choices=sorted(GRIDS) + ["all"], default="all")
    args = parser.parse_args()
    datasets = sorted(GRIDS) if args.dataset == "all" else [args.dataset]
    for i, dataset in enumerate(datasets):
        if i:
            print()
        run(dataset, args)


if __name__ == "__main__":
    main()
