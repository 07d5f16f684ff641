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
from collapse_tui.store.layout import CHECKPOINT_FILE, SET_ASIDE_CHECKPOINT, run_file
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """What :func:`write_checkpoint` saves (see the module's docstring)."""

    epoch: int  # the phase's epochs done
    weights: list[np.ndarray]  # the SAE's get_weights(); a VAE's variables (its seed state included)
    optimizer: dict[str, np.ndarray]  # a bank member's optimiser state (SAEBank.optimizer_states); a VAE's by index
    rng: dict[str, tuple]  # name -> numpy RandomState.get_state()
    state: dict[str, Any] = field(default_factory=dict)  # JSON: the phase's record so far


@dataclass(frozen=True)
class UnreadableCheckpoint:
    """Where a run's checkpoint could not be read: the run is resumed all the same, its SAE phase from the
    start (the file set aside, with this reason in a warning), never refused or failed for it."""

    reason: str
    epoch: int = 0  # the epochs it lets the run skip: none


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
    """The checkpoint at ``path``, or None if there is none; ValueError naming the file and the problem if it
    cannot be read: truncated or altered (the archive's checksums), not a regular file, metadata that is
    not a record, an array missing or of the wrong kind. Whether it fits the model it is for is the
    caller's to check (:func:`weights_problem`)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        raise ValueError(f"{path}: unreadable checkpoint (not a regular file)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("not an .npz archive")
            arrays = {key: data[key] for key in data.files}
        return _parse(arrays)
    except Exception as exc:  # noqa: BLE001 - whatever the damage (zipfile's BadZipFile is none of the usual)
        if isinstance(exc, _Newer):
            raise ValueError(f"{path}: {exc}") from None
        raise ValueError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None


class _Newer(ValueError):
    """A checkpoint of another format version: readable, just not by this version."""


def _parse(arrays: dict[str, np.ndarray]) -> Checkpoint:
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    if not isinstance(meta, dict):
        raise ValueError("its metadata is not a record")
    if meta.get("version") != FORMAT_VERSION:
        raise _Newer(f"checkpoint format {meta.get('version')!r}, this version reads {FORMAT_VERSION}")
    epoch, state = meta.get("epoch"), meta.get("state") or {}
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"epoch {epoch!r} is not a count of epochs")
    if not isinstance(state, dict):
        raise ValueError("its record is not a mapping")
    n_weights = sum(k.startswith("weights/") for k in arrays)
    weights = [arrays[f"weights/{i}"] for i in range(n_weights)]  # a gap is a KeyError: unreadable
    optimizer = {k.removeprefix("optimizer/"): v for k, v in arrays.items() if k.startswith("optimizer/")}
    for name, value in (*((f"weights/{i}", w) for i, w in enumerate(weights)), *optimizer.items()):
        if value.dtype.kind not in "fiub":
            raise ValueError(f"{name} holds {value.dtype}, not numbers")
    rng = {}
    for key in arrays:
        if key.startswith("rng/") and key.endswith("/keys"):
            name = key[len("rng/"):-len("/keys")]
            keys, rest = arrays[key], arrays[f"rng/{name}/rest"]
            if keys.shape != (624,) or rest.shape != (3,) or not 0 <= rest[0] <= 624:
                raise ValueError(f"random state {name!r} is not a Mersenne Twister's")
            pos, has_gauss, gauss = rest
            rng[name] = ("MT19937", keys.astype(np.uint32), int(pos), int(has_gauss), float(gauss))
    return Checkpoint(epoch=epoch, weights=weights, optimizer=optimizer, rng=rng, state=state)


def weights_problem(checkpoint: Checkpoint, weights: list[np.ndarray], epochs: int, rng: tuple[str, ...]) -> str | None:
    """Why ``checkpoint`` cannot continue a model whose ``get_weights()`` are ``weights`` in a phase of
    ``epochs`` epochs that keeps the random states ``rng``; None when it can."""
    if checkpoint.epoch > epochs:
        return f"it is after epoch {checkpoint.epoch}, and the phase has {epochs}"
    if len(checkpoint.weights) != len(weights):
        return f"it holds {len(checkpoint.weights)} weight arrays, the model {len(weights)}"
    for i, (saved, own) in enumerate(zip(checkpoint.weights, weights)):
        if saved.shape != np.shape(own):
            return f"weight array {i} has shape {saved.shape}, the model's {np.shape(own)}"
    missing = [name for name in rng if name not in checkpoint.rng]
    if missing:
        return f"it lacks the random state {missing[0]!r}"
    return None


def set_aside_checkpoint(run_dir: str | Path) -> Path | None:
    """Move the run's checkpoint out of the way (kept to look at, replacing an older one set aside), so that
    the run trains its SAE from the start; the new place, or None when there was nothing to move."""
    source, target = run_file(run_dir, CHECKPOINT_FILE), run_file(run_dir, SET_ASIDE_CHECKPOINT)
    try:
        os.replace(source, target)
    except FileNotFoundError:
        return None
    return target


def remove_checkpoint(run_dir: str | Path) -> None:
    run_file(run_dir, CHECKPOINT_FILE).unlink(missing_ok=True)
