"""Sparsifying activations with a threshold: BatchTopK and JumpReLU, in ``keras.ops`` only (any backend)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from collapse_tui.nn import checks
from collapse_tui.nn.layers import KSparseActivation


@keras.saving.register_keras_serializable(package="collapse_tui")
class BatchTopK(KSparseActivation):
    """ReLU, then keep the ``k × batch_size`` largest activations of the whole batch (Bussmann et al. 2024).

    Training (``training=True``): the batch is flattened and its ``k·B``-th largest ReLU'd value is the
    cutoff; every value at or above it, and above zero, is kept. A sample can therefore keep more or
    fewer than ``k`` activations; only the batch average is ``k``. Every axis but the last counts as a
    sample axis, so ``B`` is the number of rows of width ``n_neurons``.

    The cutoff is read from a full sort of the flattened batch at a dynamic index rather than from
    ``ops.top_k(·, k·B)``, because ``B`` is not a static number while TensorFlow traces a step with an
    unknown batch size. The index is clamped to the batch, which matters only when the input width was
    unknown when the layer was built (otherwise ``k`` is checked against it).

    Ties: every value equal to the cutoff is kept, so a batch may keep a few more than ``k·B`` values
    when activations tie exactly at the cutoff (not expected with continuous activations). A batch
    with fewer than ``k·B`` positive values keeps all of them, and its cutoff is 0.

    Inference (``training`` False or None): values strictly above :attr:`threshold` are kept, so a
    sample's output no longer depends on the rest of its batch. The threshold is a non-trainable
    scalar variable holding an exponential moving average of each training batch's smallest kept value
    (the cutoff, unless the batch has fewer than ``k·B`` positive values): the first training batch
    sets it, each later one moves it by ``threshold ← (1 − momentum)·threshold + momentum·smallest``; a
    batch that keeps nothing leaves it alone. Until the first training batch it is 0, and inference is a
    plain ReLU. :attr:`threshold_updates` counts the training batches that kept something (it
    is a float variable, exact up to 2**24 batches and still non-zero past that, which is all the
    first-update rule needs; TensorFlow keeps int32 variables in host memory, away from a GPU).

    Gradients flow only through the kept entries (the cutoff is only compared against).

    ``k`` is held in a non-trainable variable as well as on the host, so :meth:`set_k` takes effect in
    already-compiled train/predict/test functions without retracing them, on every backend. Under JAX
    change it between epochs (for example in ``on_epoch_begin``), as for any variable: the trainer
    holds the model's variables itself during an epoch.

    Args:
        k: average number of activations kept per sample, a whole number >= 1 and at most the width.
        threshold_momentum: weight of each new training cutoff in the moving average, in (0, 1].
    """

    def __init__(self, k: int, threshold_momentum: float = 0.01, **kwargs):
        super().__init__(k, **kwargs)
        self.threshold_momentum = checks.number("threshold_momentum", threshold_momentum, 0, above=True, high=1)
        # Float, not int: see the class docstring. Exact for every k a layer can have (< 2**24).
        # No autocast: under a float16 policy the moving average would be rounded to float16 at every
        # update, and a small momentum's step can fall below float16's resolution and stall it.
        self.k_variable = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(float(self._k)), trainable=False,
            name="k", dtype="float32", autocast=False,
        )
        self.threshold = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="threshold", dtype="float32", autocast=False,
        )
        self.threshold_updates = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="threshold_updates", dtype="float32",
            autocast=False,
        )

    def set_k(self, k: int) -> None:
        """Change ``k`` (a whole number >= 1 and at most the input width); no retracing needed."""
        super().set_k(k)
        self.k_variable.assign(float(self._k))

    def call(self, inputs, training=None):
        x = ops.relu(inputs)
        zeros = ops.zeros_like(x)
        if not training:
            return ops.where(x > ops.cast(self.threshold, x.dtype), x, zeros)

        flat = ops.reshape(x, (-1,))
        size = ops.cast(ops.shape(flat)[0], "int32")
        rows = size // ops.cast(ops.shape(x)[-1], "int32")
        count = ops.minimum(ops.cast(self.k_variable, "int32") * rows, size)
        # Ascending sort: the (k·B)-th largest value sits k·B places from the end.
        cutoff = ops.stop_gradient(ops.take(ops.sort(flat), size - count))
        kept = ops.logical_and(x >= cutoff, x > 0)

        momentum = self.threshold_momentum
        old = ops.convert_to_tensor(self.threshold)
        # The smallest value kept, as Bussmann et al. average it: it equals the cutoff unless the batch
        # has fewer than k·B positive values, where a cutoff of 0 would drag the inference threshold to
        # 0 exactly when neurons are dying. A batch that keeps nothing leaves the threshold alone.
        x32 = ops.stop_gradient(ops.cast(x, "float32"))
        any_kept = ops.any(kept)
        smallest = ops.min(ops.where(kept, x32, ops.full_like(x32, float("inf"))))
        smallest = ops.where(any_kept, smallest, old)
        first = ops.logical_and(ops.equal(self.threshold_updates, 0.0), any_kept)
        self.threshold.assign(ops.where(first, smallest, (1.0 - momentum) * old + momentum * smallest))
        self.threshold_updates.assign(self.threshold_updates + ops.cast(any_kept, "float32"))
        return ops.where(kept, x, zeros)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"threshold_momentum": self.threshold_momentum})
        return config


@keras.saving.register_keras_serializable(package="collapse_tui")
class JumpReLU(keras.layers.Layer):
    """``pre · H(pre − θ)`` with a learned threshold θ per neuron (Rajamanoharan et al. 2024).

    θ = exp(``log_threshold``), so it stays positive while it trains; ``log_threshold`` is the
    trainable weight, shape ``(n_neurons,)``, initialised to ``log(initial_threshold)``. ``H`` is the
    Heaviside step, 1 where ``pre > θ`` and 0 elsewhere (ties at θ give 0).

    The step has no useful derivative in θ, so the paper's straight-through estimator replaces it with
    a rectangle kernel of width ε (``bandwidth``):

    * ∂out/∂pre = H(pre − θ) (the threshold's own jump gives pre nothing);
    * ∂out/∂θ = −(θ/ε) · 1[|pre − θ| < ε/2].

    It is built from ``stop_gradient`` alone, so no backend's custom-gradient API is needed: with
    ``g = −θ · stop_gradient(1[|pre − θ| < ε/2]) / ε``, the term ``g − stop_gradient(g)`` is exactly 0
    in the forward pass and has derivative ``−1[|pre − θ| < ε/2] / ε`` in θ and none in pre. The
    forward value is therefore exactly ``pre · H`` and exactly 0 or 1 for :meth:`step`.

    :meth:`step` returns the same estimator for H itself (∂step/∂θ = −(1/ε)·1[|pre − θ| < ε/2]), for an
    L0 penalty ``λ · mean over the batch of Σ_neurons step(pre)`` that gives θ a gradient of its own.

    Args:
        n_neurons: width of the input (last axis), a whole number >= 1.
        initial_threshold: θ before training, a finite number > 0.
        bandwidth: ε, width of the rectangle kernel of the pseudo-derivative, a finite number > 0.
    """

    def __init__(self, n_neurons: int, initial_threshold: float = 0.001, bandwidth: float = 0.001, **kwargs):
        super().__init__(**kwargs)
        self.n_neurons = checks.whole_number("n_neurons", n_neurons)
        self.initial_threshold = checks.number("initial_threshold", initial_threshold, 0, above=True)
        self.bandwidth = checks.number("bandwidth", bandwidth, 0, above=True)
        # Created here rather than in build so that step() works before the layer has been called.
        # No autocast, so that θ's gradient, summed over the batch, is never summed in float16 (see
        # _step_parts).
        self.log_threshold = self.add_weight(
            shape=(self.n_neurons,),
            initializer=keras.initializers.Constant(math.log(self.initial_threshold)),
            name="log_threshold",
            autocast=False,
        )

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is not None and dim != self.n_neurons:
            raise ValueError(f"JumpReLU expects inputs of width n_neurons ({self.n_neurons}), got {dim}")

    @property
    def threshold(self):
        """θ = exp(log_threshold), a tensor of shape ``(n_neurons,)``."""
        return ops.exp(self.log_threshold)

    def _step_parts(self, pre):
        """The exact step H and its straight-through term ``g − stop_gradient(g)`` (0 in value).

        Half-precision inputs are compared and differentiated in float32: θ is not rounded to float16
        before the comparison, and θ's pseudo-derivative (of size θ/ε per entry, ε often 1e-3) is summed
        over the batch in float32, where a loss-scaled float16 sum would overflow.
        """
        pre = ops.stop_gradient(ops.convert_to_tensor(pre))
        dtype = keras.backend.result_type(pre.dtype, "float32")
        pre = ops.cast(pre, dtype)
        theta = ops.cast(self.threshold, dtype)
        heaviside = ops.cast(pre > theta, dtype)
        window = ops.cast(ops.abs(pre - theta) < self.bandwidth / 2, dtype)
        g = -theta * window / self.bandwidth
        return heaviside, theta, g - ops.stop_gradient(g)

    def step(self, pre):
        """H(pre − θ), exactly 0 or 1 in ``pre``'s dtype, with the rectangle pseudo-derivative in θ (none
        in pre)."""
        pre = ops.convert_to_tensor(pre)
        heaviside, _, straight_through = self._step_parts(pre)
        # Parenthesised so that the forward value is H + 0, exact; H + g − g could round.
        return ops.cast(heaviside + straight_through, pre.dtype)

    def call(self, inputs):
        heaviside, theta, straight_through = self._step_parts(inputs)
        # The jump's pseudo-derivative is scaled by θ (the paper's −θ/ε), not by pre: θ carries no
        # gradient of its own in this factor.
        return inputs * ops.cast(heaviside, inputs.dtype) + ops.cast(
            ops.stop_gradient(theta) * straight_through, inputs.dtype
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "n_neurons": self.n_neurons,
            "initial_threshold": self.initial_threshold,
            "bandwidth": self.bandwidth,
        })
        return config
