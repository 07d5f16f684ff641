"""The sparsity methods' kernels (collapse_tui.nn.methods) on the current backend: the registry, values by
hand, and N members computed at once equal to N runs of one member."""

import warnings

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui.config import K_METHODS, PENALTY_METHODS, SPARSITY_METHODS
from collapse_tui.nn import methods
from collapse_tui.nn.methods import common

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def npy(x):
    return ops.convert_to_numpy(x)


def t(x):
    return ops.convert_to_tensor(np.asarray(x, np.float32))


def pre_activations(n=3, b=5, m=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, b, m)).astype("float32")


# --------------------------------------------------------------------------- the registry

def test_the_registry_has_a_kernel_for_each_of_the_schemas_methods_and_no_other():
    assert sorted(methods.KERNELS) == sorted(SPARSITY_METHODS)
    for name, kernel in methods.KERNELS.items():
        assert kernel.name == name and methods.kernel(name) is kernel
        assert kernel.by_k == (name in K_METHODS)
        assert (not kernel.by_k) == (name in PENALTY_METHODS)
        # What a kernel reads besides k is named by its variables and settings, which its lone layer holds.
        assert set(kernel.variables).isdisjoint(kernel.settings)
    with pytest.raises(ValueError, match="unknown sparsity method"):
        methods.kernel("topk2")


@pytest.mark.parametrize("method", sorted(SPARSITY_METHODS))
def test_the_lone_sae_holds_each_kernel_variable_and_setting_in_its_methods_layer(method):
    from collapse_tui.nn import SparseAutoencoder
    from collapse_tui.nn.activations import METHOD_LAYERS

    sae = SparseAutoencoder(4, n_neurons=6, method=method, k=2)
    kernel = methods.kernel(method)
    assert sae.method_kernel is kernel
    layer = sae._method_layer()
    if method not in METHOD_LAYERS:
        assert layer is None and not kernel.variables and not kernel.settings
        return
    assert layer is getattr(sae, METHOD_LAYERS[method].sae_attribute) and layer.kernel is kernel
    assert sorted(layer.kernel_variables()) == sorted(kernel.variables)
    assert sorted(layer.kernel_settings()) == sorted(kernel.settings)


# --------------------------------------------------------------------------- the k-th largest value

@pytest.mark.parametrize("how", ["static", "top_k", "bisection"])
def test_the_kth_largest_value_of_each_row_is_exact(how):
    # Two members of three rows of six ReLU'd values: ties at the cut, a row with fewer positive
    # values than k (its k-th largest is 0), tiny and large magnitudes, k = 1 and k = the width.
    x = np.array([[[0.5, 2.0, 2.0, 0.0, 1e-30, 3.0],
                   [0.0, 0.0, 7.0, 0.0, 0.0, 0.0],
                   [1e6, 1.5, 1.25, 1.5, 0.75, 2.5]],
                  [[0.5, 2.0, 2.0, 0.0, 1e-30, 3.0],
                   [4.0, 3.0, 2.0, 1.0, 0.5, 0.25],
                   [9.0, 8.0, 7.0, 6.0, 5.0, 4.0]]], np.float32)
    cases = ([3, 6], [1, 2], [4, 5], [6, 6], [1, 1], [2, 2])
    for ks in cases:
        if how == "static" and ks[0] != ks[1]:
            continue  # a static k is one Python int for every member
        k = t(ks)
        if how == "static":
            value = common.kth_largest(t(x), ks[0])
        elif how == "top_k":
            value = common.kth_largest_by_top_k(t(x), k, max(ks))
        else:
            value = common.kth_largest_by_bisection(t(x), k)
        # the numpy reference: each row sorted, its k-th entry
        reference = -np.sort(-x, axis=-1)[np.arange(2), :, np.array(ks) - 1]
        assert np.array_equal(npy(value)[..., 0], reference), (ks, npy(value)[..., 0])
    value = common.kth_largest_by_bisection(t(x), t([3, 6]))
    assert np.array_equal(npy(value)[..., 0], np.array([[2.0, 0.0, 1.5], [0.0, 0.25, 4.0]], np.float32))


# --------------------------------------------------------------------------- values by hand

