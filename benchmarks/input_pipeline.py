"""Does feeding the images keep the accelerator busy? VAE training steps per second with the images fed
as the engine feeds them (uint8 numpy arrays on the host, batches cut and copied to the device each
step by Keras' array adapter) against the same images already on the device (one float32 tensor,
converted once: the fastest a step can be fed), interleaved round by round.

A ratio (host / on device) near 1.0 means the input pipeline keeps up and the step's arithmetic is what
bounds training; well below 1.0 means the accelerator waits for data. On a CPU both live in the same
memory, so the ratio says little there: this is a check for a machine with a GPU
(``benchmarks/gpu_check.sh`` runs it).

    KERAS_BACKEND=jax python benchmarks/input_pipeline.py [--images 8192] [--batch-size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from collapse_tui.data import get_dataset  # noqa: E402
from collapse_tui.nn import ConvVAE  # noqa: E402


def steps_per_second(model, x, batch_size: int) -> float:
    steps = -(-len(x) // batch_size)
    start = time.perf_counter()
    model.fit(x, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = get_dataset("dsprites")
    host = data.images(data.sample_indices(args.images, np.random.RandomState(0)))  # uint8, as runs hold them
    on_device = keras.ops.convert_to_tensor(host.astype("float32"))
    vae = ConvVAE(image_shape=host.shape[1:], beta=4.0, input_scale=data.input_scale, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-4))
    for x in (host, on_device):  # compile both input signatures before timing
        steps_per_second(vae, x[: args.batch_size * 4], args.batch_size)
    rates: dict[str, list[float]] = {"host uint8": [], "on device": []}
    for _ in range(args.repeats):
        rates["host uint8"].append(steps_per_second(vae, host, args.batch_size))
        rates["on device"].append(steps_per_second(vae, on_device, args.batch_size))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    print(f"backend {keras.backend.backend()}, {args.images} images of {host.shape[1:]}, batch {args.batch_size}, "
          f"median of {args.repeats} interleaved epochs")
    for name, rate in medians.items():
        print(f"  {name:10s}  {rate:8.1f} steps/s  {rate * args.batch_size:10.0f} images/s")
    print(f"  input pipeline: host / on device = {medians['host uint8'] / medians['on device']:.3f}")


if __name__ == "__main__":
    main()
