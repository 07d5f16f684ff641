"""L1: a ReLU, with the L1 penalty ``coefficient × mean over the batch of Σ_neurons |codes|`` (the
classic SAE objective, e.g. Bricken et al. 2023, "Towards Monosemanticity"). The same codes in
training and at inference.

Both terms of the SAE loss are per-sample sums, so the coefficient weighs one sample's total activation
against its squared error, and the penalty's scale does not depend on the batch size (with sample
weights: the weighted sum of |codes| over the batch divided by the total weight).
"""

from __future__ import annotations

from keras import ops

from collapse_tui.nn.methods.common import Kernel, per_member


class L1(Kernel):
    """L1: no parameters; the penalty's coefficient is per member (N,)."""

    name = "l1"

    @classmethod
    def activate(cls, pre, params, training):
        return ops.relu(pre), None, {}

    @classmethod
    def penalty(cls, codes, aux, coefficient, batch):
        coefficient = per_member(ops.cast(coefficient, codes.dtype), 1)
        return coefficient * ops.sum(ops.abs(batch.weighted(codes)), axis=(1, 2)) / batch.total
