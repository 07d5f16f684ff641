"""Ghost grads and the data initialisation of the decoder, each on a planted case, on the current backend."""

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui import config as config_mod
from collapse_tui.nn import SparseAutoencoder
from collapse_tui.nn.ghost_grads import ghost_grads_loss
from collapse_tui.nn.methods.common import BatchMeans

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

X = np.array([[1.5, 0.5], [4.5, 0.5]], "float32")
W2 = np.array([0.6, 0.8])


def npy(t):
    return np.asarray(ops.convert_to_numpy(t))


def planted(ghost_grads=True, dead_bias=-0.5, dead=(2,)):
    """Two features, three neurons, Top-1 (as the AuxK tests' planted SAE): W_enc is 0, so each neuron's
    pre-activation is its bias [2, 0.1, dead_bias]; neuron 0 always wins, neuron 2 never fires (ReLU-dead
    with a negative bias) and is counted dead."""
    sae = SparseAutoencoder(2, n_neurons=3, method="topk", k=1, ghost_grads=ghost_grads, dead_steps=5, seed=0)
    sae.b_dec.assign(np.array([0.5, -0.5], "float32"))
    sae.W_enc.assign(np.zeros((2, 3), "float32"))
    sae.b_enc.assign(np.array([2.0, 0.1, dead_bias], "float32"))
    sae.W_dec.assign(np.array([[1.0, 0.0], [0.0, 1.0], W2], "float32"))
    idle = np.zeros(3, "float32")
    idle[list(dead)] = 5.0
    sae.idle_steps.assign(idle)
    return sae


def expected_bias_gradient():
    """d(ghost term)/d(b_enc[2]) by hand. z_hat = 2 [1, 0] + b_dec = [2.5, -0.5] for both inputs, so the
    residuals are e = [-1, 1] and [2, 1] and the reconstruction errors 2 and 5. The one dead neuron's ghost
    output is |e| / 2 along w2 (unit norm) whatever its pre-activation p, and its derivative in p is the
    ghost output itself (the scale held constant): d term / dp = mean over inputs of r (2 (g - e) . g),
    with r = error / ghost error held constant."""
    grads = []
    for e in (np.array([-1.0, 1.0]), np.array([2.0, 1.0])):
        g = np.linalg.norm(e) / (2 + 1e-6) * W2
        ghost_error = np.sum((g - e) ** 2)
        r = np.sum(e ** 2) / (ghost_error + 1e-6)
        grads.append(r * 2 * (g - e) @ g)
    return np.mean(grads)


@pytest.mark.parametrize("ghost_grads", [False, True])
@pytest.mark.parametrize("dead_bias", [-0.5, -200.0])
def test_ghost_grads_move_a_relu_dead_neuron_by_the_hand_computed_gradient(ghost_grads, dead_bias):
    # exp(-200) is 0 in float32: the published exp(pre) would have no gradient there; the shifted
    # exponential gives the same gradient at any pre-activation, as the published one does in exact
    # arithmetic (one dead neuron: the scaled ghost output does not depend on p).
    sae = planted(ghost_grads=ghost_grads, dead_bias=dead_bias)
    sae.compile(optimizer=keras.optimizers.SGD(0.1))
    before = npy(sae.b_enc.value).copy()
    sae.fit(X, epochs=1, batch_size=2, verbose=0, shuffle=False)
    moved = npy(sae.b_enc.value) - before
    assert moved[0] != 0 and moved[1] == 0  # the winner learns; the live loser gets nothing
    if ghost_grads:
        assert moved[2] == pytest.approx(-0.1 * expected_bias_gradient(), rel=1e-4)
        assert moved[2] > 0  # toward firing
    else:
        assert moved[2] == 0


