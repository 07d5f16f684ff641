"""The bias-floor remedy: a per-neuron controller that raises the encoder bias of a neuron whose running
firing frequency has fallen below a floor, until it fires again. ``keras.ops`` only.

Its sources are the load-balancing controllers that replace an auxiliary loss by a bias moved after
every step:

- Wang et al. (2024), "Auxiliary-Loss-Free Load Balancing Strategy for Mixture-of-Experts": a bias per
  expert, added to the routing scores only where the experts are picked, moved by ``u × sign(target
  load − load)`` after every step (``u = 0.001``), with no auxiliary loss and no gradient through it;
- its SAE version, "Group Bias Adaptation" (Chen et al. 2025, "Taming Polysemanticity in LLMs: Provable
  Feature Recovery via Sparse Autoencoders"): per-neuron biases adjusted so that each neuron's
  activation frequency matches a target.

Ours (named deviations): it is one-sided, a floor rather than a target (only neurons firing below the
floor are raised, by a fixed ``step``; nothing is ever lowered, so a neuron that fires enough is left to
the optimiser exactly as without the remedy); the frequency is a running average over updates (an
exponential moving average of weight ``1 / window`` of each training batch's fraction of inputs the
neuron fired on) rather than one batch's load; and the bias is an offset added to the SAE's encoder
pre-activation, ``pre = (z − b_dec) @ W_enc + b_enc + offset``, read by the activation, the loss and
inference alike (the offset is part of the model, as ``b_enc`` is). Being on the pre-activation, it
reaches ReLU-dead neurons, whose pre-activation is never positive on any input: they have no gradient
and AuxK cannot revive them (its codes are the *ReLU'd* pre-activations of dead neurons, all 0 there),
while the offset lifts such a neuron's largest pre-activation by ``step`` per update until it crosses 0
(or the method's cut) and the neuron fires.

The state is two non-trainable variables per neuron, updated in the loss of every training step as the
idle counts are (under JAX a step may update non-trainable variables only, never ``b_enc``): the
``offset``, and the running firing frequency ``rate``, which starts at the floor (no evidence either
way): a neuron that fires on at least the floor's fraction of every batch is never raised, and one that
never fires is raised from its first update.
"""

from __future__ import annotations

import numpy as np
from keras import ops


def bias_floor_update(rate, offset, fired_fraction, floor, step, window):
    """``(rate, offset)`` after one training step: ``rate ← rate + (fired_fraction − rate) / window``,
    then ``offset ← offset + step`` where the new rate is below ``floor``.

    ``rate``, ``offset`` and ``fired_fraction`` (the fraction of the batch's inputs on which each neuron
    fired) are per neuron; ``floor``, ``step`` and ``window`` Python numbers or tensors broadcasting
    against them (per member, (N, 1), in a bank). A floor of 0 leaves the offset unchanged (a rate is
    never negative). No gradient flows through either.
    """
    fired_fraction = ops.stop_gradient(ops.cast(fired_fraction, rate.dtype))
    rate = rate + (fired_fraction - rate) / window
    raised = ops.where(ops.less(rate, floor), step, 0.0)
    return rate, offset + ops.cast(raised, offset.dtype)


def update_bias_floor(rate, offset, codes, floor, step, window) -> None:
    """Assign to the variables ``rate`` and ``offset`` their values after a training step whose codes are
    ``codes`` (..., B, m: a neuron fired where its code is positive; see :func:`bias_floor_update`)."""
    fraction = ops.mean(ops.cast(ops.greater(codes, 0), rate.dtype), axis=-2)
    new_rate, new_offset = bias_floor_update(ops.convert_to_tensor(rate), ops.convert_to_tensor(offset), fraction,
                                             floor, step, window)
    rate.assign(new_rate)
    offset.assign(new_offset)


def bank_state(members, n_neurons: int) -> tuple[list, list, list]:
    """A bank's bias-floor state from its members (SAEs): each member's offset and firing rate, and the
    rows floor, step and window (one value per member each). A member without the remedy has zeros and
    a floor of 0, so its offset never moves."""
    zeros = np.zeros(n_neurons, np.float32)
    on = [sae.bias_offset is not None for sae in members]
    offsets = [ops.convert_to_numpy(s.bias_offset) if f else zeros for s, f in zip(members, on)]
    rates = [ops.convert_to_numpy(s.fire_rate) if f else zeros for s, f in zip(members, on)]
    control = [[s.bias_floor if f else 0.0 for s, f in zip(members, on)], [s.bias_step for s in members],
               [float(s.bias_window) for s in members]]
    return offsets, rates, control
