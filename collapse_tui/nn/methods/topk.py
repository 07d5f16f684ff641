"""Top-k (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): ReLU, then keep each sample's
``k`` largest activations and zero the others, in training and at inference alike. No penalty.

The cut of a sample is its k-th largest value, exactly (:func:`~collapse_tui.nn.methods.common.kth_largest`);
every entry at or above it is kept. Ties: all entries equal to the k-th largest value are kept, so a
sample may keep more than ``k`` non-zeros when several activations tie exactly at its cut (not expected
with continuous activations). A sample with fewer than ``k`` positive pre-activations keeps only those:
it has fewer than ``k`` non-zeros, never negative ones. Gradients flow only through the kept entries (the
cut itself is only compared against).
"""

from __future__ import annotations

from keras import ops

from collapse_tui.nn.methods.common import Kernel, keep_largest


class TopK(Kernel):
    """Top-k: ``params["k"]`` per member (or a static int), ``params["k_max"]`` (:func:`kth_largest`)."""

    name = "topk"
    by_k = True

    @classmethod
    def activate(cls, pre, params, training):
        return keep_largest(ops.relu(pre), params["k"], params.get("k_max")), None, {}
