"""Cost of the final evaluation's decode: every member's reconstruction put back into the VAE and decoded.

A bank's members share one VAE and one evaluation set, so their decodes could run as one ``predict`` over
all members' reconstructions instead of one per member. This script measures whether that saves anything:
in interleaved rounds it decodes ``--members`` reconstructions of ``--samples`` codes through a VAE of
the quick preset's shape (64 x 64 x 1 images, 256 encoder-hidden units), once per member (batch 256, as
the evaluation does) and all at once (batch 256 and batch 1024), and prints the medians, the images
decoded per second and the ratios. Weights are random: the decoder's arithmetic does not depend on them.

    KERAS_BACKEND=tensorflow python benchmarks/final_decode.py [--members 8] [--samples 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from collapse_tui.nn import ConvVAE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    vae = ConvVAE(image_shape=(64, 64, 1), latent_dim=10, hidden_units=256, seed=0)
    vae(np.zeros((1, 64, 64, 1), np.float32))
    rng = np.random.default_rng(0)
    recons = [np.maximum(rng.normal(size=(args.samples, 256)), 0).astype(np.float32) for _ in range(args.members)]
    stacked = np.concatenate(recons)

    def per_member():
        for r in recons:
            vae.reconstruct_logits(representation=r, source="encoder_hidden", batch_size=256)

    def together(batch_size):
        return lambda: vae.reconstruct_logits(representation=stacked, source="encoder_hidden",
                                              batch_size=batch_size)

    variants = {"per member (b256)": per_member, "all members (b256)": together(256),
                "all members (b1024)": together(1024)}
    for fn in variants.values():  # compile every shape once, outside the timing
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    images = args.members * args.samples
    base = statistics.median(times["per member (b256)"])
    print(f"backend {keras.backend.backend()}: {args.members} members x {args.samples} images, "
          f"median of {args.repeats} interleaved rounds")
    for name, samples in times.items():
        seconds = statistics.median(samples)
        print(f"  {name:<22} {seconds:7.2f} s  {images / seconds:8.0f} images/s  {base / seconds:5.2f}x")


if __name__ == "__main__":
    main()
