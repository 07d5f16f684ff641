"""TopK (and the k checks BatchTopK shares), the L1 activity regularizer and the compiled-function reset,
on the current backend."""

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui.nn import BatchTopK, L1ActivityRegularizer, TopK, reset_compiled_functions

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

X = np.array([[1.0, -2.0, 3.0, 0.5, 2.0],
              [-1.0, -2.0, -3.0, 4.0, 0.0]], dtype="float32")


def np_out(layer, x):
    return ops.convert_to_numpy(layer(ops.convert_to_tensor(x)))


def test_topk_keeps_the_k_largest_after_relu():
    out = np_out(TopK(2), X)
    # Row 0: ReLU gives [1, 0, 3, .5, 2]; the two largest are 3 and 2.
    # Row 1: only one positive value; the k-th largest is 0, so nothing negative comes back.
    np.testing.assert_array_equal(out, [[0, 0, 3, 0, 2], [0, 0, 0, 4, 0]])
    np.testing.assert_array_equal(np_out(TopK(5), X), np.maximum(X, 0))
    np.testing.assert_array_equal(np_out(TopK(1), X), [[0, 0, 3, 0, 0], [0, 0, 0, 4, 0]])


def test_topk_keeps_every_entry_tied_at_the_threshold():
    x = np.array([[1.0, 2.0, 2.0, 0.5]], dtype="float32")
    np.testing.assert_array_equal(np_out(TopK(2), x), [[0, 2, 2, 0]])
    np.testing.assert_array_equal(np_out(TopK(1), x), [[0, 2, 2, 0]])  # documented: ties are kept


def test_topk_works_on_higher_rank_inputs_per_last_axis():
    x = np.arange(24, dtype="float32").reshape(2, 3, 4) * np.where(np.arange(4) % 2, 1, -1)
    out = np_out(TopK(1), x)
    assert out.shape == x.shape
    np.testing.assert_array_equal(np.count_nonzero(out, axis=-1), np.ones((2, 3)))
    np.testing.assert_array_equal(out.max(axis=-1), x.max(axis=-1))


# TopK and BatchTopK check k in the base class they share, KSparseActivation.

@pytest.mark.parametrize("layer_class", [TopK, BatchTopK])
@pytest.mark.parametrize("bad", [0, -3, 1.5, "3", None, True, float("nan"), float("inf")])
def test_k_layers_reject_bad_k(layer_class, bad):
    with pytest.raises(ValueError, match="k must be a whole number >= 1"):
        layer_class(bad)
    layer = layer_class(2)
    with pytest.raises(ValueError, match="k must be"):
        layer.set_k(bad)
    assert layer.k == 2


@pytest.mark.parametrize("layer_class", [TopK, BatchTopK])
def test_k_layers_reject_k_above_the_width(layer_class):
    with pytest.raises(ValueError, match="at most the number of features \\(5\\)"):
        layer_class(6)(ops.convert_to_tensor(X))
    layer = layer_class(2)
    layer(ops.convert_to_tensor(X))
    with pytest.raises(ValueError, match="at most the number of features"):
        layer.set_k(6)
    layer.set_k(5.0)  # a whole float (a schedule's value) is accepted
    assert layer.k == 5 and isinstance(layer.k, int)


def test_topk_gradient_flows_only_through_kept_entries():
    # One SGD step (lr 1) on loss = sum of outputs: a kept unit's bias moves by -1 and its kernel
    # column by -x; a dropped unit (negative, or positive but not in the top k) does not move at all.
    x = X[:1]
    model = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(5, kernel_initializer="identity", bias_initializer="zeros"),
        TopK(2),
    ])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=lambda y_true, y_pred: ops.sum(y_pred, axis=-1))
    model.fit(x, np.zeros_like(x), epochs=1, batch_size=1, verbose=0)
    kernel, bias = (ops.convert_to_numpy(w) for w in model.layers[0].weights)
    kept = np.array([0, 0, 1, 0, 1], dtype="float32")  # 3 and 2 are the top two of [1, -2, 3, .5, 2]
    np.testing.assert_allclose(bias, -kept)
    np.testing.assert_allclose(kernel, np.eye(5) - np.outer(x[0], kept))


