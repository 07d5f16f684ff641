"""Time of one SAE evaluation with every metric, on codes shaped like a Top-k (k = 50) SAE's.

The evaluation runs after every SAE epoch by default, so it must stay cheap: the budget is 2 s for
10,000 samples x 500 neurons on 2 CPU cores. This script builds such an evaluation set without keras
(factors sampled from the dSprites or Shapes3D grid, an SAE input of 256 units that depends on them,
Top-k codes with about a third of the neurons dead, a stub SAE that hands them over), then prints the
median seconds of ``evaluate_sae`` and of each metric alone over a few repeats.

    python benchmarks/eval_metrics.py [--samples 10000] [--neurons 500] [--k 50] [--repeats 5]
                                      [--dataset dsprites|shapes3d]

Timings on a shared machine are noisy: read the medians, and rerun when another job competes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from collapse_tui.config import EvalConfig
from collapse_tui.engine.evaluation import evaluate_sae
from collapse_tui import metrics as M
from synthetic import GRIDS, factors_and_features  # noqa: E402 - beside this script

def make_data(samples: int, neurons: int, k: int, dataset: str, seed: int = 0):
    """(SAE input, Top-k codes, reconstruction, factors): realistic shapes and sparsity, random content."""
    rng = np.random.default_rng(seed)
    factors, feats = factors_and_features(rng, samples, dataset, per_factor=8)
    hidden = np.maximum(feats @ rng.normal(size=(feats.shape[1], 256)) + 0.3 * rng.normal(size=(samples, 256)),
                        0.0).astype(np.float32)
    pre = hidden @ rng.normal(size=(256, neurons)).astype(np.float32) / 16.0
    pre += rng.normal(0.0, 3.0, size=neurons).astype(np.float32)  # low-bias neurons never win: dead ones
    top = np.argpartition(-pre, k - 1, axis=1)[:, :k]
    acts = np.zeros_like(pre)
    rows = np.arange(samples)[:, None]
    acts[rows, top] = np.maximum(pre[rows, top], 0.0)
    recon = hidden + 0.05 * rng.normal(size=hidden.shape).astype(np.float32)
    return hidden, acts, recon, factors


class StubSAE:
    """What evaluate_sae reads of an SAE: its codes and its reconstruction (precomputed)."""

    sparsity = 50.0

    def __init__(self, acts, recon):
        self._acts, self._recon = acts, recon

    def codes(self, x):
        return self._acts

    def reconstruct(self, x):
        return self._recon


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--neurons", type=int, default=500)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dataset", choices=sorted(GRIDS), default="dsprites")
    args = parser.parse_args()

    hidden, acts, recon, factors = make_data(args.samples, args.neurons, args.k, args.dataset)
    cfg = EvalConfig()
    sae = StubSAE(acts, recon)
    n_bins, tau = cfg.n_bins, cfg.specialized_tau
    mi = M.mutual_info_matrix(acts, factors, n_bins=n_bins)
    h_code = M.code_entropy(acts, n_bins)
    probe = M.linear_probe(acts, factors)

    parts = {
        "dead / rare fractions, mask, counts": lambda: (
            [M.dead_fraction(acts, t) for t in cfg.thresholds],
            [M.rare_fraction(acts, f) for f in cfg.density_thresholds],
            M.dead_mask(acts), (acts > 0).sum(axis=0)),
        "l0, mse, explained variance": lambda: (M.l0(acts), M.mse(hidden, recon), M.explained_variance(hidden, recon)),
        "mutual_info_matrix": lambda: M.mutual_info_matrix(acts, factors, n_bins=n_bins),
        "mig + normalized_mi (given mi)": lambda: (M.mig(acts, factors, n_bins, mi=mi), M.normalized_mi(mi, factors)),
        "specialized (given mi)": lambda: M.specialized_neurons(acts, factors, tau=tau, n_bins=n_bins, mi=mi),
        "density histogram": lambda: M.activation_density_histogram(acts),
        "code_entropy": lambda: M.code_entropy(acts, n_bins),
        "mig_sup (given mi, H)": lambda: M.mig_sup(acts, factors, n_bins, mi=mi, h_code=h_code),
        "specialized per code (given mi, H)": lambda: M.specialized_neurons_per_code(
            acts, factors, tau=tau, n_bins=n_bins, mi=mi, h_code=h_code),
        "linear probe on codes": lambda: M.linear_probe(acts, factors),
        f"linear probe on input ({hidden.shape[1]})": lambda: M.linear_probe(hidden, factors),
        "dci (given importances)": lambda: M.dci(probe.importance, probe.accuracy),
        "feature alignment (ranks + AUROC)": lambda: M.feature_alignment(acts, factors),
    }

    print(f"{args.samples:,} samples x {args.neurons} neurons, Top-k k={args.k}, {args.dataset} factors "
          f"{GRIDS[args.dataset]}; dead {M.dead_fraction(acts):.0%}, L0 {M.l0(acts):.1f}; "
          f"{os.cpu_count()} CPUs seen; median of {args.repeats} (shared machine: noisy)")
    evaluate_sae(sae, hidden, factors, cfg)  # warm-up
    total = median_seconds(lambda: evaluate_sae(sae, hidden, factors, cfg), args.repeats)
    width = max(map(len, parts))
    summed = 0.0
    for name, fn in parts.items():
        s = median_seconds(fn, args.repeats)
        summed += s
        print(f"  {name:<{width}}  {s:7.3f} s")
    print(f"  {'sum of the parts':<{width}}  {summed:7.3f} s")
    print(f"evaluate_sae, all metrics: {total:.3f} s (budget 2 s) -> {'OK' if total < 2.0 else 'OVER BUDGET'}")
    m = evaluate_sae(sae, hidden, factors, cfg)
    shown = ("mig", "mig_sup", "specialized", "specialized_code", "probe_acc", "probe_acc_input",
             "dci_ridge_disentanglement", "dci_ridge_completeness", "auroc_best", "auroc_coverage")
    print("values: " + ", ".join(f"{key} {m[key]:.3g}" for key in shown if key in m))


if __name__ == "__main__":
    main()
