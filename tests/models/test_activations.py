"""BatchTopK and JumpReLU on the current backend: forward passes, thresholds and gradients by hand."""

import math
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui.nn.activations import BatchTopK, JumpReLU

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

# Positive values sorted: 4, 3, 2, 1, .5, .3, .2, .1 (eight of twelve).
X = np.array([[3.0, -1.0, 0.5, 2.0],
              [0.2, 4.0, -2.0, 1.0],
              [-1.0, -3.0, 0.1, 0.3]], dtype="float32")


def f32(values):
    # Expected values in float32, as the layers return their inputs' own float32 numbers.
    return np.asarray(values, dtype="float32")


def npy(x):
    return ops.convert_to_numpy(x)


def scalar(variable):
    return float(npy(variable))


class _Probe(keras.Model):
    """Outputs ``fn(pre)`` for a trainable ``pre``, whatever its input, so that one SGD step with learning
    rate 1 on ``sum(output)`` moves every weight (``pre`` and the activation's) by minus its gradient:
    the trainers of all backends compute the gradients, no backend's autodiff API is called here."""

    def __init__(self, pre, activation, method="__call__", **call_kwargs):
        super().__init__(name="probe")  # the default, "_probe", is no valid TensorFlow scope name
        self.pre = self.add_weight(shape=pre.shape, initializer=keras.initializers.Constant(pre), name="pre")
        self.activation = activation
        self.method = method
        self.call_kwargs = call_kwargs

    def call(self, inputs):
        return getattr(self.activation, self.method)(self.pre, **self.call_kwargs)


def gradients(pre, activation, method="__call__", **call_kwargs):
    """Gradients of ``sum(activation.<method>(pre))`` in ``pre`` and in the activation's trainable weights.

    It takes an SGD step, so the activation's weights have moved afterwards: use a fresh one per call."""
    probe = _Probe(pre, activation, method, **call_kwargs)
    probe.compile(optimizer=keras.optimizers.SGD(1.0), loss=lambda y_true, y_pred: ops.sum(y_pred))
    variables = [probe.pre, *activation.trainable_weights]
    before = [npy(v).copy() for v in variables]
    with warnings.catch_warnings():
        # Keras warns when a variable gets no gradient at all (pre, through JumpReLU.step): expected.
        warnings.simplefilter("ignore", UserWarning)
        probe.fit(np.zeros((1, 1), "float32"), np.zeros((1, 1), "float32"), epochs=1, batch_size=1, verbose=0)
    return [b - npy(v) for b, v in zip(before, variables)]


# --------------------------------------------------------------------------- BatchTopK

def test_batchtopk_training_keeps_the_k_times_batch_largest_of_the_whole_batch():
    layer = BatchTopK(2)
    out = npy(layer(X, training=True))
    # k·B = 6: 4, 3, 2, 1, .5 and .3 survive, wherever they are; the cutoff is .3.
    np.testing.assert_array_equal(out, f32([[3, 0, 0.5, 2], [0, 4, 0, 1], [0, 0, 0, 0.3]]))
    np.testing.assert_array_equal(np.count_nonzero(out, axis=1), [3, 2, 1])  # more and fewer than k
    assert np.count_nonzero(out) == 6
    # k·B = 3: 4, 3, 2; the last sample keeps nothing.
    np.testing.assert_array_equal(npy(BatchTopK(1)(X, training=True)), [[3, 0, 0, 2], [0, 4, 0, 0], [0, 0, 0, 0]])


def test_batchtopk_training_never_keeps_negative_values():
    # k·B = 12 but only eight values are positive: the cutoff is 0 and the output is the ReLU; the
    # threshold learns the smallest value kept (0.1), not the cutoff.
    layer = BatchTopK(4)
    np.testing.assert_array_equal(npy(layer(X, training=True)), np.maximum(X, 0))
    assert scalar(layer.threshold) == pytest.approx(0.1)
    negative = -np.abs(X) - 1
    np.testing.assert_array_equal(npy(BatchTopK(1)(negative, training=True)), np.zeros_like(X))


