"""JumpReLU (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU
Sparse Autoencoders"): ``pre · H(pre − θ)`` with a learned threshold θ per neuron, and an L0 penalty
``coefficient × mean over the batch of Σ_neurons H(pre − θ)``. The same codes in training and at
inference.

θ = exp(``log_threshold``), so it stays positive while it trains; ``log_threshold`` is the trainable
variable, (N, m). ``H`` is the Heaviside step, 1 where ``pre > θ`` and 0 elsewhere (ties at θ give 0).

The step has no useful derivative in θ, so the paper's straight-through estimator replaces it with a
rectangle kernel of width ε (``bandwidth``):

* ∂codes/∂pre = H(pre − θ) (the threshold's own jump gives pre nothing);
* ∂codes/∂θ = −(θ/ε) · 1[|pre − θ| < ε/2];
* ∂H/∂θ = −(1/ε) · 1[|pre − θ| < ε/2] (the L0 penalty's step, which gives θ a gradient of its own).

It is built from ``stop_gradient`` alone, so no backend's custom-gradient API is needed: with
``g = −θ · stop_gradient(1[|pre − θ| < ε/2]) / ε``, the term ``g − stop_gradient(g)`` is exactly 0 in
the forward pass and has derivative ``−1[|pre − θ| < ε/2] / ε`` in θ and none in pre. The forward values
are therefore exactly ``pre · H`` and exactly 0 or 1 for the step.

Half-precision inputs are compared and differentiated in float32: θ is not rounded to float16 before the
comparison, and θ's pseudo-derivative (of size θ/ε per entry, ε often 1e-3) is summed over the batch in
float32, where a loss-scaled float16 sum would overflow.
"""

from __future__ import annotations

import keras
from keras import ops

from collapse_tui.nn.methods.common import Kernel, per_member, per_neuron


def step_parts(pre, log_threshold, bandwidth):
    """The exact step H (N, ..., m), θ and the straight-through term ``g − stop_gradient(g)`` (0 in value),
    in float32 at least. ``log_threshold`` (N, m); ``bandwidth`` (N,) or a Python number."""
    pre = ops.stop_gradient(ops.convert_to_tensor(pre))
    dtype = keras.backend.result_type(pre.dtype, "float32")
    pre = ops.cast(pre, dtype)
    ndim = len(pre.shape)
    theta = ops.cast(per_neuron(ops.exp(log_threshold), ndim), dtype)
    if not isinstance(bandwidth, (int, float)):
        bandwidth = ops.cast(per_member(bandwidth, ndim), dtype)
    heaviside = ops.cast(pre > theta, dtype)
    window = ops.cast(ops.abs(pre - theta) < bandwidth / 2, dtype)
    g = -theta * window / bandwidth
    return heaviside, theta, g - ops.stop_gradient(g)


def step(pre, log_threshold, bandwidth):
    """H(pre − θ), exactly 0 or 1 in ``pre``'s dtype, with the rectangle pseudo-derivative in θ (none in
    pre)."""
    pre = ops.convert_to_tensor(pre)
    heaviside, _, straight_through = step_parts(pre, log_threshold, bandwidth)
    # Parenthesised so that the forward value is H + 0, exact; H + g − g could round.
    return ops.cast(heaviside + straight_through, pre.dtype)


def codes(pre, log_threshold, bandwidth):
    """``pre · H(pre − θ)``, with the straight-through pseudo-derivative in θ; also returns the step."""
    pre = ops.convert_to_tensor(pre)
    heaviside, theta, straight_through = step_parts(pre, log_threshold, bandwidth)
    # The jump's pseudo-derivative is scaled by θ (the paper's −θ/ε), not by pre: θ carries no gradient
    # of its own in this factor.
    out = pre * ops.cast(heaviside, pre.dtype) + ops.cast(ops.stop_gradient(theta) * straight_through, pre.dtype)
    return out, ops.cast(heaviside + straight_through, pre.dtype)


class JumpReLU(Kernel):
    """JumpReLU: ``params`` ``"log_threshold"`` (N, m) and ``"bandwidth"`` (N,) or a Python number; the
    penalty's coefficient is per member (N,). ``aux`` is the step, for the penalty."""

    name = "jumprelu"
    variables = ("log_threshold",)
    settings = ("bandwidth",)

    @classmethod
    def activate(cls, pre, params, training):
        out, heaviside = codes(pre, params["log_threshold"], params["bandwidth"])
        return out, heaviside, {}

    @classmethod
    def penalty(cls, codes, aux, coefficient, batch):
        coefficient = per_member(ops.cast(coefficient, codes.dtype), 1)
        return coefficient * batch(ops.sum(aux, axis=-1))
