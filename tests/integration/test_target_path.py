"""A penalised run trained to a target L0 along a schedule: the engine hands the bank each epoch's target
from the schedule, and measures the plateau from where the target has reached its end."""

import pytest

from collapse_tui import events as ev
from collapse_tui.config import validate
from collapse_tui.engine.runner import Engine
from collapse_tui.nn.sae_bank import SAEBank
from tests.helpers import tiny_config

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def test_the_target_follows_the_schedule_epoch_by_epoch(tmp_path, monkeypatch):
    given = []
    original = SAEBank.set_target_l0s

    def recording(self, values):
        given.append(list(values))
        return original(self, values)

    monkeypatch.setattr(SAEBank, "set_target_l0s", recording)
    config = validate(tiny_config(tmp_path, sae={"method": "l1", "l1_coefficient": 1e-3, "target_l0": 4, "epochs": 4,
                                                 "schedule": {"kind": "linear", "start": 12, "epochs": 3}}))
    events = []
    result = Engine().run(config, [events.append])
    assert result.status == "ok", result.summary.get("reason")
    assert given == [[12.0], [8.0], [4.0], [4.0]]
    evals = [e.metrics for e in events if isinstance(e, ev.Evaluation) and e.phase == "sae"]
    # The coefficient is the controller's (it moved from its start); the first epoch, at target 12, is the
    # dense stage the final one is set against, and the slope is fitted from the marks at the final target.
    assert evals[-1]["sparsity"] != pytest.approx(1e-3)
    final = result.summary["final"]
    assert final["dead_before_sparsification"] == evals[0]["dead_fraction"]
    assert final["dead_slope_marks"] == 2  # updates 9 and 12 (the target reached 4 for epoch 3)