def test_batchtopk_training_keeps_every_value_tied_at_the_cutoff():
    x = np.array([[2.0, 1.0], [1.0, 0.5]], dtype="float32")
    np.testing.assert_array_equal(npy(BatchTopK(1)(x, training=True)), [[2, 1], [1, 0]])  # documented


def test_batchtopk_inference_keeps_values_strictly_above_the_threshold():
    layer = BatchTopK(2)
    np.testing.assert_array_equal(npy(layer(X)), np.maximum(X, 0))  # threshold 0 before training: a ReLU
    layer.threshold.assign(1.0)
    expected = [[3, 0, 0, 2], [0, 4, 0, 0], [0, 0, 0, 0]]  # the 1 in the second sample is not above 1
    np.testing.assert_array_equal(npy(layer(X)), expected)
    np.testing.assert_array_equal(npy(layer(X, training=False)), expected)
    assert scalar(layer.threshold) == 1.0 and scalar(layer.threshold_updates) == 0.0  # inference updates nothing


def test_batchtopk_threshold_starts_at_the_first_cutoff_then_follows_the_moving_average():
    layer = BatchTopK(2, threshold_momentum=0.25)
    assert scalar(layer.threshold) == 0.0
    layer(X, training=True)  # cutoff .3
    assert scalar(layer.threshold) == pytest.approx(0.3)
    layer.set_k(1)
    layer(X, training=True)  # cutoff 2: .75 × .3 + .25 × 2
    assert scalar(layer.threshold) == pytest.approx(0.725)
    layer(X[:2], training=True)  # k·B = 2 of the first two samples: 4, 3, so the cutoff is 3
    assert scalar(layer.threshold) == pytest.approx(0.75 * 0.725 + 0.25 * 3)
    assert scalar(layer.threshold_updates) == 3.0


def test_batchtopk_threshold_waits_its_start_batches_as_dictionary_learning_does():
    # start = 2: the first two training batches leave the threshold at 0 (inference is a plain ReLU), the
    # third sets it to its cutoff, the fourth averages.
    layer = BatchTopK(2, threshold_momentum=0.25, threshold_start=2)
    for _ in range(2):
        layer(X, training=True)  # cutoff .3 each time, not used yet
        assert scalar(layer.threshold) == 0.0
    np.testing.assert_array_equal(npy(layer(X, training=False)), np.maximum(npy(X), 0))
    layer.set_k(1)
    layer(X, training=True)  # cutoff 2 sets it
    assert scalar(layer.threshold) == pytest.approx(2.0) and scalar(layer.threshold_updates) == 3.0
    layer.set_k(2)
    layer(X, training=True)  # cutoff .3: .75 × 2 + .25 × .3
    assert scalar(layer.threshold) == pytest.approx(0.75 * 2.0 + 0.25 * 0.3)
    assert BatchTopK.from_config(layer.get_config()).threshold_start == 2


def test_batchtopk_threshold_follows_the_smallest_kept_value_when_few_are_positive():
    # k·B = 4, but only two values are positive: the cutoff is 0, yet the threshold learns 0.5 (the
    # smallest value kept), not 0; a batch with nothing positive leaves it and the count alone.
    layer = BatchTopK(2, threshold_momentum=0.5)
    sparse = f32([[0.5, -1.0, -2.0], [-1.0, 2.0, -3.0]])
    np.testing.assert_allclose(npy(layer(sparse, training=True)), [[0.5, 0, 0], [0, 2.0, 0]])
    assert scalar(layer.threshold) == pytest.approx(0.5)
    layer(f32([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]]), training=True)
    assert scalar(layer.threshold) == pytest.approx(0.5) and scalar(layer.threshold_updates) == 1.0
    layer(f32([[1.5, 2.5, 3.5], [-1.0, -1.0, -1.0]]), training=True)  # keeps 3.5, 2.5, 1.5: smallest 1.5
    assert scalar(layer.threshold) == pytest.approx(0.5 * 0.5 + 0.5 * 1.5)


def test_batchtopk_momentum_one_follows_the_last_cutoff():
    layer = BatchTopK(1, threshold_momentum=1)
    layer(X, training=True)
    layer(X[2:], training=True)  # one sample, k·B = 1: its largest value, .3
    assert scalar(layer.threshold) == pytest.approx(0.3)