def test_topk_keeps_exactly_each_members_k_largest_of_each_row():
    pre = pre_activations()
    ks = [1, 3, 8]
    for k_max in (None, 8):
        codes, aux, updates = methods.TopK.activate(t(pre), {"k": t(ks), "k_max": k_max}, True)
        codes = npy(codes)
        assert aux is None and updates == {}
        for i, k in enumerate(ks):
            relu = np.maximum(pre[i], 0)
            expected = np.where(relu >= -np.sort(-relu, axis=1)[:, k - 1:k], relu, 0)
            np.testing.assert_array_equal(codes[i], expected)
            assert (np.count_nonzero(codes[i], axis=1) == np.minimum(k, (pre[i] > 0).sum(axis=1))).all()
        np.testing.assert_array_equal(npy(methods.TopK.infer(t(pre), {"k": t(ks), "k_max": k_max})), codes)
    assert (npy(methods.TopK.penalty(t(codes), None, None, common.BatchMeans(t(codes)))) == 0).all()


def test_batchtopk_threshold_follows_the_moving_average_of_the_smallest_kept_value_over_two_batches():
    # Member 0: k = 1 over two rows keeps the two largest of the batch; member 1: k = 2 keeps four.
    first = np.array([[[3.0, -1.0, 0.5, 2.0], [0.2, 4.0, -2.0, 1.0]],
                      [[3.0, -1.0, 0.5, 2.0], [0.2, 4.0, -2.0, 1.0]]], np.float32)
    second = np.array([[[1.0, 6.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.25]],
                       [[1.0, 6.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.25]]], np.float32)
    params = {"k": t([1, 2]), "threshold": t([0, 0]), "threshold_updates": t([0, 0]), "momentum": t([0.25, 0.5])}
    codes, _, updates = methods.BatchTopK.activate(t(first), params, True)
    np.testing.assert_array_equal(npy(codes)[0], [[3, 0, 0, 0], [0, 4, 0, 0]])
    np.testing.assert_array_equal(npy(codes)[1], [[3, 0, 0, 2], [0, 4, 0, 1]])
    np.testing.assert_array_equal(npy(updates["threshold"]), [3.0, 1.0])  # the first batch sets it
    np.testing.assert_array_equal(npy(updates["threshold_updates"]), [1.0, 1.0])
    params.update(updates)
    _, _, updates = methods.BatchTopK.activate(t(second), params, True)  # cutoffs 5 and .25
    np.testing.assert_array_equal(npy(updates["threshold"]), [0.75 * 3 + 0.25 * 5, 0.5 * 1 + 0.5 * 0.25])
    np.testing.assert_array_equal(npy(updates["threshold_updates"]), [2.0, 2.0])
    # Inference keeps what is strictly above each member's threshold, and updates nothing.
    params.update(updates)
    codes, _, nothing = methods.BatchTopK.activate(t(second), params, False)
    assert nothing == {}
    np.testing.assert_array_equal(npy(codes)[0], [[0, 6, 0, 0], [0, 0, 5, 0]])
    np.testing.assert_array_equal(npy(codes)[1], [[1, 6, 0, 0], [0, 0, 5, 0]])


def test_l1_penalty_is_the_coefficient_times_the_batch_mean_of_each_samples_summed_absolute_codes():
    codes = np.array([[[1.0, 0.0, 2.0], [0.5, 0.5, 0.0]],
                      [[0.0, 4.0, 0.0], [0.0, 0.0, 0.0]]], np.float32)
    penalty = methods.L1.penalty(t(codes), None, t([0.1, 2.0]), common.BatchMeans(t(codes)))
    np.testing.assert_allclose(npy(penalty), [0.1 * (3.0 + 1.0) / 2, 2.0 * 4.0 / 2], rtol=1e-6)
    # with sample weights: the weighted sum over the total weight
    weighted = methods.L1.penalty(t(codes), None, t([0.1, 2.0]), common.BatchMeans(t(codes), t([3.0, 1.0])))
    np.testing.assert_allclose(npy(weighted), [0.1 * (3 * 3.0 + 1.0) / 4, 2.0 * 3 * 4.0 / 4], rtol=1e-6)
    relu, _, _ = methods.L1.activate(t(codes - 1.0), {}, True)
    np.testing.assert_array_equal(npy(relu), np.maximum(codes - 1.0, 0))


