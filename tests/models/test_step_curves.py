"""The per-step curves: progress events carry each metric's mean over the steps since the last, and
the run state draws them where they are finer than the epochs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from collapse_tui import events as ev
from collapse_tui.engine.callbacks import EventCallback, IntervalMeans
from collapse_tui.tui.state import RunState

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def test_interval_means_are_the_means_between_two_reads_of_the_running_means():
    means = IntervalMeans()
    # Step losses 1, 3 | 5, 7, 9: running means 2 after 2 steps and 5 after 5.
    assert means.update(0, 2, {"loss": np.float32(2.0)})["loss"] == pytest.approx(2.0)
    assert means.update(0, 5, {"loss": np.float32(5.0)})["loss"] == pytest.approx((5 + 7 + 9) / 3)
    assert means.update(0, 5, {"loss": np.float32(5.0)}) == {}  # no step since
    # A new epoch starts its running means afresh; per-member vectors work alike.
    out = means.update(1, 4, {"loss": np.array([1.0, 2.0])})
    np.testing.assert_allclose(out["loss"], [1.0, 2.0])


def test_a_progress_event_carries_the_loss_of_the_steps_since_the_last(tmp_path):
    # Learning rate 0: the weights never move, so each step's loss is known before training.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    pred = keras.ops.convert_to_numpy(model(x))
    batch_losses = ((pred - y) ** 2).reshape(4, 2).mean(axis=1)  # batches of 2, in order
    events = []
    callback = EventCallback("vae", events.append, epochs=2, steps_per_epoch=4, interval=0.0)
    model.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0, callbacks=[callback])
    steps = [e for e in events if isinstance(e, ev.Progress) and e.logs]
    # Before steps 1, 2 and 3 of each epoch: the loss of the step just before; at the epoch's end, its
    # last step's.
    assert [e.done for e in steps] == [1, 2, 3, 4, 5, 6, 7, 8]
    np.testing.assert_allclose([e.logs["loss"] for e in steps], [*batch_losses] * 2, rtol=1e-5)
    # That last point comes before the epoch's own event.
    kinds = [type(e).__name__ for e in events if isinstance(e, (ev.Progress, ev.EpochEnd))]
    assert kinds[kinds.index("EpochEnd") - 1] == "Progress"


def test_the_run_state_draws_step_points_where_they_are_finer_than_the_epochs():
    state = RunState()
    state.apply(ev.PhaseStarted(phase="sae", epochs=2, steps_per_epoch=10))
    for done, loss in ((3, 0.9), (6, 0.7), (9, 0.6)):
        state.apply(ev.Progress(phase="sae", done=done, total=20, epoch=1, logs={"loss": loss, "l0": 5.0}))
    state.apply(ev.EpochEnd(phase="sae", epoch=1, epochs=2, logs={"loss": 0.7, "reconstruction": 0.7}, seconds=1.0))
    curves = state.loss_curves("sae")
    assert curves["loss"] == [(0.3, 0.9), (0.6, 0.7), (0.9, 0.6)]  # in epochs: done × epochs / total
    assert curves["reconstruction"] == [(1, 0.7)]  # no step points for it: per epoch
    assert "l0" not in curves
    # A progress event without step means (rendering, a short epoch) adds no point.
    state.apply(ev.Progress(phase="sae", done=12, total=20, epoch=2))
    assert len(state.loss_curves("sae")["loss"]) == 3
