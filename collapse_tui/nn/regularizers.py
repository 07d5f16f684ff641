"""Activity regularizers whose strength can change while a model trains."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from collapse_tui.nn import checks


@keras.saving.register_keras_serializable(package="collapse_tui")
class L1ActivityRegularizer(keras.regularizers.Regularizer):
    """L1 penalty on activations, ``coefficient × Σ|a|`` summed over every entry of the tensor.

    Batch-size semantics: called directly, the penalty is a sum over the batch, as every Keras
    regularizer's is. :class:`~collapse_tui.nn.SparseAutoencoder` divides it by the batch size itself,
    so its sparsity term is ``coefficient × mean over the batch of Σ_j |a_j|`` (one sample's summed
    activation, averaged) and its scale does not depend on the batch size. Attached to a layer as
    ``activity_regularizer``, Keras 3.14 and later divide by the batch size the same way; earlier Keras
    3 releases do not, which is why the autoencoder does not rely on that path.

    The coefficient lives in a non-trainable ``keras.Variable`` (:attr:`variable`), so a compiled
    training step reads its current value instead of the number seen when it was traced. Under JAX
    the step only sees the variable if the model being trained tracks it: assign
    ``regularizer.variable`` to an attribute of the model or of one of its layers (the autoencoder
    does). Change it between epochs (JAX holds the model's variables outside them during an epoch).

    Args:
        coefficient: penalty weight, a finite number >= 0.
    """

    def __init__(self, coefficient: float = 1e-3):
        self._coefficient = checks.number("coefficient", coefficient, 0)
        self.variable = keras.Variable(
            self._coefficient, dtype="float32", trainable=False, name="l1_coefficient"
        )

    @property
    def coefficient(self) -> float:
        """The current coefficient (read from the host, without touching the device)."""
        return self._coefficient

    def set_coefficient(self, value: float) -> None:
        """Change the coefficient (a finite number >= 0)."""
        self._coefficient = checks.number("coefficient", value, 0)
        self.variable.assign(self._coefficient)

    def __call__(self, x):
        return ops.cast(self.variable, x.dtype) * ops.sum(ops.abs(x))

    def get_config(self) -> dict[str, Any]:
        return {"coefficient": self._coefficient}
