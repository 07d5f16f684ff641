"""Dead-neuron remedies of the SAE, each shown on a small planted case, on the current backend."""

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui import config as config_mod
from collapse_tui.nn import SparseAutoencoder
from collapse_tui.nn import input_statistics
from collapse_tui.nn.input_statistics import geometric_median

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def npy(t):
    return np.asarray(ops.convert_to_numpy(t))


def planted(auxk=True, dead=(2,), slope=0.0, b_enc=(2.0, 0.1, 0.7), b_dec=(0.5, -0.5), auxk_coefficient=1.0,
            **kwargs):
    """Two features, three neurons, Top-1. Neuron 0's pre-activation is 2 + slope * (z0 - b_dec0), the
    others' their bias alone (W_enc is 0 but for that entry): with the default biases [2, 0.1, 0.7]
    neuron 0 always wins and neurons 1 and 2 never fire."""
    sae = SparseAutoencoder(2, n_neurons=3, method="topk", k=1, auxk=auxk, auxk_k=1,
                            auxk_coefficient=auxk_coefficient, dead_steps=5, seed=0, **kwargs)
    sae.b_dec.assign(np.array(b_dec, "float32"))
    w_enc = np.zeros((2, 3), "float32")
    w_enc[0, 0] = slope
    sae.W_enc.assign(w_enc)
    sae.b_enc.assign(np.array(b_enc, "float32"))
    sae.W_dec.assign(np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], "float32"))
    idle = np.zeros(3, "float32")
    idle[list(dead)] = 5.0  # idle for dead_steps steps: counted dead
    sae.idle_steps.assign(idle)
    return sae


def loss_and_logs(sae, x, sample_weight=None):
    loss = float(npy(sae.compute_loss(x=x, y_pred=sae(x), sample_weight=sample_weight, training=False)))
    return loss, {m.name: float(npy(m.result())) for m in sae.metrics}


X = np.array([[1.5, 0.5]], "float32")
# Two inputs that differ in feature 0 only: Var(z) = mean over features of [16, 0] = 8.
X2 = np.array([[1.5, 0.5], [9.5, 0.5]], "float32")


def test_auxk_term_is_the_aux_error_scaled_by_var_z_over_var_e_counting_the_bias_once():
    sae = planted(slope=0.5)
    loss, logs = loss_and_logs(sae, X2)
    # pre0 = 2 + 0.5 * (z0 - 0.5) = 2.5, 6.5; z_hat = pre0 * [1, 0] + b_dec = [3, -0.5], [7, -0.5];
    # residual e = z - z_hat = [-1.5, 1], [2.5, 1]: main loss (3.25 + 7.25) / 2 = 5.25.
    assert logs["reconstruction"] == pytest.approx(5.25, rel=1e-6)
    # Dead neuron 2 (pre 0.7) reconstructs e as 0.7 * [0.6, 0.8] = [0.42, 0.56], with no b_dec:
    # aux error = mean of (-1.92^2 + 0.44^2, 2.08^2 + 0.44^2) = (3.88 + 4.52) / 2 = 4.2.
    aux_error = ((-1.5 - 0.42) ** 2 + (1 - 0.56) ** 2 + (2.5 - 0.42) ** 2 + (1 - 0.56) ** 2) / 2
    assert aux_error == pytest.approx(4.2)
    # Var(z) = (16 + 0) / 2 = 8, Var(e) = (4 + 0) / 2 = 2: the term is 8 / 2 * 4.2 = 16.8 (coefficient 1).
    assert loss == pytest.approx(5.25 + 4 * 4.2, rel=1e-5)
    # Logged: OpenAI's normalised MSE, aux error / (d * Var(e)) = 4.2 / 4.
    assert logs["auxk_loss"] == pytest.approx(4.2 / (2 * 2), rel=1e-5)
    assert logs["auxk_dead"] == pytest.approx(1 / 3)
    # Sample weights weigh the variances too: a third input of weight 0 changes nothing.
    sae = planted(slope=0.5)
    weighted, logs = loss_and_logs(sae, np.concatenate([X2, [[40.0, -7.0]]]).astype("float32"),
                                   sample_weight=np.array([1.0, 1.0, 0.0], "float32"))
    assert weighted == pytest.approx(loss, rel=1e-5)
    assert logs["auxk_loss"] == pytest.approx(4.2 / 4, rel=1e-5)


