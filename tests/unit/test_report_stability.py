"""The results' feature-survival section: within-run survival over the seeds, and the cross-seed baseline
read from each run's decoder marks (a damaged file is named, never fatal), between seeds that read the same
inputs only."""

import json

import numpy as np
import pytest

from collapse_tui.report.rows import Row
from collapse_tui.report.stability import seed_survival
from collapse_tui.report.tables import stability_markdown
from collapse_tui.store import DECODERS_FILE, DecoderMarks, write_decoders


def unit_rows(m, d, seed):
    w = np.random.default_rng(seed).normal(size=(m, d))
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def run_with(tmp_path, name, final_decoder, alive, vae="models/vae-shared.keras"):
    run_dir = tmp_path / name
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"status": "ok", "vae_model": vae, "source": "encoder_hidden",
                                                       "data": {"fingerprint": "dsprites-procedural-v2"}}))
    first = unit_rows(*final_decoder.shape, seed=99)
    write_decoders(run_dir, DecoderMarks(np.array([1, 5]), np.array([10, 50]),
                                         np.stack([first, final_decoder]).astype(np.float16),
                                         np.stack([alive, alive]), np.ones((3, final_decoder.shape[0]), np.float16)))
    return run_dir


def row_of(run_dirs, survivals):
    return Row("dsprites", "topk", "none", 50.0, seeds=list(range(len(run_dirs))),
               finals=[{"survival": s} for s in survivals], run_ids=[d.name for d in run_dirs],
               run_dirs=list(run_dirs))


def test_seed_pairs_are_matched_and_damage_is_named(tmp_path):
    w = unit_rows(6, 16, seed=0)
    alive = np.array([True] * 5 + [False])
    a = run_with(tmp_path, "a", w, alive)
    b = run_with(tmp_path, "b", w[::-1], alive[::-1])  # the same live features, in another order
    c = run_with(tmp_path, "c", unit_rows(6, 16, seed=1), alive)  # unrelated directions
    same = seed_survival(row_of([a, b], [0.5, 0.7]))
    assert same.share == pytest.approx(1.0) and same.pairs == 1
    mixed = seed_survival(row_of([a, b, c], [0.5, 0.7, 0.6]))
    # Pairs (a,b) share all 5, (a,c) and (b,c) none at cosine 0.7 in 16 dimensions: mean 1/3.
    assert mixed.pairs == 3 and mixed.share == pytest.approx(1 / 3)
    (c / DECODERS_FILE).write_bytes(b"PK\x03\x04 damaged")
    damaged = seed_survival(row_of([a, b, c], [0.5, 0.7, 0.6]))
    assert damaged.pairs == 1 and damaged.share == pytest.approx(1.0)
    assert len(damaged.unreadable) == 1 and "unreadable decoder marks" in damaged.unreadable[0]
    text = stability_markdown([row_of([a, b, c], [0.5, 0.7, 0.6])])
    assert "| dsprites | topk | none | k=50 | 60.0 ± 10.0 | 100.0 | 1 |" in text
    assert "unreadable decoder marks" in text


def test_no_section_without_survival():
    plain = Row("dsprites", "topk", "none", 50.0, seeds=[0], finals=[{"dead_fraction": 0.2}])
    assert stability_markdown([plain]) == "" and stability_markdown([]) == ""


def test_seeds_that_read_different_inputs_are_not_matched(tmp_path):
    """Each seed's own VAE: two unrelated input spaces, so the baseline is n/a, never a share of 0."""
    w = unit_rows(6, 16, seed=0)
    alive = np.ones(6, bool)
    a = run_with(tmp_path, "a", w, alive, vae="models/vae-seed0.keras")
    b = run_with(tmp_path, "b", w, alive, vae="models/vae-seed1.keras")  # identical directions, other inputs
    own = seed_survival(row_of([a, b], [0.5, 0.7]))
    assert own.share is None and own.pairs == 0 and own.other_inputs == 1
    assert "| 60.0 ± 14.1 | n/a (inputs differ) | 0 |" in stability_markdown([row_of([a, b], [0.5, 0.7])])
    c = run_with(tmp_path, "c", w[::-1], alive, vae="models/vae-seed0.keras")  # shares a's VAE
    mixed = seed_survival(row_of([a, b, c], [0.5, 0.7, 0.6]))
    assert mixed.pairs == 1 and mixed.other_inputs == 2 and mixed.share == pytest.approx(1.0)
    (c / "summary.json").write_text("{torn")  # an unreadable summary pairs with nothing
    assert seed_survival(row_of([a, c], [0.5, 0.6])).share is None
    # "memory" (what a run that reused its VAE in memory once recorded) names no VAE: it pairs with nothing.
    d = run_with(tmp_path, "d", w, alive, vae="memory")
    e = run_with(tmp_path, "e", w, alive, vae="memory")
    assert seed_survival(row_of([d, e], [0.5, 0.6])).share is None
    # The file's name is the VAE's key: the same VAE under two models directories is one input.
    f = run_with(tmp_path, "f", w, alive, vae="/elsewhere/models/vae-seed0.keras")
    assert seed_survival(row_of([a, f], [0.5, 0.6])).share == pytest.approx(1.0)
