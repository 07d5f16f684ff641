"""Sparsifying activations with a threshold: BatchTopK and JumpReLU, in ``keras.ops`` only (any backend)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from collapse_tui.nn import checks
from collapse_tui.nn.layers import KSparseActivation, TopK
from collapse_tui.nn.methods import common, jumprelu
from collapse_tui.nn.methods.batchtopk import BatchTopK as BatchTopKKernel


@keras.saving.register_keras_serializable(package="collapse_tui")
class BatchTopK(KSparseActivation):
    """ReLU, then keep the ``k × batch_size`` largest activations of the whole batch (Bussmann et al. 2024).

    The arithmetic is the BatchTopK kernel's (:mod:`collapse_tui.nn.methods.batchtopk`, which details it),
    with this layer as its one member. Training (``training=True``): the batch is flattened (every axis
    but the last counts as a sample axis) and its ``k·B``-th largest ReLU'd value is the cutoff; every
    value at or above it, and above zero, is kept, so only the batch average is ``k``. Inference
    (``training`` False or None): values strictly above :attr:`threshold` are kept. The threshold is a
    non-trainable float32 scalar holding an exponential moving average of each training batch's smallest
    kept value (the first training batch sets it; 0 until then: a plain ReLU);
    :attr:`threshold_updates` counts the training batches that kept something (a float variable:
    TensorFlow keeps int32 variables in host memory, away from a GPU).

    ``k`` is held in a non-trainable variable as well as on the host, so :meth:`set_k` takes effect in
    already-compiled train/predict/test functions without retracing them, on every backend. Under JAX
    change it between epochs (for example in ``on_epoch_begin``), as for any variable: the trainer
    holds the model's variables itself during an epoch.

    Args:
        k: average number of activations kept per sample, a whole number >= 1 and at most the width.
        threshold_momentum: weight of each new training cutoff in the moving average, in (0, 1].
        threshold_start: training batches (that kept something) before the average starts, >= 0.
    """

    def __init__(self, k: int, threshold_momentum: float = 0.01, threshold_start: int = 0, **kwargs):
        super().__init__(k, **kwargs)
        self.threshold_momentum = checks.number("threshold_momentum", threshold_momentum, 0, above=True, high=1)
        self.threshold_start = checks.whole_number("threshold_start", threshold_start, minimum=0)
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

    kernel = BatchTopKKernel

    @classmethod
    def for_sae(cls, sae) -> "BatchTopK":
        return cls(sae.k, threshold_momentum=sae.batchtopk_momentum, threshold_start=sae.batchtopk_start,
                   name=cls.kernel.name)

    def kernel_variables(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "threshold_updates": self.threshold_updates}

    def kernel_settings(self) -> dict[str, Any]:
        return {"momentum": self.threshold_momentum, "start": float(self.threshold_start)}

    def kernel_params(self) -> dict[str, Any]:
        # k from its variable (no retracing when it changes), as one member's (1,)
        return {**super().kernel_params(), "k": ops.reshape(self.k_variable, (1,))}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"threshold_momentum": self.threshold_momentum, "threshold_start": self.threshold_start})
        return config


@keras.saving.register_keras_serializable(package="collapse_tui")
class JumpReLU(keras.layers.Layer):
    """``pre · H(pre − θ)`` with a learned threshold θ per neuron (Rajamanoharan et al. 2024).

    θ = exp(``log_threshold``), so it stays positive while it trains; ``log_threshold`` is the
    trainable weight, shape ``(n_neurons,)``, initialised to ``log(initial_threshold)``. ``H`` is the
    Heaviside step, 1 where ``pre > θ`` and 0 elsewhere (ties at θ give 0).

    The arithmetic is the JumpReLU kernel's (:mod:`collapse_tui.nn.methods.jumprelu`), as one member:
    the paper's straight-through estimator with a rectangle kernel of width ε (``bandwidth``), built
    from ``stop_gradient`` alone (no backend's custom-gradient API), so that ∂out/∂pre = H(pre − θ) and
    ∂out/∂θ = −(θ/ε) · 1[|pre − θ| < ε/2]; the forward value is exactly ``pre · H``.

    :meth:`step` returns the same estimator for H itself (∂step/∂θ = −(1/ε)·1[|pre − θ| < ε/2]), exactly 0
    or 1, for an L0 penalty ``λ · mean over the batch of Σ_neurons step(pre)`` that gives θ a gradient of
    its own.

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
        # collapse_tui.nn.methods.jumprelu).
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

    kernel = jumprelu.JumpReLU
    sae_attribute = "jumprelu"

    @classmethod
    def for_sae(cls, sae) -> JumpReLU:
        """The layer of ``sae`` (a SparseAutoencoder of method ``jumprelu``)."""
        return cls(sae.n_neurons, initial_threshold=sae.jumprelu_threshold, bandwidth=sae.jumprelu_bandwidth,
                   name="jumprelu")

    def kernel_variables(self) -> dict[str, Any]:
        """The variables the kernel reads (:mod:`collapse_tui.nn.methods.jumprelu`), by its names."""
        return {"log_threshold": self.log_threshold}

    def kernel_settings(self) -> dict[str, Any]:
        return {"bandwidth": self.bandwidth}

    def kernel_params(self) -> dict[str, Any]:
        """The kernel's ``params``, for one member."""
        return {**common.one_member(self.kernel_variables()), **self.kernel_settings()}

    def _theta(self):
        return {"log_threshold": ops.expand_dims(self.log_threshold, 0), "bandwidth": self.bandwidth}

    def step(self, pre):
        """H(pre − θ), exactly 0 or 1 in ``pre``'s dtype, with the rectangle pseudo-derivative in θ (none
        in pre)."""
        return jumprelu.step(ops.expand_dims(pre, 0), **self._theta())[0]

    def call(self, inputs, training=None):
        codes, _ = jumprelu.codes(ops.expand_dims(inputs, 0), **self._theta())
        return codes[0]

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


# A lone SparseAutoencoder's sub-layer for each method that needs one (the method's variables, saved with
# the model; Top-k's static k), by the schema's method name: ``for_sae`` builds it, ``sae_attribute`` names
# it. L1 needs none.
METHOD_LAYERS: dict[str, type[keras.layers.Layer]] = {layer.kernel.name: layer for layer in (TopK, BatchTopK, JumpReLU)}