def test_the_ghost_term_equals_the_reconstruction_error_while_a_neuron_is_dead():
    for dead, factor in (((2,), 2.0), ((), 1.0)):
        sae = planted(dead=dead)
        loss = float(npy(sae.compute_loss(x=X, y_pred=sae(X), training=False)))
        reconstruction = float(npy(sae.metrics[1].result()))
        assert reconstruction == pytest.approx(3.5, rel=1e-6)  # mean of 2 and 5
        assert loss == pytest.approx(factor * reconstruction, rel=1e-5)


def test_ghost_grads_loss_is_per_member_and_zero_without_dead_neurons():
    rng = np.random.default_rng(0)
    pre = rng.normal(size=(2, 4, 5)).astype("float32")
    decoder = rng.normal(size=(2, 5, 3)).astype("float32")
    residual = rng.normal(size=(2, 4, 3)).astype("float32")
    errors = rng.uniform(1, 2, size=(2, 4)).astype("float32")
    dead = np.array([[True, False, True, False, False], [False] * 5])
    term = npy(ghost_grads_loss(*map(ops.convert_to_tensor, (pre, dead, decoder, residual, errors)),
                                BatchMeans(ops.convert_to_tensor(pre))))
    # Member 0: the rescaled ghost error of each input is its reconstruction error (up to the guard).
    assert term[0] == pytest.approx(errors[0].mean(), rel=1e-4)
    assert term[1] == 0.0


def centred_rows(x):
    z = x - x.mean(axis=0)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_data_init_starts_each_decoder_row_at_a_training_input_and_the_encoder_at_its_transpose():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6)).astype("float32") + 3.0
    sae = SparseAutoencoder(6, n_neurons=16, method="topk", k=2, seed=4, data_init=True)
    sae.adapt(x)
    w_dec = npy(sae.W_dec)
    cosines = w_dec @ centred_rows(x).T  # each row against every centred training input
    best = cosines.argmax(axis=1)
    np.testing.assert_allclose(cosines.max(axis=1), 1.0, atol=1e-5)
    assert len(set(best)) == 16  # drawn without replacement
    np.testing.assert_allclose(npy(sae.W_enc), w_dec.T, atol=0)
    # Each neuron's pre-activation on the input it was drawn from is that input's norm (> 0): it fires there.
    pre = sae.pre_activations(x)
    assert (pre[best, np.arange(16)] > 0).all()
    again = SparseAutoencoder(6, n_neurons=16, method="topk", k=2, seed=4, data_init=True)
    again.adapt(x)
    np.testing.assert_array_equal(npy(again.W_dec), w_dec)  # the seed picks the rows
    other = SparseAutoencoder(6, n_neurons=16, method="topk", k=2, seed=5, data_init=True)
    other.adapt(x)
    assert not np.array_equal(npy(other.W_dec), w_dec)
    # More neurons than inputs: drawn with replacement, still unit rows of the data.
    many = SparseAutoencoder(6, n_neurons=50, method="topk", k=2, seed=4, data_init=True)
    many.adapt(x)
    np.testing.assert_allclose((npy(many.W_dec) @ centred_rows(x).T).max(axis=1), 1.0, atol=1e-5)


def test_data_init_on_constant_data_keeps_the_random_start_and_the_switch_comes_from_the_config():
    plain = SparseAutoencoder(3, n_neurons=4, method="topk", k=1, seed=2)
    constant = SparseAutoencoder(3, n_neurons=4, method="topk", k=1, seed=2, data_init=True)
    constant.adapt(np.ones((10, 3), "float32"))  # every centred row is 0: nothing to point at
    np.testing.assert_array_equal(npy(constant.W_dec), npy(plain.W_dec))
    settings = config_mod.validate({"sae": {"n_neurons": 4, "k": 1,
                                            "remedies": {"data_init": True, "ghost_grads": True}}}).sae
    sae = SparseAutoencoder.from_settings(settings, input_dim=3, seed=2)
    assert sae.data_init and sae.ghost_grads
    restored = SparseAutoencoder.from_config(sae.get_config())
    assert restored.data_init and restored.ghost_grads
