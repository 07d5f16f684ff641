"""Layers of the sparse autoencoder, written with ``keras.ops`` only so they run on every backend."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from collapse_tui.nn import checks
from collapse_tui.nn.methods import common
from collapse_tui.nn.methods.topk import TopK as TopKKernel


# A dunder name, set around Keras' attribute tracking: Keras' saving skips such attributes, so the
# views (which reference their owner, not the other way round) are never saved with it.
_VIEWS_ATTRIBUTE = "__inference_views__"


def _views(owner) -> dict:
    views = owner.__dict__.get(_VIEWS_ATTRIBUTE)
    if views is None:
        views = {}
        object.__setattr__(owner, _VIEWS_ATTRIBUTE, views)
    return views


def inference_view(owner: keras.layers.Layer, method: str, output_key: str | None = None,
                   **arguments) -> "InferenceView":
    """The cached :class:`InferenceView` of ``owner.<method>`` (one per method, key and arguments, which
    must be hashable)."""
    views = _views(owner)
    key = (method, output_key, tuple(sorted(arguments.items())))
    if key not in views:
        views[key] = InferenceView(owner, method, output_key, arguments=arguments or None)
    return views[key]


def reset_compiled_functions(model: keras.Model) -> None:
    """Make ``model``'s next training step, prediction and evaluation use freshly traced functions.

    Needed after changing a Python value that a compiled step captured at trace time (TopK's ``k`` is a
    static shape under TensorFlow and JAX). It is safe in the middle of ``fit``: the trainers of the
    TensorFlow, JAX and PyTorch backends read ``model.train_function`` anew before every step, so a
    rebuild made in ``on_epoch_begin`` (or ``on_train_batch_begin``) is used from the next step on;
    ``predict`` and ``evaluate`` build their functions again when they find ``None``.
    """
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)
    model.test_function = None
    model.predict_function = None
    for view in model.__dict__.get(_VIEWS_ATTRIBUTE, {}).values():
        view.predict_function = None


@keras.saving.register_keras_serializable(package="collapse_tui")
class KSparseActivation(keras.layers.Layer):
    """Base of the activations that keep ``k`` values per sample (:class:`TopK`) or per sample on
    average (:class:`~collapse_tui.nn.BatchTopK`): ``k``, its checks against the input width, and its
    config, and ``call`` through the subclass's :attr:`kernel` (its method's arithmetic, with this layer
    as the one member: :meth:`kernel_params` and the variables of :meth:`kernel_variables`, which
    training updates). One that holds ``k`` elsewhere too (a variable a compiled step reads) extends
    :meth:`set_k`.

    Args:
        k: a whole number >= 1 and at most the input width (the last axis).
    """

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self._k = checks.whole_number("k", k)
        self.input_dim: int | None = None

    @property
    def k(self) -> int:
        """The current ``k`` (a Python int, read from the host)."""
        return self._k

    @staticmethod
    def _refuse_above_width(k: int, width: int | None) -> None:
        # The width is only known once built; until then any k >= 1 is accepted.
        if width is not None and k > width:
            raise ValueError(f"k must be at most the number of features ({width}), got {k}")

    def build(self, input_shape):
        dim = input_shape[-1]
        self._refuse_above_width(self._k, dim)
        self.input_dim = dim

    def set_k(self, k: int) -> None:
        """Change ``k`` (a whole number >= 1 and at most the input width)."""
        k = checks.whole_number("k", k)
        self._refuse_above_width(k, self.input_dim)
        self._k = k

    # The layer as its kernel's one member (collapse_tui.nn.methods): the subclass names the kernel.
    kernel = None
    sae_attribute = "topk"  # the SparseAutoencoder's attribute for this layer (its saved path)

    @classmethod
    def for_sae(cls, sae) -> "KSparseActivation":
        """The layer of ``sae`` (a SparseAutoencoder of this layer's method), named as the method."""
        return cls(sae.k, name=cls.kernel.name)

    def kernel_variables(self) -> dict[str, Any]:
        """The variables the kernel reads and updates, by the kernel's names."""
        return {}

    def kernel_settings(self) -> dict[str, Any]:
        """The kernel's per-member constants (Python numbers), by the kernel's names."""
        return {}

    def kernel_params(self) -> dict[str, Any]:
        """The kernel's ``params``, for one member: ``k`` static (a Python int)."""
        return {"k": self.k, **common.one_member(self.kernel_variables()), **self.kernel_settings()}

    def call(self, inputs, training=None):
        codes, _, updates = self.kernel.activate(ops.expand_dims(inputs, 0), self.kernel_params(), bool(training))
        common.apply_updates(self.kernel_variables(), updates)
        return codes[0]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"k": self._k})
        return config


@keras.saving.register_keras_serializable(package="collapse_tui")
class TopK(KSparseActivation):
    """ReLU, then keep the ``k`` largest activations of each sample and zero the others.

    The threshold of a sample is its k-th largest value, taken as the minimum of ``ops.top_k``'s k
    values (slicing the k-th entry out of top_k's output makes XLA sort the whole row, several times
    slower); every entry at or above it is kept.

    Ties: all entries equal to the k-th largest value are kept, so a sample may keep more than ``k``
    non-zeros when several activations tie exactly at its threshold (not expected with continuous
    activations). A sample with fewer than ``k`` positive pre-activations keeps only those: it has
    fewer than ``k`` non-zeros, never negative ones.

    Gradients flow only through the kept entries (the threshold itself is only compared against).

    ``k`` can be changed with :meth:`set_k` between training epochs; compiled train/predict/test
    functions traced with the old ``k`` must then be rebuilt (see :func:`reset_compiled_functions`).

    The arithmetic is the Top-k kernel's (:mod:`collapse_tui.nn.methods.topk`), as one member.

    Args:
        k: number of activations kept per sample, a whole number >= 1 and at most the input width.
    """

    kernel = TopKKernel


@keras.saving.register_keras_serializable(package="collapse_tui")
class InferenceView(keras.Model):
    """A model whose ``call`` is one method of another model, for batched, compiled inference.

    ``InferenceView(vae, "encode", "hidden").predict(x)`` runs ``vae.encode(x)["hidden"]`` through
    Keras' ``predict`` (batching, and a traced function under TensorFlow and JAX) without a second copy
    of any weight: the owner is a tracked sub-layer, so the view's variables are the owner's.

    Args:
        owner: the model (or layer) whose method is run.
        method: name of a method of ``owner`` taking one input tensor (or structure of tensors).
        output_key: when the method returns a dict, the entry to return.
        arguments: keyword arguments the method is called with besides the input (fixed for the view:
            its compiled function is traced with them).
    """

    def __init__(self, owner: keras.layers.Layer, method: str, output_key: str | None = None,
                 arguments: dict[str, Any] | None = None, **kwargs):
        super().__init__(**kwargs)
        if not callable(getattr(owner, method, None)):
            raise ValueError(f"method must name a method of {type(owner).__name__}, got {method!r}")
        self.owner = owner
        self.method = method
        self.output_key = output_key
        self.arguments = dict(arguments or {})
        self.built = owner.built

    def call(self, inputs):
        outputs = getattr(self.owner, self.method)(inputs, **self.arguments)
        if self.output_key is not None:
            outputs = outputs[self.output_key]
        return outputs

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "owner": keras.saving.serialize_keras_object(self.owner),
            "method": self.method,
            "output_key": self.output_key,
            "arguments": self.arguments or None,
        })
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "InferenceView":
        config = dict(config)
        config["owner"] = keras.saving.deserialize_keras_object(config["owner"])
        return cls(**config)
