"""Feature survival has a size bound: above SURVIVAL_MAX_LIVE live neurons on a side it is not computed (no
live x live matrix, no matching), and the evaluation and the results' section say so, never report 0. The
bound is patched down to a few neurons here instead of building dictionaries of thousands."""

import json
import tracemalloc

import numpy as np
import pytest

from collapse_tui.engine.stability import StabilityMarks
from collapse_tui.metrics import stability
from collapse_tui.metrics.stability import SurvivalTooLarge, feature_survival
from collapse_tui.report.rows import Row
from collapse_tui.report.stability import seed_survival
from collapse_tui.report.tables import stability_markdown
from collapse_tui.store import DecoderMarks, write_decoders


def unit_rows(m, d, seed=0):
    w = np.random.default_rng(seed).normal(size=(m, d))
    return w / np.linalg.norm(w, axis=1, keepdims=True)


@pytest.fixture
def bound_of_4(monkeypatch):
    monkeypatch.setattr(stability, "SURVIVAL_MAX_LIVE", 4)


def test_the_bound_counts_live_neurons_with_a_direction(bound_of_4):
    w = unit_rows(6, 8)
    four = np.array([True, True, False, True, True, False])
    s = feature_survival(w, w[::-1], reference_alive=four, later_alive=four[::-1])  # 4 live a side: computed
    assert s.share_matched == pytest.approx(1.0) and s.n_matched == 4
    zero = w.copy()
    zero[:2] = 0.0  # 6 considered, but the two without a direction take no part in the matching
    assert feature_survival(zero, w[:4]).n_reference == 6
    with pytest.raises(SurvivalTooLarge, match=r"above 4 live neurons on a side \(4 and 5 here\)"):
        feature_survival(w[:4], w[:5])  # the later side alone over it is enough


def test_above_the_bound_nothing_of_the_matrix_size_is_allocated(monkeypatch):
    monkeypatch.setattr(stability, "SURVIVAL_MAX_LIVE", 100)
    ref, later = unit_rows(3000, 4, seed=1), unit_rows(3000, 4, seed=2)  # a matrix would be 72 MB
    tracemalloc.start()
    try:
        with pytest.raises(SurvivalTooLarge):
            feature_survival(ref, later)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000  # the rows normalised (about 100 kB a side), nothing quadratic


def test_the_tall_and_wide_matchings_agree():
    # More reference rows than later ones is solved with the later side as the matrix's rows: the same
    # pairs as the other way round, listed by reference row.
    ref, later = unit_rows(5, 6, seed=3), unit_rows(5, 6, seed=3)[[3, 0, 4]] * 2.0
    tall, wide = feature_survival(ref, later), feature_survival(later, ref)
    assert tall.pairs.tolist() == [[0, 1], [3, 0], [4, 2]]
    assert sorted(tall.pairs[:, ::-1].tolist()) == wide.pairs.tolist()
    np.testing.assert_allclose(tall.cosine, 1.0)
    assert tall.best_cosine.shape == (5,) and wide.best_cosine.shape == (3,)


def test_an_evaluation_above_the_bound_reads_none_and_says_why_once(tmp_path, bound_of_4):
    w = unit_rows(6, 16)
    acts = np.abs(np.random.default_rng(1).normal(size=(50, 6)))
    said = []
    tracker = StabilityMarks(tmp_path, say=said.append)
    assert tracker.measure(1, 10, w, acts) == {}
    for epoch in (2, 3):
        metrics = tracker.measure(epoch, 10 * epoch, w[::-1].copy(), acts[:, ::-1].copy())
        assert metrics["survival"] is None and metrics["survival_cosine"] is None  # not 0: not computed
        assert metrics["cka_first"] == pytest.approx(1.0, abs=1e-3)  # CKA costs the inputs', not neurons' square
    assert len(said) == 1 and "not computed above 4 live neurons" in said[0] and "left empty (not 0)" in said[0]


def run_with(tmp_path, name, decoder):
    run_dir = tmp_path / name
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"status": "ok", "vae_model": "models/vae-shared.keras",
                                                       "source": "encoder_hidden", "data": {"fingerprint": "f"}}))
    alive = np.ones(len(decoder), bool)
    write_decoders(run_dir, DecoderMarks(np.array([1, 5]), np.array([10, 50]),
                                         np.stack([decoder, decoder]).astype(np.float16), np.stack([alive, alive]),
                                         np.ones((3, len(decoder)), np.float16)))
    return run_dir


def test_the_results_say_survival_was_not_computed_for_large_dictionaries(tmp_path, bound_of_4):
    w = unit_rows(6, 16)
    a, b = run_with(tmp_path, "a", w), run_with(tmp_path, "b", w[::-1])
    row = Row("dsprites", "topk", "none", 50.0, seeds=[0, 1], finals=[{"survival": None}, {"survival": None}],
              run_ids=["a", "b"], run_dirs=[a, b])
    across = seed_survival(row)
    assert across.share is None and across.pairs == 0 and across.too_large == 1
    text = stability_markdown([row])
    assert "| – | n/a (over 4 live neurons) | 0 |" in text
    assert "not computed for a dictionary of more than 4 live neurons" in text