def _identity_model(layer):
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(4, kernel_initializer="identity", bias_initializer="zeros"),
        layer,
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")  # weights frozen: pre-activations = x
    return model


def test_batchtopk_fit_updates_the_threshold_with_a_smaller_last_batch():
    # Batches of 3 and 2 (the last one smaller, so under TensorFlow the batch size may be unknown when
    # traced). First batch: X, cutoff .3. Second: k·B = 4 of 5, 4, 3, 2, 1, cutoff 2.
    x = np.concatenate([X, [[1.0, 2.0, 3.0, 4.0], [-1.0, -1.0, -1.0, 5.0]]]).astype("float32")
    layer = BatchTopK(2, threshold_momentum=0.5)
    model = _identity_model(layer)
    model.fit(x, np.zeros_like(x), epochs=1, batch_size=3, shuffle=False, verbose=0)
    assert scalar(layer.threshold_updates) == 2.0
    assert scalar(layer.threshold) == pytest.approx(0.5 * 0.3 + 0.5 * 2)
    # Inference (predict) uses the learned 1.15 and changes nothing.
    np.testing.assert_array_equal(model.predict(X, verbose=0), [[3, 0, 0, 2], [0, 4, 0, 0], [0, 0, 0, 0]])
    assert scalar(layer.threshold) == pytest.approx(1.15) and scalar(layer.threshold_updates) == 2.0


def test_batchtopk_fit_of_a_trainable_model_moves_the_threshold():
    x = np.random.RandomState(0).normal(size=(24, 4)).astype("float32")
    layer = BatchTopK(2)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
        layer,
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, np.ones((24, 8), "float32"), epochs=2, batch_size=8, verbose=0)
    assert scalar(layer.threshold_updates) == 6.0
    assert scalar(layer.threshold) > 0


# BatchTopK's k changed between epochs of fit: tests/models/test_layers.py, next to TopK's.


def test_batchtopk_gradient_flows_only_through_kept_entries():
    (grad_pre,) = gradients(X, BatchTopK(2), training=True)
    np.testing.assert_array_equal(grad_pre, [[1, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]])


def test_batchtopk_works_on_higher_rank_inputs_with_every_leading_axis_a_sample():
    x = X.reshape(3, 1, 4)
    np.testing.assert_array_equal(npy(BatchTopK(2)(x, training=True)).reshape(3, 4),
                                  f32([[3, 0, 0.5, 2], [0, 4, 0, 1], [0, 0, 0, 0.3]]))


def test_batchtopk_moving_average_stays_in_float32_under_mixed_precision():
    # In float16 the average would round to a multiple of 2**-11 near 1: .999 × 1 + .001 × 2 = 1.001
    # is not one.
    layer = BatchTopK(1, threshold_momentum=0.001, dtype="mixed_float16")
    layer.threshold.assign(1.0)
    layer.threshold_updates.assign(1.0)
    out = layer(X, training=True)  # cutoff 2
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert scalar(layer.threshold) == pytest.approx(1.001, abs=1e-6)


# BatchTopK's checks of k (bad values, k above the width) are TopK's: tests/models/test_layers.py runs them on both.


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan"), "0.1", None, True])
def test_batchtopk_rejects_bad_momentum(bad):
    with pytest.raises(ValueError, match=r"threshold_momentum must be a number in \(0, 1\]"):
        BatchTopK(2, threshold_momentum=bad)


