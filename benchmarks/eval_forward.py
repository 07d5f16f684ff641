"""What the SAEs' own forward passes cost of a sweep's evaluations, each SAE alone against a bank's one pass.

An evaluation after an epoch runs the SAE over the evaluation codes (its codes, and its reconstruction)
and then computes every metric from them with numpy. A bank computes the first part for all the members
it evaluates in one pass (``SAEBank.member_outputs``); alone, each SAE runs two Keras ``predict`` calls.
This script builds a sweep's 16 Top-k SAEs of 256 -> 500 (4 k values x 4 seeds) on 5,000 codes shaped
like the VAE's hidden layer and times, in interleaved rounds (medians):

- the 16 SAEs' forward passes one after another (``codes`` then ``reconstruct``, as evaluation did alone);
- the bank's one pass over all 16;
- one member's numpy metrics (``evaluate_sae`` given its codes and reconstruction), for scale.

    KERAS_BACKEND=tensorflow python benchmarks/eval_forward.py [--samples 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from collapse_tui.config import EvalConfig  # noqa: E402
from collapse_tui.engine.evaluation import evaluate_sae  # noqa: E402
from collapse_tui.metrics import linear_probe  # noqa: E402
from collapse_tui.nn import SparseAutoencoder  # noqa: E402
from collapse_tui.nn.sae_bank import SAEBank  # noqa: E402
from eval_metrics import make_data  # noqa: E402 - beside this script

KS = (25, 50, 75, 100)
SEEDS = (0, 1, 2, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    codes, _, _, factors = make_data(args.samples, 500, 50, "dsprites")
    saes = []
    for k in KS:
        for seed in SEEDS:
            sae = SparseAutoencoder(256, 500, "topk", k=k, seed=seed)
            sae.adapt(codes)
            saes.append(sae)
    bank = SAEBank(saes, codes)
    inputs = dict.fromkeys(range(len(saes)), codes)
    probe = linear_probe(codes, factors)  # made once per run by the engine
    config = EvalConfig()

    def alone():
        return [(sae.codes(codes), sae.reconstruct(codes)) for sae in saes]

    def banked():
        return [(c, r) for _, c, r in bank.member_outputs(inputs)]

    # Traced outside the timing; and the two give the same outputs.
    for (c1, r1), (c2, r2) in zip(alone(), banked()):
        np.testing.assert_allclose(c2, c1, atol=1e-4)
        np.testing.assert_allclose(r2, r1, atol=1e-4)
    times = {"alone": [], "bank": [], "metrics": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        alone()
        times["alone"].append(time.perf_counter() - start)
        start = time.perf_counter()
        outputs = banked()
        times["bank"].append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluate_sae(saes[0], codes, factors, config, input_probe=probe, acts=outputs[0][0], recon=outputs[0][1])
        times["metrics"].append(time.perf_counter() - start)
    a, b, m = (statistics.median(times[key]) for key in ("alone", "bank", "metrics"))
    n = len(saes)
    print(f"{keras.backend.backend()}: forward passes of {n} SAEs on {args.samples:,} codes, medians of "
          f"{args.repeats}: alone {a:.3f} s ({a / n:.3f} s each), bank {b:.3f} s ({b / n:.3f} s each), "
          f"{a / b:.2f}x; one member's numpy metrics {m:.3f} s")


if __name__ == "__main__":
    main()