class _Probe(keras.Model):
    """``sum(kernel output)`` of trainable ``pre`` and ``log_threshold``: one SGD step with learning rate
    1 moves each by minus its gradient (every backend's trainer computes the gradients)."""

    def __init__(self, pre, log_threshold, bandwidth, output):
        super().__init__(name="probe")
        self.pre = self.add_weight(shape=pre.shape, initializer=keras.initializers.Constant(pre), name="pre")
        self.log_threshold = self.add_weight(shape=log_threshold.shape, name="log_threshold",
                                             initializer=keras.initializers.Constant(log_threshold))
        self.bandwidth, self.output_name = bandwidth, output

    def call(self, inputs):
        params = {"log_threshold": self.log_threshold, "bandwidth": self.bandwidth}
        codes, step, _ = methods.JumpReLU.activate(self.pre, params, True)
        if self.output_name == "codes":
            return ops.reshape(ops.sum(codes), (1, 1))
        ones = ops.ones((ops.shape(codes)[0],))
        return ops.reshape(ops.sum(methods.JumpReLU.penalty(codes, step, ones, common.BatchMeans(codes))), (1, 1))


def jumprelu_gradients(pre, theta, bandwidth, output):
    probe = _Probe(pre, np.log(theta).astype("float32"), bandwidth, output)
    probe.compile(optimizer=keras.optimizers.SGD(1.0), loss=lambda y_true, y_pred: ops.sum(y_pred))
    before = [npy(probe.pre).copy(), npy(probe.log_threshold).copy()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pre gets no gradient through the step: expected
        probe.fit(np.zeros((1, 1), "float32"), np.zeros((1, 1), "float32"), epochs=1, batch_size=1, verbose=0)
    return before[0] - npy(probe.pre), before[1] - npy(probe.log_threshold)


# Two members: θ per neuron and ε per member. Member 0's window |pre − θ| < .1 is (.4, .6), (.9, 1.1),
# (.15, .35); member 1's (ε = .5) is |pre − θ| < .25.
THETA = np.array([[0.5, 1.0, 0.25], [1.0, 0.5, 2.0]], np.float32)
EPS = np.array([0.2, 0.5], np.float32)
PRE = np.array([[[0.45, 1.0, 0.3], [0.7, 1.05, -0.5], [0.55, 0.2, 0.1]],
                [[1.2, 0.3, 2.1], [0.9, 0.5, 1.0], [-1.0, 0.8, 2.3]]], np.float32)


def test_jumprelu_codes_step_and_straight_through_gradients_by_hand():
    theta, eps = THETA[:, None, :], EPS[:, None, None]
    heaviside = (PRE > theta).astype("float32")
    inside = (np.abs(PRE - theta) < eps / 2).astype("float32")
    params = {"log_threshold": t(np.log(THETA)), "bandwidth": t(EPS)}
    codes, step, updates = methods.JumpReLU.activate(t(PRE), params, True)
    assert updates == {}
    np.testing.assert_array_equal(npy(step), heaviside)
    np.testing.assert_allclose(npy(codes), PRE * heaviside, rtol=1e-6)
    np.testing.assert_allclose(npy(methods.JumpReLU.infer(t(PRE), params)), PRE * heaviside, rtol=1e-6)
    coefficient = t([0.5, 2.0])
    np.testing.assert_allclose(npy(methods.JumpReLU.penalty(codes, step, coefficient, common.BatchMeans(codes))),
                               [0.5, 2.0] * heaviside.sum(axis=2).mean(axis=1), rtol=1e-6)

    grad_pre, grad_log_threshold = jumprelu_gradients(PRE, THETA, t(EPS), "codes")
    np.testing.assert_array_equal(grad_pre, heaviside)
    # ∂codes/∂θ = −(θ/ε)·1[|pre − θ| < ε/2], summed over the batch; ∂θ/∂log θ = θ.
    d_theta = (-(theta / eps) * inside).sum(axis=1)
    np.testing.assert_allclose(grad_log_threshold, THETA * d_theta, rtol=1e-5)
    assert (grad_log_threshold != 0).any()
    # The L0 penalty (coefficient 1): ∂H/∂θ = −(1/ε)·1[…], averaged over the batch; it never moves pre.
    grad_pre, grad_log_threshold = jumprelu_gradients(PRE, THETA, t(EPS), "penalty")
    np.testing.assert_array_equal(grad_pre, np.zeros_like(PRE))
    np.testing.assert_allclose(grad_log_threshold, THETA * (-(1 / eps) * inside).mean(axis=1), rtol=1e-5)


# --------------------------------------------------------------------------- N members = N runs of one

def member_params(method, n, m, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "topk": {"k": t(rng.integers(1, m + 1, n))},
        "batchtopk": {"k": t(rng.integers(1, m + 1, n)), "threshold": t(rng.uniform(0, 1, n)),
                      "threshold_updates": t(rng.integers(0, 2, n)), "momentum": t(rng.uniform(0.01, 1, n))},
        "l1": {},
        "jumprelu": {"log_threshold": t(np.log(rng.uniform(0.05, 1.0, (n, m)))),
                     "bandwidth": t(rng.uniform(0.1, 1, n))},
    }[method]


def one(value, i):
    return value if value is None or isinstance(value, (int, float)) else ops.convert_to_tensor(value)[i:i + 1]


@pytest.mark.parametrize("method", sorted(SPARSITY_METHODS))
@pytest.mark.parametrize("training", [True, False])
def test_each_kernel_with_n_members_equals_n_runs_with_one_member(method, training):
    kernel = methods.kernel(method)
    n, b, m = 3, 5, 8
    pre = pre_activations(n, b, m, seed=1)
    params = member_params(method, n, m)
    k_max = int(np.max(npy(params["k"]))) if "k" in params else None
    for static in (None, k_max):
        together = dict(params, k_max=static)
        codes, aux, updates = kernel.activate(t(pre), together, training)
        coefficient = t([0.1, 0.2, 0.3])
        penalty = kernel.penalty(codes, aux, coefficient, common.BatchMeans(codes))
        for i in range(n):
            alone = {name: one(value, i) for name, value in params.items()}
            if static is not None:
                alone["k_max"] = int(npy(params["k"])[i])
            codes_i, aux_i, updates_i = kernel.activate(t(pre[i:i + 1]), alone, training)
            np.testing.assert_array_equal(npy(codes)[i], npy(codes_i)[0], err_msg=f"member {i}")
            if aux is not None:
                np.testing.assert_array_equal(npy(aux)[i], npy(aux_i)[0])
            assert sorted(updates) == sorted(updates_i)
            for name in updates:
                np.testing.assert_array_equal(npy(updates[name])[i], npy(updates_i[name])[0], err_msg=name)
            penalty_i = kernel.penalty(codes_i, aux_i, one(coefficient, i), common.BatchMeans(codes_i))
            np.testing.assert_allclose(npy(penalty)[i], npy(penalty_i)[0], rtol=1e-6)
    if method in ("batchtopk",) and training:
        assert sorted(updates) == ["threshold", "threshold_updates"]


def test_auxk_with_n_members_equals_n_runs_with_one_member_and_is_zero_without_dead_neurons():
    n, b, m, d = 2, 6, 8, 4
    rng = np.random.default_rng(2)
    pre, z = pre_activations(n, b, m, seed=3), rng.normal(size=(n, b, d)).astype("float32")
    z_hat = z + rng.normal(size=(n, b, d)).astype("float32")
    decoder = rng.normal(size=(n, m, d)).astype("float32")
    dead = np.array([[1, 1, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]], bool)
    ks = [2, 3]
    aux_codes = common.auxk_codes(t(pre), ops.convert_to_tensor(dead), t(ks), None)
    assert (npy(aux_codes)[:, :, ~dead[0]][0] == 0).all() and (npy(aux_codes)[1] == 0).all()
    reconstruction = ops.einsum("nbm,nmd->nbd", aux_codes, t(decoder))
    term, logged, fraction = (npy(v) for v in common.auxk_loss(
        t(z), t(z_hat), reconstruction, ops.convert_to_tensor(dead), common.BatchMeans(aux_codes)))
    assert term[0] > 0 and term[1] == 0 and logged[1] == 0  # member 1 has no dead neuron
    np.testing.assert_allclose(fraction, [3 / 8, 0])
    # By hand, member 0: Var(z)/Var(e) times the mean over the batch of the summed squared error.
    e = z[0] - z_hat[0]
    error = np.mean(np.sum(np.square(e - npy(reconstruction)[0]), axis=-1))
    variance = np.mean(np.var(z[0], axis=0)) / np.mean(np.var(e, axis=0))
    np.testing.assert_allclose(term[0], variance * error, rtol=1e-5)
    np.testing.assert_allclose(logged[0], error / (d * np.mean(np.var(e, axis=0))), rtol=1e-5)
    for i in range(n):
        codes_i = common.auxk_codes(t(pre[i:i + 1]), ops.convert_to_tensor(dead[i:i + 1]), ks[i])
        np.testing.assert_array_equal(npy(codes_i)[0], npy(aux_codes)[i])
