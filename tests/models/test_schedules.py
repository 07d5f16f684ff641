"""Sparsity schedules (known values of every kind) and the callback that applies them during fit."""

import math

import keras
import numpy as np
import pytest

from collapse_tui import config as config_mod
from collapse_tui.nn import SparseAutoencoder, SparsitySchedule, SparsityScheduler

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def test_constant_is_the_end_value_at_every_epoch():
    s = SparsitySchedule("constant", start=500, end=50, epochs=10)
    assert [s.value(e) for e in (0, 5, 9, 30)] == [50.0, 50.0, 50.0, 50.0]


def test_linear_values():
    assert SparsitySchedule("linear", 10, 2, 5).values() == [10.0, 8.0, 6.0, 4.0, 2.0]
    assert SparsitySchedule("linear", 2, 10, 3).values(5) == [2.0, 6.0, 10.0, 10.0, 10.0]


def test_cosine_values():
    values = SparsitySchedule("cosine", 10, 2, 5).values()
    expected = [10.0, 2 + 4 * (1 + math.sqrt(0.5)), 6.0, 2 + 4 * (1 - math.sqrt(0.5)), 2.0]
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_exponential_is_geometric():
    assert SparsitySchedule("exponential", 16, 1, 5).values() == pytest.approx([16, 8, 4, 2, 1], rel=1e-12)
    values = SparsitySchedule("exponential", 1e-4, 1e-2, 3).values()
    assert values == pytest.approx([1e-4, 1e-3, 1e-2], rel=1e-12)


def test_integer_schedule_rounds_half_up_and_returns_ints():
    values = SparsitySchedule("linear", 1, 2, 3, integer=True).values()
    assert values == [1, 2, 2] and all(type(v) is int for v in values)  # 1.5 rounds up
    assert SparsitySchedule("linear", 10, 1, 4, integer=True).values() == [10, 7, 4, 1]


def test_the_papers_schedule_goes_from_500_to_50_over_50_epochs():
    s = SparsitySchedule("linear", start=500, end=50, epochs=50, integer=True)
    values = s.values()
    assert len(values) == 50 and values[0] == 500 and values[-1] == 50
    assert values[1] == 491  # 500 - 450 / 49 = 490.82
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert s.value(60) == 50


def test_a_delay_holds_the_start_then_moves_as_without_it():
    late = SparsitySchedule("linear", 10, 1, 4, integer=True, delay=3)
    assert late.values() == [10, 10, 10, 10, 7, 4, 1]  # delay + epochs values by default
    assert late.values(9)[-2:] == [1, 1]
    on_time = SparsitySchedule("linear", 10, 1, 4, integer=True)
    assert [late.value(e + 3) for e in range(6)] == [on_time.value(e) for e in range(6)]
    assert SparsitySchedule("constant", 10, 1, 4, delay=3).value(0) == 1.0  # a constant schedule has no start
    copy = SparsitySchedule.from_config(late.get_config())
    assert copy.values() == late.values() and "delay=3" in repr(copy)
    settings = config_mod.validate({"sae": {"epochs": 12, "schedule": {"kind": "linear", "start": 200, "epochs": 4,
                                                                       "delay": 5}}}).sae
    assert SparsitySchedule.from_settings(settings).values() == [200] * 6 + [150, 100, 50]