def test_auxk_term_against_the_main_loss_when_dead_neurons_reconstruct_nothing():
    # The main reconstruction explains 15/16 of the variance (slope 0.75: e0 = 0.25 * (z0 - 8)); the
    # dead neurons 1 and 2 have negative pre-activations, so their aux codes are 0 and e_hat = 0.
    x = np.array([[6.0, 1.0], [10.0, 1.0]], "float32")
    sae = planted(slope=0.75, b_enc=(2.0, -1.0, -1.0), b_dec=(0.0, 1.0), dead=(1, 2), auxk_coefficient=1 / 32)
    loss, logs = loss_and_logs(sae, x)
    # z_hat = [6.5, 1], [9.5, 1]; e = [-0.5, 0], [0.5, 0]: main loss 0.25 = d * Var(e) (e has mean 0).
    main = 0.25
    assert logs["reconstruction"] == pytest.approx(main, rel=1e-6)
    # Var(z) = (4 + 0) / 2 = 2, Var(e) = (0.25 + 0) / 2 = 0.125: before the coefficient the term is
    # 2 / 0.125 * 0.25 = 4 = d * Var(z); with c = 1/32 it is 0.125, half the main loss.
    aux_term = (1 / 32) * (2 / 0.125) * main
    assert aux_term == pytest.approx((1 / 32) * 2 * 2)  # c * d * Var(z)
    assert loss == pytest.approx(main + 0.125, rel=1e-5)
    # Against the main loss: c * Var(z) / Var(e) = 16 / 32 = 0.5 (the unscaled c * aux error of before
    # was c = 1/32 of it, whatever the data).
    assert (loss - main) / main == pytest.approx(0.5, rel=1e-4)
    assert logs["auxk_loss"] == pytest.approx(1.0, rel=1e-5)  # nothing of the residual reconstructed


def test_auxk_is_zero_while_no_neuron_is_dead():
    sae = planted(dead=())
    loss, logs = loss_and_logs(sae, X2)
    assert logs["auxk_loss"] == 0.0
    assert loss == pytest.approx(logs["reconstruction"], rel=1e-6)


def test_auxk_is_zero_on_a_batch_without_spread():
    # One input: Var(e) = Var(z) = 0, so the scale 0/0 is not finite and counts as 0 (nan_to_num).
    sae = planted()
    loss, logs = loss_and_logs(sae, X)
    assert logs["auxk_loss"] == 0.0 and np.isfinite(loss)
    assert loss == pytest.approx(2.0, rel=1e-6)  # z_hat = [2.5, -0.5], e = [-1, 1]: the main loss alone


def test_auxk_k_defaults_to_half_the_input_width():
    assert SparseAutoencoder(6, n_neurons=10, k=2, auxk=True).aux_topk.k == 3
    assert SparseAutoencoder(6, n_neurons=10, k=2, auxk=True, auxk_k=4).aux_topk.k == 4
    assert SparseAutoencoder(1, n_neurons=4, k=1, auxk=True).aux_topk.k == 1  # at least one
    assert SparseAutoencoder(40, n_neurons=8, k=2, auxk=True).aux_topk.k == 8  # at most n_neurons
    sae = SparseAutoencoder(6, n_neurons=10, k=2, auxk=True)
    assert sae.auxk_k is None and sae.resolved_auxk_k == 3 and sae.get_config()["auxk_k"] is None
    assert config_mod.RunConfig().sae.remedies.auxk_k is None


@pytest.mark.parametrize("auxk", [False, True])
def test_auxk_gives_a_dead_neuron_a_gradient(auxk):
    # One SGD step: without AuxK, a neuron outside the top k gets no gradient at all (its encoder
    # weights stay put); with AuxK the dead neuron's encoder bias moves, the live loser's does not.
    x = np.array([[1.5, 0.5], [4.5, 0.5]], "float32")
    sae = planted(auxk=auxk)
    sae.compile(optimizer=keras.optimizers.SGD(0.1))
    before = npy(sae.b_enc.value).copy()
    sae.fit(x, epochs=1, batch_size=2, verbose=0, shuffle=False)
    moved = npy(sae.b_enc.value) - before
    assert moved[0] != 0  # the winner always learns
    assert moved[1] == 0  # never fires, not yet counted dead
    if auxk:
        # W_enc = 0: z_hat = [2.5, -0.5] for both, e = [-1, 1], [2, 1] and Var(e) = Var(z) (scale 1).
        # d(aux)/d(a2) = mean of -2 (e - a2 w2) . w2 = mean(-2 * -0.5, -2 * 1.3) = -0.8, times -lr.
        assert moved[2] == pytest.approx(0.1 * 0.8, rel=1e-4)
    else:
        assert moved[2] == 0


