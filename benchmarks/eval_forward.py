"""How much of an evaluation (without the VAE's decode) is the SAE's own forward passes.

An evaluation after an epoch runs the SAE over the evaluation codes (its codes, and its reconstruction)
and then computes every metric from them with numpy. A bank could run the first part for all its members
in one pass; this script measures what that part costs of one member's evaluation: a 256 -> 500 Top-k SAE
(k = 50) on 5,000 codes shaped like the VAE's hidden layer, medians of ``--repeats`` rounds.

    KERAS_BACKEND=tensorflow python benchmarks/eval_forward.py [--samples 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from collapse_tui.config import EvalConfig  # noqa: E402
from collapse_tui.engine.evaluation import evaluate_sae  # noqa: E402
from collapse_tui.metrics import linear_probe  # noqa: E402
from collapse_tui.nn import SparseAutoencoder  # noqa: E402
from eval_metrics import make_data  # noqa: E402 - beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    codes, _, _, factors = make_data(args.samples, 500, 50, "dsprites")
    sae = SparseAutoencoder(256, 500, "topk", k=50, seed=0)
    sae.adapt(codes)
    probe = linear_probe(codes, factors)  # made once per run by the engine
    config = EvalConfig()
    sae.codes(codes), sae.reconstruct(codes)  # traced outside the timing
    forward, evaluation = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        sae.codes(codes)
        sae.reconstruct(codes)
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()  # as the engine evaluates: its codes, then every metric
        evaluate_sae(sae, codes, factors, config, input_probe=probe, acts=sae.codes(codes))
        evaluation.append(time.perf_counter() - start)
    f, e = statistics.median(forward), statistics.median(evaluation)
    print(f"{keras.backend.backend()}: the SAE's forward passes (codes, reconstruction) {f:.3f} s of an "
          f"evaluation's {e:.3f} s ({f / e:.0%}); {args.samples:,} codes, medians of {args.repeats}")


if __name__ == "__main__":
    main()