def test_batchtopk_config_and_saved_model_round_trip(tmp_path):
    layer = BatchTopK(3, threshold_momentum=0.2, name="batch_sparse")
    layer.set_k(2)
    clone = BatchTopK.from_config(layer.get_config())
    assert clone.k == 2 and clone.threshold_momentum == 0.2 and clone.name == "batch_sparse"

    model = _identity_model(layer)
    model(X, training=True)  # threshold .3
    path = tmp_path / "batchtopk.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    revived = loaded.layers[-1]
    assert isinstance(revived, BatchTopK) and revived.k == 2 and revived.threshold_momentum == 0.2
    assert scalar(revived.threshold) == pytest.approx(0.3) and scalar(revived.threshold_updates) == 1.0
    assert scalar(revived.k_variable) == 2.0
    np.testing.assert_array_equal(npy(loaded(X)), npy(model(X)))
    np.testing.assert_array_equal(npy(loaded(X)), [[3, 0, 0.5, 2], [0, 4, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(npy(loaded(X, training=True)), npy(model(X, training=True)))


# --------------------------------------------------------------------------- JumpReLU

# θ per neuron and ε = .2, so the window |pre − θ| < .1 is (.4, .6), (.9, 1.1), (.15, .35), (1.9, 2.1).
THETA = np.array([0.5, 1.0, 0.25, 2.0], dtype="float32")
EPS = 0.2
PRE = np.array([[0.45, 1.0, 0.3, 3.0],
                [0.7, 1.05, -0.5, 1.95],
                [0.55, 0.2, 0.1, -3.0]], dtype="float32")
# H(pre − θ): 1.0 at θ = 1 exactly (exp(0)) is a tie, and a tie gives 0.
H = np.array([[0, 0, 1, 1],
              [1, 1, 0, 0],
              [1, 0, 0, 0]], dtype="float32")
INSIDE = np.array([[1, 1, 1, 0],
                   [0, 1, 0, 1],
                   [1, 0, 0, 0]], dtype="float32")  # per neuron: 2, 2, 1, 1 inside the window


def jump(**kwargs):
    layer = JumpReLU(4, bandwidth=EPS, **kwargs)
    layer.log_threshold.assign(np.log(THETA).astype("float32"))
    return layer


def test_jumprelu_forward_keeps_values_above_their_neurons_threshold():
    layer = jump()
    np.testing.assert_array_equal(npy(layer(PRE)), f32([[0, 0, 0.3, 3.0], [0.7, 1.05, 0, 0], [0.55, 0, 0, 0]]))
    np.testing.assert_allclose(npy(layer.threshold), THETA, rtol=1e-6)


def test_jumprelu_starts_at_the_initial_threshold():
    layer = JumpReLU(3, initial_threshold=0.5)
    np.testing.assert_allclose(npy(layer.log_threshold), np.full(3, math.log(0.5)), rtol=1e-6)
    x = np.array([[0.4, 0.6, -1.0]], dtype="float32")
    np.testing.assert_array_equal(npy(layer(x)), f32([[0, 0.6, 0]]))
    assert [w.name for w in layer.trainable_weights] == ["log_threshold"]
    default = JumpReLU(2)
    np.testing.assert_allclose(npy(default.threshold), [0.001, 0.001], rtol=1e-6)
    assert default.bandwidth == 0.001


def test_jumprelu_step_is_exactly_zero_or_one():
    layer = jump()
    np.testing.assert_array_equal(npy(layer.step(PRE)), H)
    np.testing.assert_array_equal(npy(layer.step(ops.convert_to_tensor(PRE))), H)


def test_jumprelu_gradients_are_the_straight_through_estimator():
    grad_pre, grad_log_threshold = gradients(PRE, jump())
    np.testing.assert_array_equal(grad_pre, H)
    # ∂out/∂θ = −(θ/ε) inside the window; ∂θ/∂log θ = θ: per neuron −θ²/ε × (count inside).
    expected = -(THETA ** 2) / EPS * INSIDE.sum(axis=0)
    np.testing.assert_allclose(grad_log_threshold, [-2.5, -10.0, -0.3125, -20.0], rtol=1e-5)
    np.testing.assert_allclose(grad_log_threshold, expected, rtol=1e-5)


def test_jumprelu_step_gradient_is_the_rectangle_kernel():
    grad_pre, grad_log_threshold = gradients(PRE, jump(), method="step")
    np.testing.assert_array_equal(grad_pre, np.zeros_like(PRE))  # the L0 penalty never moves pre
    # ∂H/∂θ = −1/ε inside the window; × θ for log θ: per neuron −θ/ε × (count inside).
    np.testing.assert_allclose(grad_log_threshold, [-5.0, -10.0, -1.25, -10.0], rtol=1e-5)


def test_jumprelu_gives_no_threshold_gradient_far_from_it():
    pre = np.array([[0.0, 5.0, -1.0, 0.5]], dtype="float32")
    grad_pre, grad_log_threshold = gradients(pre, jump())
    np.testing.assert_array_equal(grad_pre, [[0, 1, 0, 0]])
    np.testing.assert_array_equal(grad_log_threshold, np.zeros(4))


def test_jumprelu_window_is_open_at_its_edges():
    # θ = exp(0) = 1 and ε/2 = .25 exactly, so 0.75 and 1.25 sit exactly on the edges: |pre − θ| < ε/2
    # is strict and they get no threshold gradient; 1.2 is inside.
    pre = np.array([[0.75, 1.25, 1.2]], dtype="float32")
    _, grad_log_threshold = gradients(pre, JumpReLU(3, initial_threshold=1.0, bandwidth=0.5))
    np.testing.assert_allclose(grad_log_threshold, [0, 0, -2.0], rtol=1e-6)  # −θ²/ε for the inside one
    _, grad_log_threshold = gradients(pre, JumpReLU(3, initial_threshold=1.0, bandwidth=0.5), method="step")
    np.testing.assert_allclose(grad_log_threshold, [0, 0, -2.0], rtol=1e-6)  # −θ/ε


def test_jumprelu_under_mixed_precision_keeps_a_float32_threshold_and_the_same_gradients():
    layer = jump(dtype="mixed_float16")
    out = layer(PRE)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert keras.backend.standardize_dtype(layer.step(ops.cast(PRE, "float16")).dtype) == "float16"
    np.testing.assert_array_equal(npy(layer.step(ops.cast(PRE, "float16"))), H)
    np.testing.assert_array_equal(npy(out), PRE.astype("float16") * H)
    grad_pre, grad_log_threshold = gradients(PRE, layer)
    np.testing.assert_array_equal(grad_pre, H)
    np.testing.assert_allclose(grad_log_threshold, [-2.5, -10.0, -0.3125, -20.0], rtol=1e-5)


def test_jumprelu_sums_the_threshold_gradient_in_float32_under_mixed_precision():
    # θ = 1, ε = .001: each of 70 entries at pre = θ adds −θ²/ε = −1000, and −70000 is beyond float16.
    layer = JumpReLU(1, initial_threshold=1.0, bandwidth=0.001, dtype="mixed_float16")
    _, grad_log_threshold = gradients(np.ones((70, 1), "float32"), layer)
    np.testing.assert_allclose(grad_log_threshold, [-70000.0], rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", None, True])
def test_jumprelu_rejects_bad_n_neurons(bad):
    with pytest.raises(ValueError, match="n_neurons must be a whole number >= 1"):
        JumpReLU(bad)


@pytest.mark.parametrize("argument", ["initial_threshold", "bandwidth"])
@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "0.1", None, True])
def test_jumprelu_rejects_bad_threshold_and_bandwidth(argument, bad):
    with pytest.raises(ValueError, match=f"{argument} must be a finite number > 0"):
        JumpReLU(4, **{argument: bad})


def test_jumprelu_rejects_inputs_of_another_width():
    with pytest.raises(ValueError, match="n_neurons \\(3\\), got 4"):
        JumpReLU(3)(PRE)


def test_jumprelu_config_and_saved_model_round_trip(tmp_path):
    layer = jump(initial_threshold=0.3, name="jump")
    clone = JumpReLU.from_config(layer.get_config())
    assert (clone.n_neurons, clone.initial_threshold, clone.bandwidth, clone.name) == (4, 0.3, EPS, "jump")
    np.testing.assert_allclose(npy(clone.threshold), np.full(4, 0.3), rtol=1e-6)

    model = keras.Sequential([keras.Input((4,)), layer])
    path = tmp_path / "jumprelu.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    revived = loaded.layers[-1]
    assert isinstance(revived, JumpReLU) and revived.bandwidth == EPS
    np.testing.assert_array_equal(npy(revived.log_threshold), npy(layer.log_threshold))
    np.testing.assert_array_equal(npy(loaded(PRE)), npy(model(PRE)))
    np.testing.assert_array_equal(npy(revived.step(PRE)), H)
