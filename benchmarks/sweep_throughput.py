"""SAE updates per second for a sweep of 16 Top-k SAEs: one after another, as one bank, and in a
hand-written PyTorch loop.

The sweep: 4 values of k x 4 seeds, 500 neurons on 256 inputs (the VAE's hidden layer), one epoch over
4,096 codes each. Variants, interleaved round by round so that a noisy machine slows them alike:

- ``sequential``: each SAE alone, as ``bank_size: 1`` trains it (a bank of one);
- ``bank``: the 16 as one :class:`~collapse_tui.nn.sae_bank.SAEBank`;
- ``torch loop``: the same 16 SAEs one after another in plain PyTorch (``torch.optim.Adam``, top-k,
  decoder rows renormalised after each step): the yardstick of a hand-written training loop.

Under torch, ``--torch-compile`` adds both Keras variants with their steps compiled by ``torch.compile``
(``jit_compile=True``, as the engine compiles banks planned for many steps). Each bank is warmed up
(traced, compiled, a few steps) before its timed epoch. Prints the median updates
per second (SAE steps: 16 x steps per epoch, divided by the wall time), the ratios, and how long building
and warming up the banks took (what a run pays once, compiling included).

    KERAS_BACKEND=tensorflow python benchmarks/sweep_throughput.py [--repeats 3] [--batch-sizes 16 128]
    KERAS_BACKEND=torch python benchmarks/sweep_throughput.py --torch-compile
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from collapse_tui.nn import SparseAutoencoder  # noqa: E402
from collapse_tui.engine.torch_bank import prepare_bank  # noqa: E402
from collapse_tui.nn.sae_bank import SAEBank  # noqa: E402

INPUT_DIM, N_NEURONS, ROWS = 256, 500, 4096
KS, SEEDS = (25, 50, 75, 100), (0, 1, 2, 3)


def codes(seed: int = 0) -> np.ndarray:
    """Codes with the low-rank structure of a VAE layer: 32 directions plus a little noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, 32)) @ rng.normal(size=(32, INPUT_DIM)) + 0.1 * rng.normal(size=(ROWS, INPUT_DIM))
    return x.astype("float32")


def members(x: np.ndarray) -> list[SparseAutoencoder]:
    saes = [SparseAutoencoder(INPUT_DIM, N_NEURONS, "topk", k=k, seed=seed) for k in KS for seed in SEEDS]
    for sae in saes:
        sae.adapt(x)
    return saes


