"""Dead-neuron remedies of the SAE, each shown on a small planted case, on the current backend."""

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui import config as config_mod
from collapse_tui.nn import SparseAutoencoder


def npy(t):
    return np.asarray(ops.convert_to_numpy(t))


def planted(auxk=True, dead=(2,), **kwargs):
    """Two inputs, three neurons, Top-1. Pre-activations are the encoder bias alone (W_enc = 0):
    [2, 0.1, 0.7] for every input, so neuron 0 always wins and neurons 1 and 2 never fire."""
    sae = SparseAutoencoder(2, n_neurons=3, method="topk", k=1, auxk=auxk, auxk_k=1, auxk_coefficient=1.0,
                            dead_steps=5, seed=0, **kwargs)
    sae.b_dec.assign(np.array([0.5, -0.5], "float32"))
    sae.W_enc.assign(np.zeros((2, 3), "float32"))
    sae.b_enc.assign(np.array([2.0, 0.1, 0.7], "float32"))
    sae.W_dec.assign(np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], "float32"))
    idle = np.zeros(3, "float32")
    idle[list(dead)] = 5.0  # idle for dead_steps steps: counted dead
    sae.idle_steps.assign(idle)
    return sae


X = np.array([[1.5, 0.5]], "float32")


def test_auxk_loss_reconstructs_the_residual_from_dead_neurons_counting_the_bias_once():
    sae = planted()
    loss = float(npy(sae.compute_loss(x=X, y_pred=sae(X), training=False)))
    # z_hat = 2 * [1, 0] + b_dec = [2.5, -0.5]; residual z - z_hat = [-1, 1]; main loss 2.
    # Dead neuron 2 (pre 0.7) reconstructs it as 0.7 * [0.6, 0.8] with no b_dec: (-1.42)^2 + 0.44^2.
    auxk = (-1 - 0.42) ** 2 + (1 - 0.56) ** 2
    assert float(npy(sae.auxk_tracker.result())) == pytest.approx(auxk, rel=1e-5)
    assert loss == pytest.approx(2.0 + auxk, rel=1e-5)
    assert float(npy(sae.dead_tracker.result())) == pytest.approx(1 / 3)
    # Neuron 1 (pre 0.1) is live: it never takes part, whatever its pre-activation.
    assert "auxk_loss" in [m.name for m in sae.metrics]


def test_auxk_is_zero_while_no_neuron_is_dead():
    sae = planted(dead=())
    loss = float(npy(sae.compute_loss(x=X, y_pred=sae(X), training=False)))
    assert float(npy(sae.auxk_tracker.result())) == 0.0
    assert loss == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("auxk", [False, True])
def test_auxk_gives_a_dead_neuron_a_gradient(auxk):
    # One SGD step: without AuxK, a neuron outside the top k gets no gradient at all (its encoder
    # weights stay put); with AuxK the dead neuron's encoder bias moves, the live loser's does not.
    sae = planted(auxk=auxk)
    sae.compile(optimizer=keras.optimizers.SGD(0.1))
    before = npy(sae.b_enc.value).copy()
    sae.fit(X, epochs=1, batch_size=1, verbose=0)
    moved = npy(sae.b_enc.value) - before
    assert moved[0] != 0  # the winner always learns
    assert moved[1] == 0  # never fires, not yet counted dead
    if auxk:
        # d(aux)/d(a2) = -2 (residual - a2 w2) . w2 = -2 * (-1.42 * 0.6 + 0.44 * 0.8) = 1.0, times lr.
        assert moved[2] == pytest.approx(-0.1 * 1.0, rel=1e-4)
    else:
        assert moved[2] == 0


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


def test_tied_init_starts_the_encoder_as_the_decoder_transposed():
    sae = SparseAutoencoder(6, n_neurons=10, k=3, tied_init=True, seed=2)
    np.testing.assert_allclose(npy(sae.W_enc.value), npy(sae.W_dec.value).T, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(npy(sae.W_dec.value), axis=1), 1.0, atol=1e-5)
    untied = SparseAutoencoder(6, n_neurons=10, k=3, seed=2)
    assert not np.allclose(npy(untied.W_enc.value), npy(untied.W_dec.value).T)


