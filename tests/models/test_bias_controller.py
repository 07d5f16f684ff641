"""The bias floor (a per-neuron bias controller, :mod:`collapse_tui.nn.bias_floor`): its update by hand, a
planted ReLU-dead neuron it revives after a computable number of updates (in a lone SAE and in a bank)
while a neuron firing above the floor is never raised, its state through saving, checkpoints and
resampling, and its settings."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui import config as config_mod
from collapse_tui.engine.torch_bank import prepare_bank
from collapse_tui.nn import SparseAutoencoder
from collapse_tui.nn.bias_floor import bias_floor_update
from collapse_tui.nn.resampling import resample_dead_neurons
from collapse_tui.nn.sae_bank import SAEBank

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

D, M, B = 8, 16, 16
DEAD, ON = 3, 5  # the planted neurons: never positive, always positive
GAP = 0.105  # the dead neuron's pre-activation, -GAP on every input
FLOOR, STEP, WINDOW = 0.05, 0.01, 10
# The offset grows by STEP at every update from the first (the rate starts at the floor and falls below it
# at once), so after n updates the dead neuron's pre-activation is n × STEP − GAP: positive from this n on.
UPDATES_TO_CROSS = math.floor(GAP / STEP) + 1  # 11: 0.11 > 0.105 > 0.10


def npy(x):
    return np.asarray(ops.convert_to_numpy(x))


def data(n=B, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, D)).astype("float32")


def planted(x, floor=FLOOR, **kwargs):
    """An L1 SAE (a ReLU: a neuron fires exactly where its pre-activation is positive) whose neuron DEAD has
    pre-activation -GAP on every input and ON +1: a zero encoder column and a bias. While DEAD's codes are 0
    it has no gradient, so Adam leaves its column and bias exactly where they are."""
    sae = SparseAutoencoder(D, n_neurons=M, method="l1", l1_coefficient=1e-3, seed=1, bias_floor=floor,
                            bias_step=STEP, bias_window=WINDOW, **kwargs)
    sae.adapt(x)
    w_enc, b_enc = npy(sae.W_enc).copy(), npy(sae.b_enc).copy()
    w_enc[:, [DEAD, ON]] = 0.0
    b_enc[DEAD], b_enc[ON] = -GAP, 1.0
    sae.W_enc.assign(w_enc)
    sae.b_enc.assign(b_enc)
    return sae


def test_the_update_by_hand():
    rate, offset = np.array([0.2, 0.2, 0.0], np.float32), np.array([0.0, 0.5, 0.0], np.float32)
    fired = np.array([0.0, 0.5, 0.0], np.float32)
    floor = np.array([0.2, 0.2, 0.0], np.float32)  # the last neuron: no floor (a bank member without it)
    new_rate, new_offset = (npy(t) for t in bias_floor_update(ops.convert_to_tensor(rate),
                                                              ops.convert_to_tensor(offset), fired, floor, 0.1, 4.0))
    np.testing.assert_allclose(new_rate, [0.15, 0.275, 0.0], rtol=1e-6)
    np.testing.assert_allclose(new_offset, [0.1, 0.5, 0.0], rtol=1e-6)  # raised only below the floor


def test_the_running_rate_by_hand_over_two_training_steps():
    x1, x2 = data(8, seed=1), data(8, seed=2)
    floor, step, window = 0.45, 0.5, 4
    sae = SparseAutoencoder(D, n_neurons=M, method="l1", seed=2, bias_floor=floor, bias_step=step,
                            bias_window=window)
    sae.adapt(np.concatenate([x1, x2]))
    sae.compile(optimizer=keras.optimizers.SGD(0.0))  # the weights stay: only the controller moves
    rate = np.full(M, floor, np.float32)
    offset = np.zeros(M, np.float32)
    np.testing.assert_array_equal(npy(sae.fire_rate), rate)
    for x in (x1, x2):
        fired = (sae.codes(x) > 0).mean(axis=0)  # with the offset so far: the step's forward pass
        rate = rate + (fired - rate) / window
        offset = offset + step * (rate < floor)
        sae.fit(x, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
        np.testing.assert_allclose(npy(sae.fire_rate), rate, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(npy(sae.bias_offset), offset, rtol=1e-6)
    assert 0 < np.count_nonzero(offset) < M  # the case has both kinds of neuron
    # The host's pre-activations and the codes see the offset.
    z = x2 - npy(sae.b_dec)  # normalisation "none"
    np.testing.assert_allclose(sae.pre_activations(x2), z @ npy(sae.W_enc) + npy(sae.b_enc) + offset, atol=1e-5)


def test_a_planted_relu_dead_neuron_fires_again_after_the_computed_number_of_updates():
    x = data()
    sae = planted(x)
    plain = planted(x, floor=0.0)
    assert plain.bias_offset is None and plain.fire_rate is None
    for model in (sae, plain):
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert sae.pre_activations(x)[:, DEAD].max() == pytest.approx(-GAP)
    # One update per epoch: a batch is the whole data.
    for model in (sae, plain):
        model.fit(x, epochs=UPDATES_TO_CROSS - 1, batch_size=B, shuffle=False, verbose=0)
    assert sae.pre_activations(x)[:, DEAD].max() < 0  # 10 updates: -0.005
    for model in (sae, plain):
        model.fit(x, epochs=1, batch_size=B, shuffle=False, verbose=0)
    # Silent through every update so far, and now positive on every input.
    assert npy(sae.idle_steps)[DEAD] == UPDATES_TO_CROSS
    assert npy(sae.bias_offset)[DEAD] == pytest.approx(UPDATES_TO_CROSS * STEP, rel=1e-5)
    assert sae.pre_activations(x)[:, DEAD].min() == pytest.approx(UPDATES_TO_CROSS * STEP - GAP, abs=1e-5)
    assert (sae.codes(x)[:, DEAD] > 0).all()
    sae.fit(x, epochs=1, batch_size=B, shuffle=False, verbose=0)
    assert npy(sae.idle_steps)[DEAD] == 0  # fired in training
    # Firing on every input lifts its rate above the floor at once: it is raised no further.
    assert npy(sae.fire_rate)[DEAD] > FLOOR
    assert npy(sae.bias_offset)[DEAD] == pytest.approx(UPDATES_TO_CROSS * STEP, rel=1e-5)
    # A neuron firing on every input is never raised.
    assert npy(sae.bias_offset)[ON] == 0 and npy(sae.fire_rate)[ON] >= FLOOR
    # Without the remedy it stays dead.
    plain.fit(x, epochs=1, batch_size=B, shuffle=False, verbose=0)
    assert npy(plain.idle_steps)[DEAD] == UPDATES_TO_CROSS + 1
    assert plain.pre_activations(x)[:, DEAD].max() == pytest.approx(-GAP)


def test_a_bank_revives_its_members_dead_neuron_and_leaves_the_member_without_the_floor_alone():
    x = data()
    with_floor, without = planted(x), planted(x, floor=0.0)
    bank = SAEBank([with_floor, without], x)
    assert bank.raises_bias
    bank.compile(optimizer=keras.optimizers.Adam(1e-3))
    prepare_bank(bank)  # the step the engine trains with (under torch: its own)
    positions = np.arange(B)  # one update per epoch
    bank.fit(positions, epochs=UPDATES_TO_CROSS, batch_size=B, shuffle=False, verbose=0)
    idle, offset = npy(bank.idle_steps), npy(bank.bias_offset)
    assert idle[0, DEAD] == idle[1, DEAD] == UPDATES_TO_CROSS
    assert offset[0, DEAD] == pytest.approx(UPDATES_TO_CROSS * STEP, rel=1e-5)
    assert offset[0, ON] == 0 and (offset[1] == 0).all()
    bank.fit(positions, epochs=1, batch_size=B, shuffle=False, verbose=0)
    idle = npy(bank.idle_steps)
    assert idle[0, DEAD] == 0 and idle[1, DEAD] == UPDATES_TO_CROSS + 1
    # Copied out, the member carries its offset and rate, and fires as in the bank.
    member = bank.write_member(0, planted(x))
    np.testing.assert_array_equal(npy(member.bias_offset), npy(bank.bias_offset)[0])
    np.testing.assert_array_equal(npy(member.fire_rate), npy(bank.fire_rate)[0])
    assert (member.codes(x)[:, DEAD] > 0).all()
    ((_, codes, _),) = bank.member_outputs({0: x})
    np.testing.assert_allclose(codes, member.codes(x), atol=1e-5)
    assert bank.write_member(1, planted(x, floor=0.0)).pre_activations(x)[:, DEAD].max() == pytest.approx(-GAP)


def test_a_bank_member_trains_its_controller_as_it_would_alone():
    x = data(96)
    spec = dict(n_neurons=M, method="l1", l1_coefficient=0.01, seed=4, bias_floor=0.45, bias_step=0.05,
                bias_window=5)

    def build():
        sae = SparseAutoencoder(D, **spec)
        sae.adapt(x)
        return sae

    alone = build()
    alone.compile(optimizer=keras.optimizers.Adam(1e-2))
    alone.fit(x, epochs=2, batch_size=16, shuffle=False, verbose=0)
    bank = SAEBank([build(), SparseAutoencoder(D, n_neurons=M, method="l1", seed=5)], x)
    bank.compile(optimizer=keras.optimizers.Adam(1e-2))
    prepare_bank(bank)
    bank.fit(np.arange(len(x)), epochs=2, batch_size=16, shuffle=False, verbose=0)
    member = bank.write_member(0, build())
    assert npy(alone.bias_offset).any()  # the controller acted
    for name in ("bias_offset", "fire_rate", "idle_steps", "W_enc", "b_enc"):
        np.testing.assert_allclose(npy(getattr(member, name)), npy(getattr(alone, name)), atol=2e-5, err_msg=name)


def test_the_state_survives_saving_and_checkpoints(tmp_path):
    x = data()
    sae = planted(x)
    sae.compile(optimizer=keras.optimizers.Adam(1e-3))
    sae.fit(x, epochs=3, batch_size=B, shuffle=False, verbose=0)
    config = sae.get_config()
    assert (config["bias_floor"], config["bias_step"], config["bias_window"]) == (FLOOR, STEP, WINDOW)
    again = SparseAutoencoder.from_config(config)
    assert (again.bias_floor, again.bias_step, again.bias_window) == (FLOOR, STEP, WINDOW)
    assert again.get_config() == config
    # A checkpoint holds get_weights() (SAEPhase.checkpoint): the offset and rate are among them.
    assert len(sae.get_weights()) == len(planted(x, floor=0.0).get_weights()) + 2
    again.set_weights(sae.get_weights())
    for name in ("bias_offset", "fire_rate"):
        np.testing.assert_array_equal(npy(getattr(again, name)), npy(getattr(sae, name)))
    assert npy(again.bias_offset)[DEAD] == pytest.approx(3 * STEP)
    # ...and a bank built from the restored member goes on from them (a resumed bank run).
    np.testing.assert_array_equal(npy(SAEBank([again], x).bias_offset)[0], npy(sae.bias_offset))
    path = tmp_path / "sae.keras"
    sae.save(path)
    loaded = keras.saving.load_model(path)
    for name in ("bias_offset", "fire_rate"):
        np.testing.assert_array_equal(npy(getattr(loaded, name)), npy(getattr(sae, name)))
    np.testing.assert_allclose(loaded.codes(x), sae.codes(x), rtol=1e-6)


def test_resampling_restarts_a_resampled_neurons_offset_and_rate():
    x = data(64)
    sae = planted(x, dead_steps=1)
    offset, rate, idle = np.full(M, 0.3, np.float32), np.full(M, 0.01, np.float32), np.zeros(M, np.float32)
    idle[DEAD] = 5.0
    sae.bias_offset.assign(offset)
    sae.fire_rate.assign(rate)
    sae.idle_steps.assign(idle)
    assert list(resample_dead_neurons(sae, x, np.random.RandomState(0))) == [DEAD]
    offset[DEAD], rate[DEAD] = 0.0, FLOOR
    np.testing.assert_array_equal(npy(sae.bias_offset), offset)
    np.testing.assert_allclose(npy(sae.fire_rate), rate)


def test_settings_are_checked():
    cfg = config_mod.validate({"sae": {"remedies": {"bias_floor": 0.001, "bias_step": 0.002, "bias_window": 50}}})
    sae = SparseAutoencoder.from_settings(cfg.sae, input_dim=8, seed=0)
    assert (sae.bias_floor, sae.bias_step, sae.bias_window) == (0.001, 0.002, 50)
    assert sae.bias_offset is not None
    default = config_mod.validate({}).sae.remedies
    assert (default.bias_floor, default.bias_step, default.bias_window) == (0.0, 1e-3, 100)
    assert SparseAutoencoder.from_settings(config_mod.validate({}).sae, input_dim=8, seed=0).bias_offset is None
    from collapse_tui.engine.sae_phase import remedy_names

    assert remedy_names(cfg) == ["bias floor 0.001"]
    for bad in ({"bias_floor": 1.0}, {"bias_floor": -0.1}, {"bias_step": 0.0}, {"bias_window": 0}):
        with pytest.raises(config_mod.ConfigError, match=f"sae.remedies.{next(iter(bad))}"):
            config_mod.validate({"sae": {"remedies": bad}})
    # At or above the neurons' mean firing frequency (L0 / n_neurons) some neuron is always below the floor.
    for sae_settings in ({"k": 4, "n_neurons": 100}, {"method": "l1", "target_l0": 4, "n_neurons": 100},
                         {"k": 8, "n_neurons": 100, "schedule": {"kind": "linear", "start": 4, "epochs": 2}}):
        with pytest.raises(config_mod.ConfigError, match="bias_floor: 0.04 is not below the neurons' mean firing"):
            config_mod.validate({"sae": {**sae_settings, "remedies": {"bias_floor": 0.04}}})
    assert config_mod.validate({"sae": {"k": 4, "n_neurons": 100, "remedies": {"bias_floor": 0.039}}})
    for bad in ({"bias_floor": 1.5}, {"bias_step": 0.0}, {"bias_window": 2.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SparseAutoencoder(4, n_neurons=6, k=2, **bad)