@pytest.mark.parametrize("candidates", ["relu", "softplus"])
def test_auxk_with_softplus_candidates_reaches_a_relu_dead_neuron(candidates):
    # Neuron 2's pre-activation is its bias, -0.5: never positive (ReLU-dead). Gao et al.'s ReLU'd
    # candidates never pick it (no gradient: its bias stays); softplus picks it (the only dead neuron,
    # auxk_k = 1) and its gradient, through sigmoid(-0.5), moves the bias up.
    x = np.array([[1.5, 0.5], [4.5, 0.5]], "float32")
    sae = planted(b_enc=(2.0, 0.1, -0.5), auxk_candidates=candidates)
    sae.compile(optimizer=keras.optimizers.SGD(0.1))
    before = npy(sae.b_enc.value).copy()
    sae.fit(x, epochs=1, batch_size=2, verbose=0, shuffle=False)
    moved = npy(sae.b_enc.value) - before
    if candidates == "relu":
        assert moved[2] == 0
    else:
        # a = softplus(-0.5) = 0.474077 on both inputs; e as above ([-1, 1], [2, 1]), w2 = [0.6, 0.8]:
        # d(aux)/d(pre) = mean of -2 (e - a w2) . w2 * sigmoid(-0.5), times -lr.
        a, sig = np.log1p(np.exp(-0.5)), 1 / (1 + np.exp(0.5))
        w2 = np.array([0.6, 0.8])
        grad = np.mean([-2 * (np.array(e) - a * w2) @ w2 * sig for e in ([-1.0, 1.0], [2.0, 1.0])])
        assert moved[2] == pytest.approx(-0.1 * grad, rel=1e-3) and moved[2] > 0
    assert SparseAutoencoder.from_config(sae.get_config()).auxk_candidates == candidates


def test_idle_steps_count_training_steps_without_firing():
    sae = planted(auxk=False, dead=())
    sae.compile(optimizer=keras.optimizers.SGD(0.0))  # nothing moves: neuron 0 wins every step
    sae.fit(np.repeat(X, 4, axis=0), epochs=1, batch_size=1, verbose=0)
    np.testing.assert_array_equal(npy(sae.idle_steps.value), [0, 4, 4])
    np.testing.assert_array_equal(npy(sae.dead_mask()), [False, False, False])  # dead_steps is 5
    sae.fit(X, epochs=1, batch_size=1, verbose=0)
    np.testing.assert_array_equal(npy(sae.dead_mask()), [False, True, True])
    # Evaluation and prediction never count.
    sae.evaluate(X, verbose=0)
    sae.predict(X, verbose=0)
    np.testing.assert_array_equal(npy(sae.idle_steps.value), [0, 5, 5])


@pytest.mark.parametrize("project", [False, True])
def test_tied_init_starts_the_encoder_as_the_decoder_transposed(project):
    sae = SparseAutoencoder(6, n_neurons=10, k=3, tied_init=True, project_decoder_grads=project, seed=2)
    np.testing.assert_allclose(npy(sae.W_enc.value), npy(sae.W_dec.value).T, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(npy(sae.W_dec.value), axis=1), 1.0, atol=1e-5)
    # The projection alone does not tie the initialisation.
    untied = SparseAutoencoder(6, n_neurons=10, k=3, project_decoder_grads=project, seed=2)
    assert not np.allclose(npy(untied.W_enc.value), npy(untied.W_dec.value).T)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("project", [False, True])
def test_project_decoder_grads_keeps_decoder_updates_tangent_to_each_row(project, tied):
    # Without the unit-norm projection (constraint off), one SGD step moves each decoder row by
    # -lr * gradient: with the remedy that step has no component along the row itself, whatever
    # tied_init says (it only ties the initialisation).
    rng = np.random.RandomState(0)
    x = rng.randn(16, 6).astype("float32")
    sae = SparseAutoencoder(6, n_neurons=10, method="l1", l1_coefficient=0.01, tied_init=tied,
                            project_decoder_grads=project, seed=3)
    sae.W_dec.constraint = None
    sae.compile(optimizer=keras.optimizers.SGD(0.05))
    before = npy(sae.W_dec.value).copy()
    w_enc_before, b_enc_before, b_dec_before = (npy(w.value).copy() for w in (sae.W_enc, sae.b_enc, sae.b_dec))
    out_before = npy(sae(x))
    sae.fit(x, epochs=1, batch_size=16, verbose=0)
    step = npy(sae.W_dec.value) - before
    along = np.abs((step * before).sum(axis=1))
    assert np.abs(step).max() > 1e-4  # the decoder did learn
    if project:
        np.testing.assert_allclose(along, 0.0, atol=1e-6)
    else:
        assert along.max() > 1e-4
    # The projection changes gradients only: the forward pass is the plain one.
    plain = np.maximum(x @ w_enc_before + b_enc_before, 0) @ before + b_dec_before
    np.testing.assert_allclose(out_before, plain, rtol=1e-4, atol=1e-5)


