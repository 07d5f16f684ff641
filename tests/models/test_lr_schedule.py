"""The SAE's learning-rate schedule: values by hand at chosen updates, its settings, and a bank that
trains under it (the optimiser's rate after each epoch is the schedule's at its step count)."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui import config as config_mod
from collapse_tui.nn import SparseAutoencoder
from collapse_tui.nn.lr_schedule import WarmupDecay, decay_start_epoch
from collapse_tui.nn.sae_bank import SAEBank

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def rate(schedule, step):
    return float(ops.convert_to_numpy(schedule(step)))


def test_warm_up_then_constant_then_cosine_decay_by_hand():
    s = WarmupDecay(0.01, warmup_steps=4, decay="cosine", decay_start=10, total_steps=20, final_fraction=0.1)
    assert rate(s, 0) == pytest.approx(0.0025) and rate(s, 3) == pytest.approx(0.01)  # (step + 1) / 4
    assert rate(s, 9) == pytest.approx(0.01) and rate(s, 10) == pytest.approx(0.01)
    # Halfway through the decay (t = 1/2): f + (1 - f)/2 = 0.55 of the rate; at the end f.
    assert rate(s, 15) == pytest.approx(0.01 * 0.55, rel=1e-6)
    assert rate(s, 12) == pytest.approx(0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.2))), rel=1e-6)
    assert rate(s, 20) == pytest.approx(0.001, rel=1e-6) and rate(s, 25) == pytest.approx(0.001, rel=1e-6)


def test_linear_decay_and_no_schedule():
    s = WarmupDecay(1.0, decay="linear", decay_start=0, total_steps=8, final_fraction=0.0)
    assert [round(rate(s, i), 6) for i in (0, 2, 4, 8)] == [1.0, 0.75, 0.5, 0.0]
    assert not s.is_constant and WarmupDecay(1.0).is_constant
    assert WarmupDecay(1.0, decay="cosine", decay_start=8, total_steps=8).is_constant  # starts at the end
    clone = WarmupDecay(**s.get_config())
    assert clone.get_config() == s.get_config()
    with pytest.raises(ValueError, match="decay must be one of"):
        WarmupDecay(1.0, decay="step")


def test_the_decay_starts_where_the_sparsity_schedule_ends_unless_told():
    settings = config_mod.validate({"sae": {"epochs": 10, "lr_schedule": {"decay": "cosine"},
                                            "schedule": {"kind": "linear", "start": 200, "epochs": 4}}}).sae
    assert decay_start_epoch(settings) == 4
    s = WarmupDecay.from_settings(settings, steps_per_epoch=5, total_epochs=10)
    assert (s.decay_start, s.total_steps, s.decay) == (20, 50, "cosine")
    told = settings.model_copy(update={"lr_schedule": settings.lr_schedule.model_copy(update={"decay_start_epoch": 7})})
    assert decay_start_epoch(told) == 7
    late = settings.model_copy(update={"schedule": settings.schedule.model_copy(update={"delay": 3})})
    assert decay_start_epoch(late) == 7  # a later sparsity schedule ends later
    constant = config_mod.validate({"sae": {"lr_schedule": {"decay": "linear"}}}).sae
    assert decay_start_epoch(constant) == 0


def test_a_bank_trains_on_the_schedule_and_adam_beta1_is_set():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    member = SparseAutoencoder(6, n_neurons=12, method="topk", k=3, seed=1)
    member.adapt(x)
    bank = SAEBank([member], [x])
    schedule = WarmupDecay(1e-2, warmup_steps=6, decay="linear", decay_start=8, total_steps=16)
    bank.compile(optimizer=keras.optimizers.Adam(schedule, beta_1=0.0))
    seen = []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((int(ops.convert_to_numpy(bank.optimizer.iterations)),
                                                      float(ops.convert_to_numpy(bank.optimizer.learning_rate)))))
    bank.fit(np.arange(64), epochs=2, batch_size=8, shuffle=False, verbose=0, callbacks=[callback])
    # 8 updates an epoch: the rate the optimiser reports is the schedule's at its step count.
    assert [step for step, _ in seen] == [8, 16]
    for step, value in seen:
        assert value == pytest.approx(rate(schedule, step), rel=1e-6)
    assert seen[-1][1] == pytest.approx(0.0, abs=1e-9)
    assert float(bank.optimizer.beta_1) == 0.0
