"""Training throughput of the engine against a plain ``model.fit`` of the same model, same backend.

The engine trains the VAE through ``train_vae`` (one ``fit`` per epoch in its own data order, a checkpoint
after each, progress and epoch events written to a run directory, stoppable between steps) and here an
SAE through ``fit_with_events`` (the same events, the sparsity schedule). This script times it against a bare
``model.fit`` on identical data, alternating the two so machine noise hits both alike, and prints
the median steps/s of each over many short alternating fits, and their ratio (engine / plain; 1.0
means the engine costs nothing).

    KERAS_BACKEND=tensorflow python benchmarks/train_throughput.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from collapse_tui.data import get_dataset  # noqa: E402
from collapse_tui.engine.callbacks import fit_with_events  # noqa: E402
from collapse_tui.engine.vae_training import train_vae  # noqa: E402
from collapse_tui.nn import ConvVAE, SparseAutoencoder, SparsitySchedule, SparsityScheduler  # noqa: E402
from collapse_tui.store import RunWriter  # noqa: E402


def time_fit(fn, steps: int) -> float:
    t0 = time.perf_counter()
    fn()
    return steps / (time.perf_counter() - t0)


def bench(name, make_model, x, batch_size, epochs, repeats, extra_callbacks=lambda m: [], engine_fit=None):
    """``engine_fit(model, x, writer, stop)``: how the engine trains the model (default: fit_with_events)."""
    steps = epochs * -(-len(x) // batch_size)
    model = make_model()
    model.fit(x[: batch_size * 2], epochs=1, batch_size=batch_size, verbose=0)  # compile outside the timing
    writer = RunWriter(tempfile.mkdtemp(prefix="bench-"))
    stop = threading.Event()
    if engine_fit is None:
        def engine_fit(model, x, writer, stop):
            fit_with_events(model, x, name, writer, epochs=epochs, batch_size=batch_size, stop_event=stop,
                            callbacks=extra_callbacks(model))
    plain, engine = [], []
    for _ in range(repeats):
        plain.append(time_fit(lambda: model.fit(x, epochs=epochs, batch_size=batch_size, verbose=0,
                                                callbacks=extra_callbacks(model)), steps))
        engine.append(time_fit(lambda: engine_fit(model, x, writer, stop), steps))
    writer.close()
    # Many short alternating fits and their medians: on a shared machine single runs swing by 10-30%.
    p, e = statistics.median(plain), statistics.median(engine)
    print(f"{name:4s}  plain fit {p:8.1f} steps/s   engine {e:8.1f} steps/s ({e * batch_size:,.0f} samples/s)"
          f"   ratio {e / p:.3f}   ({steps} steps x {repeats}, batch {batch_size})")
    return e / p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--images", type=int, default=1024)
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}")
    data = get_dataset("dsprites")
    images = data.images(data.sample_indices(args.images, np.random.RandomState(0)))

    def make_vae():
        vae = ConvVAE(image_shape=images.shape[1:], beta=4.0, input_scale=data.input_scale, seed=0)
        vae.compile(optimizer=keras.optimizers.Adam(1e-4))
        return vae

    checkpoint = Path(tempfile.mkdtemp(prefix="bench-")) / "vae.checkpoint.npz"

    def train_vae_epochs(model, x, writer, stop):
        # The engine's VAE: one fit per epoch in its own order, a checkpoint after each (removed after,
        # so that the next repeat trains rather than continues).
        train_vae(model, x, writer, key="bench", seed=0, epochs=2, batch_size=64, checkpoint_path=checkpoint,
                  stop_event=stop)
        checkpoint.unlink()

    bench("vae", make_vae, images, batch_size=64, epochs=2, repeats=args.repeats, engine_fit=train_vae_epochs)

    codes = np.random.RandomState(1).gamma(1.0, size=(20_000, 256)).astype("float32")

    def make_sae():
        sae = SparseAutoencoder(input_dim=256, n_neurons=500, method="topk", k=50, seed=0)
        sae.adapt(codes)
        sae.compile(optimizer=keras.optimizers.Adam(1e-3))
        return sae

    # Both sides get the schedule callback (constant, so no recompilation): only the engine's cost differs.
    schedule = SparsitySchedule("constant", 50, 50, 1, integer=True)
    bench("sae", make_sae, codes, batch_size=256, epochs=2, repeats=args.repeats,
          extra_callbacks=lambda m: [SparsityScheduler(schedule)])


if __name__ == "__main__":
    main()