@pytest.mark.parametrize("tied", [False, True])
def test_tied_init_keeps_decoder_updates_tangent_to_each_row(tied):
    # Without the unit-norm projection (constraint off), one SGD step moves each decoder row by
    # -lr * gradient: with the remedy that step has no component along the row itself.
    rng = np.random.RandomState(0)
    x = rng.randn(16, 6).astype("float32")
    sae = SparseAutoencoder(6, n_neurons=10, method="l1", l1_coefficient=0.01, tied_init=tied, seed=3)
    sae.W_dec.constraint = None
    sae.compile(optimizer=keras.optimizers.SGD(0.05))
    before = npy(sae.W_dec.value).copy()
    w_enc_before, b_enc_before, b_dec_before = (npy(w.value).copy() for w in (sae.W_enc, sae.b_enc, sae.b_dec))
    out_before = npy(sae(x))
    sae.fit(x, epochs=1, batch_size=16, verbose=0)
    step = npy(sae.W_dec.value) - before
    along = np.abs((step * before).sum(axis=1))
    assert np.abs(step).max() > 1e-4  # the decoder did learn
    if tied:
        np.testing.assert_allclose(along, 0.0, atol=1e-6)
    else:
        assert along.max() > 1e-4
    # The projection changes gradients only: the forward pass is the plain one.
    plain = np.maximum(x @ w_enc_before + b_enc_before, 0) @ before + b_dec_before
    np.testing.assert_allclose(out_before, plain, rtol=1e-4, atol=1e-5)


def test_remedies_round_trip_through_saving(tmp_path):
    sae = planted(tied_init=True)
    path = tmp_path / "sae.keras"
    sae.save(path)
    loaded = keras.saving.load_model(path)
    assert (loaded.auxk, loaded.auxk_k, loaded.dead_steps, loaded.tied_init) == (True, 1, 5, True)
    np.testing.assert_array_equal(npy(loaded.idle_steps.value), npy(sae.idle_steps.value))
    np.testing.assert_allclose(npy(loaded(X)), npy(sae(X)), rtol=1e-6)


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
    with pytest.raises(config_mod.ConfigError, match="sae.remedies.auxk_k"):
        config_mod.validate({"sae": {"remedies": {"auxk_k": 0}}})
    with pytest.raises(config_mod.ConfigError, match="k: 600 exceeds sae.n_neurons"):
        config_mod.validate({"sae": {"method": "batchtopk", "k": 600}})


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
    from collapse_tui.nn.resampling import _optimizer_slots

    return [npy(v.value) for v in _optimizer_slots(sae.optimizer, variable)]


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
                                                   "resample_epochs": [2]}})
    events = []
    result = Engine().run(config_mod.validate(data), [events.append])
    assert result.status == "ok", result.summary.get("reason")
    summary = store.load_run(result.run_dir).summary
    assert summary["method"] == method
    assert summary["remedies"] == ["auxk", "tied_init", "resampling"]
    resampled = [e.text for e in events if isinstance(e, ev.Message) and "resampled" in e.text]
    assert len(resampled) == 1 and "after epoch 2" in resampled[0]
    assert summary["resampled"] == int(resampled[0].split()[2])
    # AuxK's loss and the dead fraction it saw are logged every epoch.
    logs = [e.logs for e in events if isinstance(e, ev.EpochEnd) and e.phase == "sae"]
    assert len(logs) == 3 and all("auxk_loss" in log and "auxk_dead" in log for log in logs)
    started = [e.detail for e in events if isinstance(e, ev.PhaseStarted) and e.phase == "sae"][0]
    assert "auxk + tied_init + resampling" in started
    loaded = keras.saving.load_model(result.run_dir / "sae.keras")
    assert loaded.method == method and loaded.auxk and loaded.tied_init


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