def test_remedies_round_trip_through_saving(tmp_path):
    sae = planted(tied_init=True, project_decoder_grads=False, geometric_median_init=True)
    path = tmp_path / "sae.keras"
    sae.save(path)
    loaded = keras.saving.load_model(path)
    assert (loaded.auxk, loaded.auxk_k, loaded.dead_steps, loaded.tied_init) == (True, 1, 5, True)
    assert (loaded.project_decoder_grads, loaded.geometric_median_init) == (False, True)
    assert loaded.get_config() == sae.get_config()
    np.testing.assert_array_equal(npy(loaded.idle_steps.value), npy(sae.idle_steps.value))
    np.testing.assert_allclose(npy(loaded(X)), npy(sae(X)), rtol=1e-6)


@pytest.mark.parametrize("tied", [False, True])
def test_a_config_from_before_the_projection_switch_projects_when_tied(tied):
    # tied_init used to mean both the tied initialisation and the projection.
    config = SparseAutoencoder(4, n_neurons=6, k=2, tied_init=tied).get_config()
    del config["project_decoder_grads"], config["geometric_median_init"]
    old = SparseAutoencoder.from_config(config)
    assert old.tied_init is tied and old.project_decoder_grads is tied and old.geometric_median_init is False
    # A config that names the switch keeps it.
    assert SparseAutoencoder.from_config({**config, "project_decoder_grads": False}).project_decoder_grads is False


@pytest.mark.parametrize("bad, message", [
    ({"auxk_k": 0}, "auxk_k"), ({"dead_steps": 0}, "dead_steps"), ({"auxk_coefficient": -1.0}, "auxk_coefficient"),
    ({"jumprelu_threshold": 0.0}, "jumprelu_threshold"), ({"jumprelu_bandwidth": float("nan")}, "jumprelu_bandwidth"),
])
def test_bad_remedy_settings_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        SparseAutoencoder(4, n_neurons=6, k=2, **bad)


def test_remedies_are_config_switches():
    cfg = config_mod.validate({"sae": {"remedies": {"auxk": True, "auxk_k": 64, "tied_init": True}}})
    assert cfg.sae.remedies.auxk and cfg.sae.remedies.auxk_k == 64 and cfg.sae.remedies.tied_init
    assert not cfg.sae.remedies.project_decoder_grads and not cfg.sae.remedies.geometric_median_init
    every = config_mod.validate({"sae": {"normalization": "unit_norm", "remedies": {
        "auxk": True, "tied_init": True, "project_decoder_grads": True, "geometric_median_init": True,
        "resample_epochs": [1]}}})
    from collapse_tui.engine.sae_phase import remedy_names

    assert remedy_names(every) == ["auxk", "tied_init", "project_decoder_grads", "geometric_median_init",
                                   "resampling", "unit_norm"]
    sae = SparseAutoencoder.from_settings(every.sae, input_dim=8, seed=0)
    assert (sae.tied_init, sae.project_decoder_grads, sae.geometric_median_init) == (True, True, True)
    assert sae.auxk_k is None and sae.aux_topk.k == 4
    # Centring is refused with why: it is the same model as none.
    with pytest.raises(config_mod.ConfigError, match="'centre' is no longer offered: subtracting the mean"):
        config_mod.validate({"sae": {"normalization": "centre"}})
    with pytest.raises(config_mod.ConfigError, match="sae.remedies.auxk_k"):
        config_mod.validate({"sae": {"remedies": {"auxk_k": 0}}})
    with pytest.raises(config_mod.ConfigError, match="k: 600 exceeds sae.n_neurons"):
        config_mod.validate({"sae": {"method": "batchtopk", "k": 600}})


# --------------------------------------------------------------------------- geometric median


def test_geometric_median_of_an_equilateral_triangle_is_its_centre():
    triangle = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, np.sqrt(3.0)]])
    np.testing.assert_allclose(geometric_median(triangle), [1.0, np.sqrt(3.0) / 3], atol=1e-9)