def train_banks(x: np.ndarray, batch_size: int, size: int, warm_up: list[float] | None = None,
                compiled: bool = False) -> float:
    """Seconds to train the 16 SAEs for one epoch in banks of ``size``, after a warm-up of each bank
    (whose seconds, the trace and compile included, are appended to ``warm_up``); ``compiled``: with
    ``jit_compile=True`` (under torch, torch.compile)."""
    saes = members(x)
    # Under TensorFlow a bank runs TF_STEPS_PER_EXECUTION steps per call, and a full call and a shorter
    # last one are traced apart: the warm-up makes both, so that the timed epoch compiles nothing.
    warm = np.arange(min(ROWS, batch_size * (SAEBank.TF_STEPS_PER_EXECUTION + 1)))
    positions = np.arange(ROWS)
    # The earlier rounds' banks are garbage by now; collected here, not as a pause inside the timing.
    gc.collect()
    warming, training = 0.0, 0.0
    # One bank at a time, as a sweep trains them (under torch.compile each bank starts from a clean cache,
    # so a bank built before another's compile would compile again).
    for start in range(0, len(saes), size):
        t0 = time.perf_counter()
        bank = SAEBank(saes[start:start + size], x)
        bank.compile(optimizer=keras.optimizers.Adam(1e-3), **({"jit_compile": True} if compiled else {}))
        prepare_bank(bank)  # as the engine trains it
        bank.fit(warm, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
        t1 = time.perf_counter()
        bank.fit(positions, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
        training += time.perf_counter() - t1
        warming += t1 - t0
    if warm_up is not None:
        warm_up.append(warming)
    return training


def train_torch_loop(x: np.ndarray, batch_size: int) -> float:
    """Seconds for the same 16 SAEs, one after another, in a plain PyTorch loop."""
    import torch

    data = torch.from_numpy(x)
    t_total = 0.0
    for k in KS:
        for seed in SEEDS:
            gen = torch.Generator().manual_seed(seed)
            w_enc = (torch.rand(INPUT_DIM, N_NEURONS, generator=gen) * 2 - 1) * (6 / (INPUT_DIM + N_NEURONS)) ** 0.5
            w_dec = torch.randn(N_NEURONS, INPUT_DIM, generator=gen)
            w_dec /= w_dec.norm(dim=1, keepdim=True)
            params = [p.requires_grad_() for p in (w_enc, torch.zeros(N_NEURONS), w_dec, data.mean(0).clone())]
            w_enc, b_enc, w_dec, b_dec = params
            opt = torch.optim.Adam(params, lr=1e-3)
            order = torch.randperm(ROWS, generator=gen)
            t0 = time.perf_counter()
            for start in range(0, ROWS, batch_size):
                batch = data[order[start:start + batch_size]]
                pre = torch.relu((batch - b_dec) @ w_enc + b_enc)
                values, index = pre.topk(k, dim=1)
                acts = torch.zeros_like(pre).scatter(1, index, values)
                loss = ((acts @ w_dec + b_dec - batch) ** 2).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    w_dec /= w_dec.norm(dim=1, keepdim=True)
            t_total += time.perf_counter() - t0
    return t_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per variant (default 3)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch loop")
    parser.add_argument("--torch-compile", action="store_true",
                        help="under torch, also both Keras variants compiled with torch.compile")
    args = parser.parse_args()
    x = codes()
    n_saes = len(KS) * len(SEEDS)
    print(f"backend {keras.backend.backend()}, {n_saes} Top-k SAEs ({N_NEURONS} neurons on {INPUT_DIM} inputs, "
          f"k in {KS}, seeds {SEEDS}), one epoch of {ROWS} codes each, {args.repeats} interleaved rounds")
    for batch_size in args.batch_sizes:
        updates = n_saes * -(-ROWS // batch_size)
        warm_up: dict[str, list[float]] = {"sequential": [], "bank": []}
        variants = {"sequential": lambda: train_banks(x, batch_size, 1, warm_up["sequential"]),
                    "bank": lambda: train_banks(x, batch_size, n_saes, warm_up["bank"])}
        if args.torch_compile and keras.backend.backend() == "torch":
            warm_up.update({"sequential, compiled": [], "bank, compiled": []})
            variants["sequential, compiled"] = lambda: train_banks(x, batch_size, 1, warm_up["sequential, compiled"],
                                                                   compiled=True)
            variants["bank, compiled"] = lambda: train_banks(x, batch_size, n_saes, warm_up["bank, compiled"],
                                                             compiled=True)
        if not args.no_torch:
            variants["torch loop"] = lambda: train_torch_loop(x, batch_size)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, run in variants.items():
                times[name].append(run())
        rates = {name: updates / statistics.median(t) for name, t in times.items()}
        print(f"\nbatch {batch_size}: {updates} SAE updates per round")
        for name, rate in rates.items():
            print(f"  {name:20s} {rate:8.0f} updates/s  (median of {', '.join(f'{t:.2f}' for t in times[name])} s)")
        print(f"  bank / sequential: {rates['bank'] / rates['sequential']:.2f}x")
        print("  building, compiling and warming up (median): " + ", ".join(
            f"{name} {statistics.median(seconds):.1f} s" for name, seconds in warm_up.items())
              + f" ({n_saes} banks of one in each sequential variant, one bank of {n_saes} in each bank variant)")
        if "torch loop" in rates:
            print("  against the torch loop: " + ", ".join(
                f"{name} {rate / rates['torch loop']:.2f}x" for name, rate in rates.items() if name != "torch loop"))


if __name__ == "__main__":
    main()
