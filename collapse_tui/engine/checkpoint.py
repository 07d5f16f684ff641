"""A training phase as it stood after an epoch, on disk, so that an interrupted run can go on from there.

``<run_dir>/checkpoint.npz``, replaced atomically after every SAE epoch, holds everything the SAE's next
epoch depends on: its weights (and idle counts, thresholds), what the optimiser remembers of them
(Adam's moments and its step count), the random state of the run's data order and of resampling, and
what the evaluations so far recorded for the final report (the dead fraction over training, the
measurements before sparsification and before extension). A finished run deletes it: its ``sae.keras``
is the final state.

A VAE's checkpoint, ``models/vae-<key>.checkpoint.npz``, is the same format with the VAE's variables,
its optimiser's variables and its data order (:mod:`~collapse_tui.engine.vae_training`); it lives beside
the VAE it becomes, so any run that needs that VAE continues it.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from collapse_tui.interrupts import uninterrupted
from collapse_tui.store.layout import CHECKPOINT_FILE, run_file
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """What :func:`write_checkpoint` saves (see the module's docstring)."""

    epoch: int  # the phase's epochs done
    weights: list[np.ndarray]  # the SAE's get_weights(); a VAE's variables (its seed state included)
    optimizer: dict[str, np.ndarray]  # a bank member's optimiser state (SAEBank.optimizer_states); a VAE's by index
    rng: dict[str, tuple]  # name -> numpy RandomState.get_state()
    state: dict[str, Any] = field(default_factory=dict)  # JSON: the phase's record so far


def _rng_arrays(name: str, state: tuple) -> dict[str, np.ndarray]:
    kind, keys, pos, has_gauss, gauss = state
    if kind != "MT19937":
        raise ValueError(f"cannot checkpoint a {kind} random state")
    return {f"rng/{name}/keys": np.asarray(keys, np.uint32),
            f"rng/{name}/rest": np.array([pos, has_gauss, gauss], np.float64)}


def write_checkpoint(run_dir: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` into ``run_dir`` atomically (temporary file, fsync, rename), uninterrupted."""
    return write_checkpoint_file(run_file(run_dir, CHECKPOINT_FILE), checkpoint)


def write_checkpoint_file(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` (an ``.npz``) as :func:`write_checkpoint` does."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps({"version": FORMAT_VERSION, "epoch": checkpoint.epoch,
                                          "state": checkpoint.state}).encode(), np.uint8),
    }
    arrays.update({f"weights/{i}": np.asarray(w) for i, w in enumerate(checkpoint.weights)})
    arrays.update({f"optimizer/{k}": np.asarray(v) for k, v in checkpoint.optimizer.items()})
    for name, state in checkpoint.rng.items():
        arrays.update(_rng_arrays(name, state))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    # Named as save_model names its temporaries, so that remove_stale_temporaries knows it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    with uninterrupted():
        try:
            with open(tmp, "wb") as fh:
                fh.write(buffer.getbuffer())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def read_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """The checkpoint in ``run_dir``, or None if it has none; ValueError if it cannot be read."""
    return read_checkpoint_file(run_file(run_dir, CHECKPOINT_FILE))


def read_checkpoint_file(path: str | Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None if there is none; ValueError if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise ValueError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {meta.get('version')}, this version reads {FORMAT_VERSION}")
    weights = [arrays[f"weights/{i}"] for i in range(sum(k.startswith("weights/") for k in arrays))]
    optimizer = {k.removeprefix("optimizer/"): v for k, v in arrays.items() if k.startswith("optimizer/")}
    rng = {}
    for key in arrays:
        if key.startswith("rng/") and key.endswith("/keys"):
            name = key[len("rng/"):-len("/keys")]
            pos, has_gauss, gauss = arrays[f"rng/{name}/rest"]
            rng[name] = ("MT19937", arrays[key], int(pos), int(has_gauss), float(gauss))
    return Checkpoint(epoch=int(meta["epoch"]), weights=weights, optimizer=optimizer, rng=rng,
                      state=meta.get("state") or {})


def remove_checkpoint(run_dir: str | Path) -> None:
    run_file(run_dir, CHECKPOINT_FILE).unlink(missing_ok=True)