def test_geometric_median_of_an_isosceles_triangle_sees_each_side_at_120_degrees():
    # (-1, 0), (1, 0), (0, 2): the Fermat point (0, y) sees the base at 120 degrees: y = 1 / tan(60) =
    # 1 / sqrt(3), below the mean's 2/3.
    median = geometric_median(np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    np.testing.assert_allclose(median, [0.0, 1 / np.sqrt(3.0)], atol=1e-6)


def test_geometric_median_of_a_triangle_with_an_obtuse_angle_is_that_vertex():
    # The angle at the origin is over 120 degrees: the median is that vertex.
    median = geometric_median(np.array([[0.0, 0.0], [1.0, 0.0], [-0.5, 0.1]]))
    np.testing.assert_allclose(median, [0.0, 0.0], atol=1e-6)


def test_geometric_median_of_collinear_points_is_the_middle_one():
    t = np.array([0.0, 1.0, 2.0, 5.0, 10.0])  # mean 3.6, median 2
    points = np.outer(t, [3.0, -4.0]) + [1.0, 1.0]
    np.testing.assert_allclose(geometric_median(points), [7.0, -7.0], atol=1e-6)


def test_geometric_median_of_a_majority_point_is_that_point():
    points = np.array([[1.0, 2.0, 3.0]] * 3 + [[10.0, 0.0, 0.0], [0.0, -10.0, 5.0]])
    np.testing.assert_allclose(geometric_median(points), [1.0, 2.0, 3.0], atol=1e-6)
    np.testing.assert_array_equal(geometric_median(np.ones((4, 3))), np.ones(3))  # no spread


def test_geometric_median_resists_a_far_outlier_the_mean_does_not():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    for far in (1e3, 1e6):
        points = np.concatenate([square, [[far, far]]])
        median = geometric_median(points)
        assert np.all((median >= 0) & (median <= 1))  # inside the square, however far the outlier
        assert points.mean(0)[0] > far / 5 - 1
        # It is the minimiser: no nearby point has a smaller total distance.
        total = lambda p: np.linalg.norm(points - p, axis=1).sum()  # noqa: E731
        for offset in ([1e-3, 0], [0, 1e-3], [-1e-3, 0], [0, -1e-3]):
            assert total(median) <= total(median + offset)


def test_geometric_median_init_starts_b_dec_at_the_median_of_the_normalised_inputs():
    rng = np.random.RandomState(0)
    x = rng.normal(size=(200, 3)) + [1.0, -2.0, 0.5]
    x[:5] += 500.0  # a few outliers pull the mean, not the median
    for normalization in ("none", "standardise"):
        sae = SparseAutoencoder(3, n_neurons=6, k=2, normalization=normalization, geometric_median_init=True)
        sae.adapt(x)
        z = (x - npy(sae.norm_mean.value)) / npy(sae.norm_std.value)
        np.testing.assert_allclose(npy(sae.b_dec.value), geometric_median(z), rtol=1e-5, atol=1e-5)
        plain = SparseAutoencoder(3, n_neurons=6, k=2, normalization=normalization)
        plain.adapt(x)
        np.testing.assert_allclose(npy(plain.b_dec.value), z.mean(0), rtol=1e-5, atol=1e-5)
    assert np.abs(npy(sae.b_dec.value) - z.mean(0)).max() > 0.1


def test_geometric_median_init_uses_at_most_its_row_cap(monkeypatch):
    seen = []
    monkeypatch.setattr(input_statistics, "GEOMETRIC_MEDIAN_ROWS", 16)
    monkeypatch.setattr(input_statistics, "geometric_median", lambda rows: seen.append(rows) or rows.mean(0))
    x = np.arange(40 * 2, dtype="float64").reshape(40, 2)
    sae = SparseAutoencoder(2, n_neurons=4, k=1, geometric_median_init=True)
    sae.adapt(x)
    (rows,) = seen
    assert rows.shape == (16, 2) and len({tuple(r) for r in rows}) == 16
    assert all(any((r == x).all(1)) for r in rows)  # distinct rows of the data
    sae.adapt(x[:16])
    np.testing.assert_array_equal(seen[-1], x[:16])  # all of them when there are few enough


# --------------------------------------------------------------------------- resampling


def forced_dead(n=64, seed=0):
    """An SAE whose neuron 5 can never fire (encoder bias -100) and is counted dead, after one epoch of
    Adam so that the optimiser holds state for every weight."""
    from collapse_tui.nn.resampling import DeadNeuronResampler  # noqa: F401 - import check

    rng = np.random.RandomState(seed)
    x = rng.randn(n, 6).astype("float32")
    sae = SparseAutoencoder(6, n_neurons=8, method="l1", l1_coefficient=0.01, dead_steps=1, seed=seed)
    sae.adapt(x)
    b_enc = npy(sae.b_enc.value).copy()
    b_enc[5] = -100.0
    sae.b_enc.assign(b_enc)
    sae.compile(optimizer=keras.optimizers.Adam(0.01))
    sae.fit(x, epochs=1, batch_size=16, verbose=0)
    return sae, x


def slots(sae, variable):
    from collapse_tui.nn.resampling import optimizer_slots

    return [npy(v.value) for v in optimizer_slots(sae.optimizer, variable)]


def test_resampling_revives_a_neuron_forced_dead():
    from collapse_tui.nn.resampling import ENCODER_SCALE, resample_dead_neurons

    sae, x = forced_dead()
    assert npy(sae.dead_mask())[5] and npy(sae.codes(x))[:, 5].max() == 0
    assert len(slots(sae, sae.W_enc)) == 2  # Adam: momentum and velocity
    w_enc_before = npy(sae.W_enc.value).copy()
    # One input far off everything the SAE learned: with draws weighted by squared error squared, it is
    # the one a dead neuron is pointed at (its weight exceeds the others' total many times over).
    x = np.concatenate([x, np.full((1, 6), 30.0, "float32")])
    errors = ((npy(sae.reconstruct(x)) - x) ** 2).sum(1)
    assert errors[-1] ** 2 > 100 * (errors[:-1] ** 2).sum()
    resampled = resample_dead_neurons(sae, x, np.random.RandomState(1))
    assert 5 in resampled and not npy(sae.dead_mask()).any()
    w_dec, w_enc, b_enc = npy(sae.W_dec.value), npy(sae.W_enc.value), npy(sae.b_enc.value)
    # The new dictionary vector is one of the inputs (minus b_dec), at unit norm; the encoder points the
    # same way, at 0.2 x the live columns' mean norm; the bias is 0.
    candidates = x - npy(sae.b_dec.value)
    candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
    match = np.abs(candidates @ w_dec[5] - 1).min()
    assert match < 1e-5 and abs(np.linalg.norm(w_dec[5]) - 1) < 1e-5
    alive = [i for i in range(8) if i not in resampled]
    expected_norm = ENCODER_SCALE * np.linalg.norm(w_enc_before[:, alive], axis=0).mean()
    np.testing.assert_allclose(w_enc[:, 5], w_dec[5] * expected_norm, rtol=1e-5)
    assert b_enc[5] == 0.0
    # Its optimiser state is forgotten, the live neurons' is kept; its idle count restarts.
    for state in slots(sae, sae.W_enc):
        assert np.all(state[:, 5] == 0) and np.any(state[:, alive] != 0)
    for state in slots(sae, sae.W_dec):
        assert np.all(state[5] == 0)
    assert npy(sae.idle_steps.value)[5] == 0
    # Revived: it now fires on the input it was pointed at.
    assert npy(sae.codes(x))[:, 5].max() > 0
    chosen = int(np.argmin(np.abs(candidates @ w_dec[5] - 1)))
    assert chosen == len(x) - 1


def test_resampler_callback_acts_at_its_epochs_and_training_continues():
    from collapse_tui.nn.resampling import DeadNeuronResampler

    sae, x = forced_dead()
    heard = []
    b_enc = npy(sae.b_enc.value).copy()
    b_enc[5] = -100.0  # dead again for the next epoch
    sae.b_enc.assign(b_enc)
    sae.fit(x, epochs=3, batch_size=16, verbose=0,
            callbacks=[DeadNeuronResampler(x, epochs=[2], seed=0, on_resample=lambda e, i: heard.append((e, list(i))))])
    assert len(heard) == 1 and heard[0][0] == 2 and 5 in heard[0][1]
    # Trained one more epoch after the resampling: the neuron fired, so it is not idle-dead.
    assert npy(sae.idle_steps.value)[5] == 0 and npy(sae.codes(x))[:, 5].max() > 0


def test_resampling_with_no_dead_neuron_changes_nothing():
    from collapse_tui.nn.resampling import resample_dead_neurons

    sae, x = forced_dead()
    sae.idle_steps.assign(np.zeros(8, "float32"))
    before = [npy(w.value).copy() for w in sae.weights]
    assert resample_dead_neurons(sae, x, np.random.RandomState(0)).size == 0
    for b, w in zip(before, sae.weights):
        np.testing.assert_array_equal(b, npy(w.value))


def test_a_sweep_over_switches_names_its_runs_by_them():
    runs = config_mod.expand({"name": "r", "sweep": [{"sae.remedies.auxk": [False, True],
                                                      "sae.remedies.tied_init": [True]}]})
    assert [c.name for c, _ in runs] == ["r-noauxk-tiedinit", "r-auxk-tiedinit"]
    assert [c.sae.remedies.auxk for c, _ in runs] == [False, True]


def test_resample_epochs_must_be_epochs_of_the_sae():
    cfg = config_mod.validate({"sae": {"epochs": 10, "remedies": {"resample_epochs": [2, 5]}}})
    assert cfg.sae.remedies.resample_epochs == [2, 5]
    with pytest.raises(config_mod.ConfigError, match="resample_epochs: 11 is not an epoch"):
        config_mod.validate({"sae": {"epochs": 10, "remedies": {"resample_epochs": [11]}}})


# --------------------------------------------------------------------------- BatchTopK and JumpReLU SAEs


def test_batchtopk_sae_keeps_k_per_sample_on_average_and_cuts_at_its_threshold_afterwards():
    rng = np.random.RandomState(0)
    x = rng.randn(64, 6).astype("float32")
    sae = SparseAutoencoder(6, n_neurons=16, method="batchtopk", k=3, seed=1)
    sae.adapt(x)
    sae.compile(optimizer=keras.optimizers.Adam(0.01))
    history = sae.fit(x, epochs=2, batch_size=16, verbose=0).history
    assert history["l0"][-1] == pytest.approx(3.0, abs=0.05)  # k x batch kept across each batch
    threshold = float(npy(sae.topk.threshold.value))
    assert threshold > 0
    # Inference: the learned threshold, per entry, no batch competition.
    z = x - npy(sae.b_dec.value)
    pre = z @ npy(sae.W_enc.value) + npy(sae.b_enc.value)
    expected = np.where(pre > threshold, pre, 0.0)
    np.testing.assert_allclose(npy(sae.codes(x)), expected, rtol=1e-4, atol=1e-5)
    # The schedule's k reaches the layer.
    sae.set_sparsity(5)
    assert sae.sparsity == 5 and sae.k == 5


def test_jumprelu_sae_loss_is_reconstruction_plus_coefficient_times_l0():
    rng = np.random.RandomState(1)
    x = rng.randn(10, 6).astype("float32")
    sae = SparseAutoencoder(6, n_neurons=12, method="jumprelu", l1_coefficient=0.05, jumprelu_threshold=0.2,
                            seed=2)
    loss = float(npy(sae.compute_loss(x=x, y_pred=sae(x), training=False)))
    pre = x @ npy(sae.W_enc.value) + npy(sae.b_enc.value)  # b_dec is 0 before adapt()
    codes = np.where(pre > 0.2, pre, 0.0)
    x_hat = codes @ npy(sae.W_dec.value)
    reconstruction = ((x_hat - x) ** 2).sum(1).mean()
    l0 = (pre > 0.2).sum(1).mean()
    assert loss == pytest.approx(reconstruction + 0.05 * l0, rel=1e-4)
    assert float(npy(sae.metrics[3].result())) == pytest.approx(l0)


def test_jumprelu_sae_learns_its_thresholds_and_a_stronger_penalty_means_fewer_active():
    rng = np.random.RandomState(2)
    x = rng.randn(128, 6).astype("float32")
    l0 = {}
    for coefficient in (1e-4, 1.0):
        sae = SparseAutoencoder(6, n_neurons=16, method="jumprelu", l1_coefficient=coefficient,
                                jumprelu_threshold=0.1, jumprelu_bandwidth=0.5, seed=3)
        sae.adapt(x)
        sae.compile(optimizer=keras.optimizers.Adam(0.02))
        sae.fit(x, epochs=15, batch_size=32, verbose=0)
        theta = npy(sae.jumprelu.threshold)
        assert not np.allclose(theta, 0.1)  # the thresholds moved
        l0[coefficient] = float((npy(sae.codes(x)) > 0).sum(1).mean())
    assert l0[1.0] < l0[1e-4]


# --------------------------------------------------------------------------- through the engine


@pytest.mark.parametrize("method", ["batchtopk", "jumprelu"])
def test_a_run_with_every_remedy_switched_on(tmp_path, method):
    from collapse_tui import store
    from collapse_tui import events as ev
    from collapse_tui.engine.runner import Engine
    from tests.helpers import tiny_config

    data = tiny_config(tmp_path, sae={"method": method, "epochs": 3, "l1_coefficient": 0.01,
                                      "remedies": {"auxk": True, "auxk_k": 8, "dead_steps": 1, "tied_init": True,
                                                   "project_decoder_grads": True, "geometric_median_init": True,
                                                   "resample_epochs": [2]}})
    events = []
    result = Engine().run(config_mod.validate(data), [events.append])
    assert result.status == "ok", result.summary.get("reason")
    summary = store.load_run(result.run_dir).summary
    assert summary["method"] == method
    assert summary["remedies"] == ["auxk", "tied_init", "project_decoder_grads", "geometric_median_init",
                                   "resampling"]
    resampled = [e.text for e in events if isinstance(e, ev.Message) and "resampled" in e.text]
    assert len(resampled) == 1 and "after epoch 2" in resampled[0]
    assert summary["resampled"] == int(resampled[0].split()[2])
    # AuxK's loss and the dead fraction it saw are logged every epoch.
    logs = [e.logs for e in events if isinstance(e, ev.EpochEnd) and e.phase == "sae"]
    assert len(logs) == 3 and all("auxk_loss" in log and "auxk_dead" in log for log in logs)
    started = [e.detail for e in events if isinstance(e, ev.PhaseStarted) and e.phase == "sae"][0]
    assert "auxk + tied_init + project_decoder_grads + geometric_median_init + resampling" in started
    loaded = keras.saving.load_model(result.run_dir / "sae.keras")
    assert loaded.method == method and loaded.auxk and loaded.tied_init
    assert loaded.project_decoder_grads and loaded.geometric_median_init


def test_extended_training_reports_revived_and_newly_dead_neurons(tmp_path):
    from collapse_tui import store
    from collapse_tui import events as ev
    from collapse_tui.engine.runner import Engine
    from tests.helpers import tiny_config

    data = tiny_config(tmp_path, sae={"epochs": 2, "extended_epochs": 2}, eval={"every": 0})
    events = []
    result = Engine().run(config_mod.validate(data), [events.append])
    assert result.status == "ok", result.summary.get("reason")
    evaluations = [e for e in events if isinstance(e, ev.Evaluation) and e.phase == "sae"]
    # Measured at the end of the scheduled training and after the extension, nowhere else.
    assert [e.epoch for e in evaluations] == [2, 4]
    before, after = (np.asarray(e.metrics["dead_mask"]) for e in evaluations)
    final = store.load_run(result.run_dir).summary["final"]
    assert final["revived"] == int(np.sum(before & ~after))
    assert final["newly_dead"] == int(np.sum(~before & after))
    assert final["dead_before_extension"] == pytest.approx(before.mean())
    assert final["dead_fraction"] == pytest.approx(after.mean())
    assert final["specialized_before_extension"] == evaluations[0].metrics["specialized"]
    assert [e.epoch for e in events if isinstance(e, ev.EpochEnd) and e.phase == "sae"] == [1, 2, 3, 4]


def test_extension_report_counts_revival_only_above_the_revival_frequency():
    from collapse_tui.engine.sae_phase import extension_report

    before = {"dead_mask": [True, True, True, False, False], "dead_fraction": 0.6, "specialized": 3}
    # On 5,000 inputs afterwards: neuron 1 fires 3 times (6e-4: flicker), neuron 2 five times (1e-3),
    # neuron 3 (live before) never.
    after = {"dead_mask": [True, False, False, True, False], "fire_counts": [0, 3, 5, 0, 900], "n_samples": 5000}
    assert extension_report(before, after) == {"dead_before_extension": 0.6, "specialized_before_extension": 3,
                                               "revived": 1, "newly_dead": 1}
    assert extension_report(before, after, revival_frequency=5e-4)["revived"] == 2
    assert extension_report(before, after, revival_frequency=0.0)["revived"] == 3  # any firing, or none: all


def test_a_schedule_measures_specialized_and_dead_neurons_before_it_sparsifies(tmp_path):
    from collapse_tui import store
    from collapse_tui import events as ev
    from collapse_tui.engine.runner import Engine
    from tests.helpers import tiny_config

    data = tiny_config(tmp_path, sae={"epochs": 3, "k": 2, "schedule": {"kind": "linear", "start": 20, "epochs": 3}},
                       eval={"every": 0})
    events = []
    result = Engine().run(config_mod.validate(data), [events.append])
    assert result.status == "ok", result.summary.get("reason")
    evaluations = [e for e in events if isinstance(e, ev.Evaluation) and e.phase == "sae"]
    # After the first epoch (k still near its start), then at the end only.
    assert [e.epoch for e in evaluations] == [1, 3]
    assert evaluations[0].metrics["sparsity"] > evaluations[1].metrics["sparsity"] == 2
    final = store.load_run(result.run_dir).summary["final"]
    assert final["specialized_before_sparsification"] == evaluations[0].metrics["specialized"]
    assert final["dead_before_sparsification"] == pytest.approx(evaluations[0].metrics["dead_fraction"])
    # Without a schedule there is no "before" to report.
    plain = Engine().run(config_mod.validate(tiny_config(tmp_path, eval={"every": 0})))
    assert "specialized_before_sparsification" not in plain.summary["final"]
