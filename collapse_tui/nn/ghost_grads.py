"""Ghost grads: a remedy that gives dead neurons a gradient toward the part of the input the SAE misses.
``keras.ops`` only, over a leading member axis as :mod:`collapse_tui.nn.methods.common`.

As Anthropic's circuits update of January 2024 describes it (and as the SparseAutoencoder of SAELens'
2024 releases computes it), per training step:

1. the residual ``e = z - z_hat`` of the ordinary reconstruction (held constant);
2. the *ghost* reconstruction of each input: the dead neurons' pre-activations through ``exp`` (in
   place of the activation: positive and with a gradient everywhere, so a neuron whose pre-activation
   is never positive is reached), through the decoder without its bias, then scaled per input so that
   its norm is half the residual's (the scale held constant);
3. the ghost error ``sum over features of (ghost - e)^2`` per input, rescaled per input so that it
   equals that input's reconstruction error (the factor held constant), averaged over the batch and
   added to the loss.

So the ghost term's value is the reconstruction error's while any neuron is dead (0 otherwise), and it
only moves the dead neurons' encoder rows, biases and decoder rows (and ``b_dec``, through the
pre-activations), toward directions that would explain the residual.

Named deviations: the exponential is taken of each input's dead pre-activations *minus their maximum*
(held constant). Scaling the ghost output to a fixed norm cancels any common factor, so the scaled
output and its gradients are those of the published ``exp(pre)`` exactly, but nothing overflows when a
pre-activation is large. The ratios' small guards (SAELens' 1e-6) are relative to our per-input sums
over features, not SAELens' means over features. SAELens divides each ghost error by the residual's
norm before rescaling; the per-input rescaling cancels that division, so it is left out.
"""

from __future__ import annotations

from keras import ops

# An input's ghost error below this counts as zero in the rescaling (SAELens' guard).
GUARD = 1e-6


def ghost_grads_loss(pre, dead, decoder, residual, reconstruction_error, batch):
    """The ghost-grad term per member (N,): ``pre`` (N, B, m) pre-activations, ``dead`` (N, m) booleans,
    ``decoder`` (N, m, d), ``residual`` (N, B, d) = z - z_hat (its gradient is stopped here),
    ``reconstruction_error`` (N, B): each input's sum over features of the squared reconstruction error,
    ``batch`` a :class:`~collapse_tui.nn.methods.common.BatchMeans` of the step. 0 for a member with no
    dead neuron."""
    residual = ops.stop_gradient(residual)
    dead_rows = ops.expand_dims(dead, 1)  # (N, 1, m)
    floor = ops.full_like(pre, -1e30)
    shift = ops.stop_gradient(ops.max(ops.where(dead_rows, pre, floor), axis=-1, keepdims=True))
    any_dead = ops.any(dead, axis=-1)  # (N,)
    shift = ops.where(ops.reshape(any_dead, (-1, 1, 1)), shift, ops.zeros_like(shift))
    # Live neurons enter as exp(-100) ~ 4e-44 times a 0 mask: no overflow, and no NaN in any gradient.
    exponent = ops.where(dead_rows, pre - shift, ops.full_like(pre, -100.0))
    acts = ops.exp(exponent) * ops.cast(dead_rows, pre.dtype)
    ghost = ops.einsum("nbm,nmd->nbd", acts, decoder)
    ghost_norm = ops.sqrt(ops.sum(ops.square(ghost), axis=-1, keepdims=True))
    residual_norm = ops.sqrt(ops.sum(ops.square(residual), axis=-1, keepdims=True))
    ghost = ghost * ops.stop_gradient(residual_norm / (2.0 * ghost_norm + GUARD))
    error = ops.sum(ops.square(ghost - residual), axis=-1)  # (N, B)
    rescale = ops.stop_gradient(reconstruction_error / (error + GUARD))
    return batch(rescale * error) * ops.cast(any_dead, error.dtype)