@pytest.mark.parametrize("epochs", [0, 1])
def test_one_epoch_or_fewer_means_the_end_value(epochs):
    for kind in ("linear", "cosine", "exponential"):
        assert SparsitySchedule(kind, 8, 2, epochs).value(0) == 2.0


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "step"}, "kind must be one of constant, linear, cosine, exponential"),
    ({"kind": "exponential", "start": 0.0}, "start must be > 0 for an exponential"),
    ({"kind": "exponential", "end": 0.0}, "end must be > 0 for an exponential"),
    ({"start": -1.0}, "start must be >= 0"),
    ({"end": float("nan")}, "end must be a finite number"),
    ({"start": "5"}, "start must be a finite number"),
    ({"epochs": -1}, "epochs must be a whole number >= 0"),
    ({"epochs": 2.5}, "epochs must be a whole number >= 0"),
    ({"integer": True, "end": 0.4}, "end must be >= 1"),
])
def test_bad_schedules_are_rejected(kwargs, message):
    args = {"kind": "linear", "start": 4.0, "end": 2.0, "epochs": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        SparsitySchedule(**args)


def test_bad_epochs_are_rejected():
    s = SparsitySchedule("linear", 4, 2, 3)
    with pytest.raises(ValueError, match="epoch must be a whole number >= 0"):
        s.value(-1)
    with pytest.raises(ValueError, match="n_epochs"):
        s.values(-2)


def test_schedule_config_round_trip():
    s = SparsitySchedule("cosine", 100, 10, 7, integer=True)
    clone = SparsitySchedule.from_config(s.get_config())
    assert clone.values() == s.values() and clone.get_config() == s.get_config()
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert isinstance(revived, SparsitySchedule) and revived.values() == s.values()
    assert SparsityScheduler.from_config(SparsityScheduler(s).get_config()).schedule.values() == s.values()


@pytest.mark.parametrize("sae_settings, expected", [
    # k methods: whole numbers, from schedule.start to sae.k.
    ({"method": "topk", "k": 8, "schedule": {"kind": "linear", "start": 20, "epochs": 3}},
     SparsitySchedule("linear", 20, 8, 3, integer=True)),
    ({"method": "batchtopk", "k": 6, "schedule": {"kind": "cosine", "start": 12, "epochs": 4}},
     SparsitySchedule("cosine", 12, 6, 4, integer=True)),
    # Penalty methods: from schedule.start to sae.l1_coefficient.
    ({"method": "l1", "l1_coefficient": 0.01, "schedule": {"kind": "exponential", "start": 0.5, "epochs": 4}},
     SparsitySchedule("exponential", 0.5, 0.01, 4)),
    # No start: the final value from the first epoch on, whatever the kind.
    ({"method": "jumprelu", "l1_coefficient": 0.02, "schedule": {"kind": "linear", "epochs": 5}},
     SparsitySchedule("linear", 0.02, 0.02, 5)),
    ({"method": "topk", "k": 7}, SparsitySchedule("constant", 7, 7, 1, integer=True)),
])
def test_schedule_from_settings(sae_settings, expected):
    settings = config_mod.validate({"sae": {"n_neurons": 24, **sae_settings}}).sae
    schedule = SparsitySchedule.from_settings(settings)
    assert schedule.get_config() == expected.get_config()
    assert schedule.values(6) == expected.values(6)


class _Seen(keras.callbacks.Callback):
    """Records what a later callback sees: the logged value and the model's sparsity at epoch start."""

    def __init__(self):
        super().__init__()
        self.logged, self.at_begin = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.at_begin.append(self.model.sparsity)

    def on_epoch_end(self, epoch, logs=None):
        self.logged.append(logs["sparsity"])


def test_scheduler_sets_the_value_each_epoch_and_logs_it():
    x = np.random.RandomState(0).normal(size=(16, 6)).astype("float32")
    sae = SparseAutoencoder(6, n_neurons=10, method="l1", l1_coefficient=1.0, seed=0)
    sae.compile(optimizer=keras.optimizers.Adam(1e-3))
    seen = _Seen()
    schedule = SparsitySchedule("exponential", 1e-1, 1e-3, 3)
    history = sae.fit(x, epochs=4, batch_size=8, verbose=0, callbacks=[SparsityScheduler(schedule), seen])
    expected = pytest.approx([1e-1, 1e-2, 1e-3, 1e-3], rel=1e-9)
    assert seen.at_begin == expected and seen.logged == expected
    assert history.history["sparsity"] == expected
    assert sae.sparsity == pytest.approx(1e-3)


def test_scheduler_needs_a_model_with_set_sparsity():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="needs a model with set_sparsity"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=1, verbose=0,
                  callbacks=[SparsityScheduler(SparsitySchedule("linear", 2, 1, 2))])
    with pytest.raises(ValueError, match="schedule must be a SparsitySchedule"):
        SparsityScheduler({"kind": "linear"})
