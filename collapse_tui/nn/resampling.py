"""Resampling dead neurons (Bricken et al. 2023, "Towards Monosemanticity"): give each dead neuron a
new dictionary vector pointing at an input the SAE reconstructs badly, and forget what the optimiser
remembered about it.

The work is host-side numpy between epochs (under JAX a model's variables are only current between
epochs of ``fit``), written against public Keras API only, so it is the same on every backend.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
from keras import ops

# Anthropic's choice: new encoder vectors get 0.2 times the mean norm of the live neurons' encoder vectors,
# small enough that a revived neuron does not take over inputs the live ones already explain.
ENCODER_SCALE = 0.2


def _np(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value))


def optimizer_slots(optimizer, variable) -> list:
    """The optimiser's per-parameter state of ``variable`` (Adam's momentum and velocity, SGD's momentum):
    Keras names each ``<variable path with _>_<slot>`` and gives it the variable's shape."""
    if optimizer is None:
        return []
    prefix = variable.path.replace("/", "_") + "_"
    return [v for v in optimizer.variables
            if v.name.startswith(prefix) and tuple(v.shape) == tuple(variable.shape)]


def resample_dead_neurons(sae, x: np.ndarray, rng: np.random.RandomState, max_inputs: int = 8192,
                          batch_size: int = 1024) -> np.ndarray:
    """Re-initialise the neurons ``sae.dead_mask()`` counts dead; returns their indices.

    Up to ``max_inputs`` rows of ``x`` are scored by the SAE's squared reconstruction error (in its
    normalised space); each dead neuron draws one input with probability proportional to the squared
    error, and its decoder row becomes that input (minus ``b_dec``) at unit norm, its encoder column
    the same direction at ``ENCODER_SCALE`` times the live encoder columns' mean norm, its encoder
    bias 0. Their optimiser state is zeroed and their idle count restarts, as do, with the bias floor, their
    offset and firing rate (0 and the floor: :mod:`collapse_tui.nn.bias_floor`).
    """
    dead = np.flatnonzero(_np(sae.dead_mask()))
    if dead.size == 0:
        return dead
    x = np.asarray(x, dtype=np.float32)
    if len(x) > max_inputs:
        x = x[rng.choice(len(x), max_inputs, replace=False)]
    mean, std = _np(sae.norm_mean.value), _np(sae.norm_std.value)
    b_dec = _np(sae.b_dec.value)
    z = (x - mean) / std
    z_hat = (sae.reconstruct(x, batch_size=batch_size) - mean) / std
    error = ((z_hat - z) ** 2).sum(axis=1).astype(np.float64)
    weights = error ** 2
    p = weights / weights.sum() if weights.sum() > 0 else np.full(len(x), 1.0 / len(x))
    chosen = rng.choice(len(x), size=dead.size, replace=dead.size > np.count_nonzero(p), p=p)
    directions = z[chosen] - b_dec
    norms = np.linalg.norm(directions, axis=1, keepdims=True)
    directions = np.where(norms > 0, directions / np.maximum(norms, 1e-12), 1.0 / np.sqrt(z.shape[1]))

    w_enc, b_enc, w_dec = _np(sae.W_enc.value).copy(), _np(sae.b_enc.value).copy(), _np(sae.W_dec.value).copy()
    alive = np.setdiff1d(np.arange(sae.n_neurons), dead)
    scale = ENCODER_SCALE * (np.linalg.norm(w_enc[:, alive], axis=0).mean() if alive.size else 1.0)
    w_dec[dead] = directions
    w_enc[:, dead] = (directions * scale).T
    b_enc[dead] = 0.0
    sae.W_dec.assign(w_dec)
    sae.W_enc.assign(w_enc)
    sae.b_enc.assign(b_enc)

    for variable, index in ((sae.W_dec, np.s_[dead]), (sae.W_enc, np.s_[:, dead]), (sae.b_enc, np.s_[dead])):
        for slot in optimizer_slots(getattr(sae, "optimizer", None), variable):
            state = _np(slot.value).copy()
            state[index] = 0.0
            slot.assign(state)
    restarts = [(sae.idle_steps, 0.0)]
    if getattr(sae, "bias_offset", None) is not None:
        restarts += [(sae.bias_offset, 0.0), (sae.fire_rate, sae.bias_floor)]
    for variable, start in restarts:
        values = _np(variable.value).copy()
        values[dead] = start
        variable.assign(values)
    return dead


class DeadNeuronResampler(keras.callbacks.Callback):
    """Resample dead neurons at the end of the given (1-based) epochs of ``fit``.

    ``on_resample(epoch, indices)`` hears about each resampling (e.g. to log how many were revived).
    """

    def __init__(self, x: np.ndarray, epochs: Sequence[int], seed: int | None = None,
                 on_resample: Callable[[int, np.ndarray], None] | None = None, max_inputs: int = 8192):
        super().__init__()
        self.x = x
        self.epochs = {int(e) for e in epochs}
        self.rng = np.random.RandomState(seed)
        self.on_resample = on_resample
        self.max_inputs = max_inputs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 not in self.epochs:
            return
        indices = resample_dead_neurons(self.model, self.x, self.rng, max_inputs=self.max_inputs)
        if self.on_resample is not None:
            self.on_resample(epoch + 1, indices)
