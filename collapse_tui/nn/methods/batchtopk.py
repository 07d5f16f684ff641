"""BatchTopK (Bussmann, Leask and Nanda 2024, "BatchTopK Sparse Autoencoders"): ReLU, then keep the
``k × batch_size`` largest activations of the whole batch while training, and cut at a learned threshold
at inference. No penalty.

Training: each member's batch is flattened and its ``k·B``-th largest ReLU'd value is the cutoff; every
value at or above it, and above zero, is kept. A sample can therefore keep more or fewer than ``k``
activations; only the batch average is ``k``. Every axis between the member axis and the last counts as
a sample axis, so ``B`` is the number of rows of width ``m``.

The cutoff is read from a full sort of the flattened batch at a dynamic index rather than from
``ops.top_k(·, k·B)``, because ``B`` is not a static number while TensorFlow traces a step with an unknown
batch size. The index is clamped to the batch.

Ties: every value equal to the cutoff is kept, so a batch may keep a few more than ``k·B`` values when
activations tie exactly at the cutoff (not expected with continuous activations). A batch with fewer
than ``k·B`` positive values keeps all of them, and its cutoff is 0. Gradients flow only through the
kept entries (the cutoff is only compared against).

Inference: values strictly above the member's ``threshold`` are kept, so a sample's output no longer
depends on the rest of its batch. The threshold is an exponential moving average of each training
batch's smallest kept value (the cutoff, unless the batch has fewer than ``k·B`` positive values, where a
cutoff of 0 would drag the inference threshold to 0 exactly when neurons are dying: the paper averages
the smallest kept value). As dictionary_learning's BatchTopK trainer does it (``threshold_beta`` 0.999,
``threshold_start_step`` 1000, the values the schema defaults to), the average waits ``start`` training
batches: the batch after them sets it, each later one moves it by
``threshold ← (1 − momentum)·threshold + momentum·smallest``; a batch that keeps nothing leaves it
alone. Until it is set it is 0, and inference is a plain ReLU. ``threshold_updates`` counts the training
batches that kept something (a float, exact up to 2**24 batches), which is what ``start`` is compared
with. Both are float32 whatever the input's dtype: a
small momentum's step can fall below float16's resolution.
"""

from __future__ import annotations

from keras import ops

from collapse_tui.nn.methods.common import Kernel, per_member


class BatchTopK(Kernel):
    """BatchTopK: ``params`` ``"k"`` (N,), ``"threshold"`` (N,), ``"threshold_updates"`` (N,),
    ``"momentum"`` and ``"start"`` (N,) or Python numbers; training updates the threshold and its count."""

    name = "batchtopk"
    by_k = True
    variables = ("threshold", "threshold_updates")
    settings = ("momentum", "start")

    @classmethod
    def activate(cls, pre, params, training):
        x = ops.relu(pre)
        zeros = ops.zeros_like(x)
        ndim = len(x.shape)
        old = ops.convert_to_tensor(params["threshold"])
        if not training:
            return ops.where(x > per_member(ops.cast(old, x.dtype), ndim), x, zeros), None, {}

        n = ops.shape(x)[0]
        flat = ops.reshape(x, (n, -1))
        size = ops.cast(ops.shape(flat)[1], "int32")
        rows = size // ops.cast(ops.shape(x)[-1], "int32")
        count = ops.minimum(ops.cast(params["k"], "int32") * rows, size)  # (N,)
        # Ascending sort: the (k·B)-th largest value sits k·B places from the end.
        index = ops.reshape(size - count, (-1, 1))
        cutoff = ops.stop_gradient(ops.take_along_axis(ops.sort(flat, axis=1), index, axis=1))  # (N, 1)
        kept = ops.logical_and(x >= per_member(cutoff, ndim), x > 0)

        x32 = ops.reshape(ops.stop_gradient(ops.cast(x, "float32")), (n, -1))
        flat_kept = ops.reshape(kept, (n, -1))
        any_kept = ops.any(flat_kept, axis=1)
        smallest = ops.min(ops.where(flat_kept, x32, ops.full_like(x32, float("inf"))), axis=1)
        smallest = ops.where(any_kept, smallest, old)
        updates = ops.convert_to_tensor(params["threshold_updates"])
        momentum, start = (value if isinstance(value, (int, float)) else ops.convert_to_tensor(value)
                           for value in (params["momentum"], params.get("start", 0)))
        first = ops.logical_and(ops.equal(updates, start), any_kept)
        averaged = ops.where(first, smallest, (1.0 - momentum) * old + momentum * smallest)
        threshold = ops.where(updates >= start, averaged, old)  # still waiting: stays 0
        new = {"threshold": threshold, "threshold_updates": updates + ops.cast(any_kept, "float32")}
        return ops.where(kept, x, zeros), None, new
