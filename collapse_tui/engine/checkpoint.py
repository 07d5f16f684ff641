"""A run's SAE phase as it stood after an epoch, on disk, so that an interrupted run can go on from there.

``<run_dir>/checkpoint.npz``, replaced atomically after every SAE epoch, holds everything the next epoch
depends on: the SAE's weights (and idle counts, thresholds), what the optimiser remembers of them
(Adam's moments and its step count), the random state of the run's data order and of resampling, and
what the evaluations so far recorded for the final report (the dead fraction over training, the
measurements before sparsification and before extension). A finished run deletes it: its ``sae.keras``
is the final state.

The VAE phase has no checkpoint: a VAE trains in a few minutes at this scale, is cached in ``models/``
as soon as it is trained, and a run interrupted before that trains it again from its seed.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from collapse_tui.store import uninterrupted

CHECKPOINT_FILE = "checkpoint.npz"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """What :func:`write_checkpoint` saves (see the module's docstring)."""

    epoch: int  # SAE epochs done
    weights: list[np.ndarray]  # the SAE's get_weights()
    optimizer: dict[str, np.ndarray]  # a bank member's optimiser state (SAEBank.member_optimizer_state)
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
    path = Path(run_dir) / CHECKPOINT_FILE
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
    path = Path(run_dir) / CHECKPOINT_FILE
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
    (Path(run_dir) / CHECKPOINT_FILE).unlink(missing_ok=True)
