"""The target-L0 controller (L1 and JumpReLU at a chosen L0): its step by hand, a bank and a lone SAE
whose L0 it brings near the target from a coefficient far too small, and its settings."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui import config as config_mod
from collapse_tui.nn import SparseAutoencoder
from collapse_tui.nn.methods.common import controlled_coefficient
from collapse_tui.nn.sae_bank import SAEBank

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def npy(x):
    return ops.convert_to_numpy(x)


def test_one_step_by_hand():
    out = npy(controlled_coefficient(ops.convert_to_tensor(np.array([2.0, 2.0, 2.0, 2.0], np.float32)),
                                     ops.convert_to_tensor(np.array([75.0, 200.0, 10.0, 99.0], np.float32)),
                                     ops.convert_to_tensor(np.array([50.0, 50.0, 50.0, 0.0], np.float32)), 0.1))
    # Relative errors +0.5, +3 (clipped to 1), -0.8; no target: unchanged.
    np.testing.assert_allclose(out, [2 * math.exp(0.05), 2 * math.exp(0.1), 2 * math.exp(-0.08), 2.0], rtol=1e-6)


def data(n=256, d=8, seed=0):
    rng = np.random.default_rng(seed)
    return (np.abs(rng.normal(size=(n, d))) + 0.1).astype("float32")


def bank_of(method, start, gain, x, **kwargs):
    kwargs = dict(n_neurons=16, method=method, l1_coefficient=start, seed=3, **kwargs)
    controlled = SparseAutoencoder(8, target_l0=4, target_l0_gain=gain, **kwargs)
    free = SparseAutoencoder(8, **kwargs)
    for sae in (controlled, free):
        sae.adapt(x)
    bank = SAEBank([controlled, free], [x, x])
    bank.compile(optimizer=keras.optimizers.Adam(1e-2))
    return bank, controlled


def test_an_l1_bank_member_reaches_its_target_and_the_other_keeps_its_coefficient():
    x = data()
    bank, controlled = bank_of("l1", 0.05, 0.1, x)
    history = bank.fit(np.arange(len(x)), epochs=16, batch_size=32, shuffle=False, verbose=0)
    l0 = np.asarray(history.history["l0"])  # (epochs, members): the epoch's mean batch L0
    reached, kept = bank.sparsities
    assert reached > 0.05 * 5 and kept == pytest.approx(0.05)
    assert l0[0, 0] > 6 and abs(l0[-1, 0] - 4) < 1.5, l0[:, 0]  # brought down to about 4
    assert l0[-1, 1] > 6  # the free member stays dense
    # Copied out, the member carries the coefficient it reached.
    assert bank.write_member(0, controlled).sparsity == pytest.approx(reached, rel=1e-6)


def test_a_jumprelu_bank_member_has_its_coefficient_raised_while_above_target():
    # JumpReLU's L0 follows its penalty slowly (Adam moves each threshold by about the learning rate per
    # step, whatever the penalty), so over a few epochs the controller can only be seen raising it.
    x = data()
    bank, _ = bank_of("jumprelu", 1e-3, 0.1, x, jumprelu_threshold=0.1, jumprelu_bandwidth=0.5)
    seen = []
    for _ in range(4):
        history = bank.fit(np.arange(len(x)), epochs=1, batch_size=32, shuffle=False, verbose=0)
        seen.append((np.asarray(history.history["l0"])[-1], bank.sparsities))
    assert all(l0[0] > 4 for l0, _ in seen)
    raised = [s[0] for _, s in seen]
    assert raised == sorted(raised) and raised[-1] > 1e-3 * math.exp(0.1 * 8)  # at least 8 steps' worth
    assert all(s[1] == pytest.approx(1e-3) for _, s in seen)


def test_a_lone_sae_moves_its_coefficient_too():
    x = data()
    sae = SparseAutoencoder(8, n_neurons=16, method="l1", l1_coefficient=1e-4, target_l0=4, target_l0_gain=0.05,
                            seed=3)
    sae.adapt(x)
    sae.compile(optimizer=keras.optimizers.Adam(1e-2))
    sae.fit(x, epochs=4, batch_size=32, shuffle=False, verbose=0)
    # 32 updates, nearly all far above the target (the error clipped at 1): about exp(0.05 × 32) = 5 times.
    assert float(npy(sae.l1_regularizer.variable)) > 3e-4
    assert SparseAutoencoder.from_config(sae.get_config()).target_l0 == 4


def test_settings_are_checked():
    cfg = config_mod.validate({"sae": {"method": "l1", "target_l0": 50}})
    sae = SparseAutoencoder.from_settings(cfg.sae, input_dim=8, seed=0)
    assert (sae.target_l0, sae.target_l0_gain) == (50, 1e-3)
    for bad, message in (({"method": "topk", "target_l0": 50}, "sets its L0 by k"),
                         ({"method": "l1", "target_l0": 50, "schedule": {"kind": "linear", "start": 501,
                                                                        "epochs": 2}}, "first target L0"),
                         ({"method": "l1", "target_l0": 50, "schedule": {"kind": "linear", "start": 0.0,
                                                                        "epochs": 2}}, "first target L0"),
                         ({"method": "jumprelu", "target_l0": 600}, "exceeds sae.n_neurons")):
        with pytest.raises(config_mod.ConfigError, match=message):
            config_mod.validate({"sae": bad})


def test_a_schedule_moves_the_target_and_leaves_the_coefficient_to_the_controller():
    from collapse_tui.nn import SparsitySchedule

    settings = config_mod.validate({"sae": {"method": "l1", "l1_coefficient": 0.005, "target_l0": 50,
                                            "schedule": {"kind": "linear", "start": 500, "epochs": 10}}}).sae
    path = SparsitySchedule.target_path(settings)
    # Top-k's path from 500 to 50 over 10 epochs: 50 fewer each epoch, then 50 on.
    assert path.values(12) == [500.0 - 50 * e for e in range(10)] + [50.0, 50.0]
    assert SparsitySchedule.from_settings(settings).values(3) == [0.005] * 3  # the coefficient's start
    assert SparseAutoencoder.from_settings(settings, input_dim=8, seed=0).l1_coefficient == pytest.approx(0.005)
    fixed = config_mod.validate({"sae": {"method": "l1", "target_l0": 50}}).sae
    assert SparsitySchedule.target_path(fixed).values(2) == [50.0, 50.0]
    assert SparsitySchedule.target_path(config_mod.validate({"sae": {"method": "l1"}}).sae) is None


def test_a_bank_member_follows_its_target_as_it_moves():
    x = data()
    bank, _ = bank_of("l1", 0.05, 0.1, x)
    reached = []
    for target in (12, 4):
        bank.set_target_l0s([target, 9.0])  # the free member has no controller: its value is ignored
        history = bank.fit(np.arange(len(x)), epochs=12, batch_size=32, shuffle=False, verbose=0)
        l0 = np.asarray(history.history["l0"])
        reached.append(l0[-1, 0])
        assert bank.sparsities[1] == pytest.approx(0.05)
    assert abs(reached[0] - 12) < 2.5 and abs(reached[1] - 4) < 1.5, reached
    np.testing.assert_allclose(npy(bank.target_l0s), [4.0, 0.0])
    for bad in ([4.0], [0.0, 1.0], [17.0, 1.0]):
        with pytest.raises(ValueError, match="target L0"):
            bank.set_target_l0s(bad)
