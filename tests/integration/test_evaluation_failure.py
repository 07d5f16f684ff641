"""A run whose evaluation fails after an epoch keeps what it trained: the epoch's checkpoint is on disk before
the evaluation starts, so the run ends failed with it kept, and ``--resume`` redoes only that evaluation (no
SAE epoch again) and reaches the result of a run never interrupted."""

from __future__ import annotations

import pytest

from collapse_tui import store
from collapse_tui.config import validate
from collapse_tui.engine import evaluation, sae_phase
from collapse_tui.engine.checkpoint import CHECKPOINT_FILE, read_checkpoint
from collapse_tui.engine.runner import Engine, run
from collapse_tui.events import EpochEnd, Evaluation, RunResumed
from tests.helpers import tiny_config

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

COMPARED = ("dead_fraction", "l0", "explained_variance", "mse", "mig", "specialized", "survival", "cka_first",
            "dead_change_last_20pct", "dead_before_sparsification")
RTOL = 1e-5  # a resumed run repeats the arithmetic; this absorbs a last-bit difference from reloading weights

CONFIGS = {
    # One epoch: before, a failed final evaluation left nothing of the training on disk.
    "one epoch": {"epochs": 1},
    # Three epochs: a schedule over two (a mark after epoch 1, before sparsification), evaluations every two
    # epochs and a resampling after epoch 2 (its random state and count must survive the checkpoint).
    "three epochs": {"epochs": 3, "schedule": {"kind": "linear", "start": 12, "epochs": 2},
                     "remedies": {"resample_epochs": [2]}},
}


def config(tmp_path, name):
    return validate(tiny_config(tmp_path, sae=CONFIGS[name], eval={"every": 2}))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final summary of each config's run, never interrupted (computed once per config)."""
    done = {}

    def summary(name):
        if name not in done:
            result = run(config(tmp_path_factory.mktemp("uninterrupted"), name))
            assert result.status == "ok"
            done[name] = result.summary
        return done[name]

    return summary


def same_results(a: dict, b: dict) -> None:
    for key in COMPARED:
        if a.get(key) is None:  # not measured by this config: not by the resumed run either
            assert b.get(key) is None, key
        else:
            assert b.get(key) == pytest.approx(a.get(key), rel=RTOL, abs=1e-9), key


def after_resume(run_dir):
    """The events the resumed process wrote."""
    events = list(store.iter_events(run_dir))
    last = max(i for i, e in enumerate(events) if isinstance(e, RunResumed))
    return events[last + 1:]


def sae_epochs_trained(events) -> list[int]:
    return [e.epoch for e in events if isinstance(e, EpochEnd) and e.phase == "sae"]


def sae_evaluations(events) -> list[int]:
    return [e.epoch for e in events if isinstance(e, Evaluation) and e.phase == "sae"]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_failed_final_evaluation_keeps_the_trained_sae_and_resumes_to_the_same_result(
        tmp_path, monkeypatch, uninterrupted, name):
    evaluate = evaluation.evaluate_sae

    def out_of_memory_at_the_end(*args, **kwargs):
        if kwargs.get("final"):
            raise MemoryError("the final evaluation ran out of memory")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_sae", out_of_memory_at_the_end)
    cfg = config(tmp_path, name)
    failed = Engine().run(cfg)
    monkeypatch.undo()
    total = cfg.sae.epochs
    assert failed.status == "failed" and "ran out of memory" in failed.summary["reason"]
    assert read_checkpoint(failed.run_dir).epoch == total  # the last epoch's training, kept

    (resumed,) = Engine().resume([failed.run_dir])
    assert resumed.status == "ok" and resumed.summary["sae_epochs"] == total
    same_results(uninterrupted(name)["final"], resumed.summary["final"])
    events = after_resume(failed.run_dir)
    assert sae_epochs_trained(events) == []  # only the final evaluation was done again
    assert sae_evaluations(events) == [total]
    assert (failed.run_dir / store.SAE_FILE).exists() and not (failed.run_dir / CHECKPOINT_FILE).exists()


def test_a_failed_evaluation_between_epochs_resumes_from_that_epoch(tmp_path, monkeypatch, uninterrupted):
    evaluate = sae_phase.SAEPhase.evaluate

    def failing_after_epoch_2(self, epoch, final=False, outputs=None):
        if epoch == 2 and not final:
            raise MemoryError("the evaluation after epoch 2 ran out of memory")
        return evaluate(self, epoch, final=final, outputs=outputs)

    monkeypatch.setattr(sae_phase.SAEPhase, "evaluate", failing_after_epoch_2)
    failed = Engine().run(config(tmp_path, "three epochs"))
    monkeypatch.undo()
    assert failed.status == "failed" and "after epoch 2 ran out of memory" in failed.summary["reason"]
    assert read_checkpoint(failed.run_dir).epoch == 2  # written before the evaluation that failed

    (resumed,) = Engine().resume([failed.run_dir])
    assert resumed.status == "ok" and resumed.summary["sae_epochs"] == 3
    same_results(uninterrupted("three epochs")["final"], resumed.summary["final"])
    events = after_resume(failed.run_dir)
    assert sae_epochs_trained(events) == [3]  # epoch 2's evaluation again, then only epoch 3 trained
    assert sae_evaluations(events) == [2, 3]
