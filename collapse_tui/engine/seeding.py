"""Seeds: one run seed, independent streams for data sampling, each model and each phase's shuffling."""

from __future__ import annotations

import hashlib


def derived_seed(seed: int, salt: str) -> int:
    """Independent seeds for data sampling and each model from the run's one seed."""
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def data_seed(cfg) -> int:
    """The seed of a run's data draw and its VAE: ``vae.seed`` when set, so that runs of several seeds can share
    one VAE and its codes and differ in their SAEs alone; else the run's seed (its SAE's too)."""
    return cfg.seed if cfg.vae.seed is None else cfg.vae.seed


def seed_globals(seed: int, phase: str) -> None:
    """Seed the generators fit shuffles with (Python, numpy, the backend's) at the start of a phase.

    Per phase, so that the SAE trains the same whether the VAE before it was trained or loaded.
    ``keras.utils.set_random_seed`` imports TensorFlow on every backend; it is installed anyway
    (datasets), and its start-up lines are held back.
    """
    import keras

    from collapse_tui.engine.native_logs import quiet_native_logs

    with quiet_native_logs():
        keras.utils.set_random_seed(derived_seed(seed, f"global-{phase}"))