class _NonZeros(keras.metrics.Mean):
    """Mean number of non-zero outputs per sample (what a TopK layer let through)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        count = ops.sum(ops.cast(ops.not_equal(y_pred, 0), "float32"), axis=-1)
        return super().update_state(count, sample_weight=sample_weight)


class _KPerEpoch(keras.callbacks.Callback):
    def __init__(self, layer, ks, reset=True):
        super().__init__()
        self.layer, self.ks, self.reset = layer, ks, reset

    def on_epoch_begin(self, epoch, logs=None):
        self.layer.set_k(self.ks[epoch])
        if self.reset:
            reset_compiled_functions(self.model)


def _positive_model(k, layer_class=TopK):
    # Every pre-activation is about 10 and they all differ, so exactly k survive whatever the input
    # (TopK; BatchTopK: exactly k·B of the batch in training).
    layer = layer_class(k)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, kernel_initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=1),
                           bias_initializer=keras.initializers.Constant(10.0)),
        layer,
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse", metrics=[_NonZeros(name="nonzeros")])
    return model, layer


def test_k_changed_between_epochs_is_used_by_the_next_epochs_steps():
    x = np.random.RandomState(0).normal(size=(32, 4)).astype("float32")
    model, topk = _positive_model(6)
    assert (np.count_nonzero(model.predict(x, verbose=0), axis=1) == 6).all()  # traced with k = 6
    assert model.evaluate(x, np.zeros((32, 8), "float32"), verbose=0, return_dict=True)["nonzeros"] == 6
    ks = [6, 3, 1]
    history = model.fit(x, np.zeros((32, 8), "float32"), epochs=3, batch_size=8, verbose=0,
                        callbacks=[_KPerEpoch(topk, ks)])
    assert history.history["nonzeros"] == ks
    # The predict and test functions traced before fit were rebuilt too.
    np.testing.assert_array_equal(np.count_nonzero(model.predict(x, verbose=0), axis=1), np.ones(32))
    assert model.evaluate(x, np.zeros((32, 8), "float32"), verbose=0, return_dict=True)["nonzeros"] == 1


def test_batchtopk_k_changed_between_epochs_needs_no_retracing():
    model, layer = _positive_model(6, BatchTopK)
    x = np.random.RandomState(0).normal(size=(16, 4)).astype("float32")
    ks = [6, 3, 1]
    # No reset_compiled_functions: BatchTopK's step reads k from a variable.
    history = model.fit(x, np.zeros((16, 8), "float32"), epochs=3, batch_size=8, verbose=0,
                        callbacks=[_KPerEpoch(layer, ks, reset=False)])
    assert history.history["nonzeros"] == ks
    assert layer.k == 1 and float(ops.convert_to_numpy(layer.k_variable)) == 1.0


def test_reset_compiled_functions_before_any_fit_is_harmless():
    model, topk = _positive_model(3)
    reset_compiled_functions(model)
    assert model.train_function is None
    x = np.ones((4, 4), "float32")
    model.fit(x, np.zeros((4, 8), "float32"), epochs=1, verbose=0)
    assert model.train_function is not None


def test_topk_config_round_trip():
    layer = TopK(3, name="sparse")
    layer.set_k(2)
    clone = TopK.from_config(layer.get_config())
    assert clone.k == 2 and clone.name == "sparse"
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, TopK) and revived.k == 2
    np.testing.assert_array_equal(np_out(revived, X), np_out(layer, X))


# --------------------------------------------------------------------------- L1 regularizer

def test_l1_regularizer_value_is_coefficient_times_summed_absolute_activations():
    reg = L1ActivityRegularizer(0.1)
    a = np.array([[1.0, -2.0], [0.5, 0.0]], dtype="float32")
    assert float(ops.convert_to_numpy(reg(ops.convert_to_tensor(a)))) == pytest.approx(0.35)
    reg.set_coefficient(0.5)
    assert reg.coefficient == 0.5
    assert float(ops.convert_to_numpy(reg(ops.convert_to_tensor(a)))) == pytest.approx(1.75)
    assert float(ops.convert_to_numpy(reg.variable)) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", None, True])
def test_l1_regularizer_rejects_bad_coefficients(bad):
    with pytest.raises(ValueError, match="coefficient must be a finite number >= 0"):
        L1ActivityRegularizer(bad)
    reg = L1ActivityRegularizer(0.1)
    with pytest.raises(ValueError, match="coefficient"):
        reg.set_coefficient(bad)
    assert reg.coefficient == 0.1


def test_l1_regularizer_config_round_trip():
    reg = L1ActivityRegularizer(0.25)
    reg.set_coefficient(0.125)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg))
    assert isinstance(revived, L1ActivityRegularizer) and revived.coefficient == 0.125
    assert L1ActivityRegularizer.from_config(reg.get_config()).coefficient == 0.125
