"""Runs on activations read from a file (``data.dataset: activations``): no VAE; the file's rows split into
training and held-out rows from the run's seed; every metric that reads factors measured when the file
has them and absent (n/a) when it has none; a sweep killed mid-training resumes to the same result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collapse_tui import cli, store
from collapse_tui import events as ev
from collapse_tui.config import validate
from collapse_tui.data.activations import write_activations
from collapse_tui.engine.faults import FAULT_PHASE_ENV
from collapse_tui.engine.runner import Engine
from tests.helpers import tiny_config, write_config

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

ROOT = Path(__file__).resolve().parents[2]
FACTOR_METRICS = ("mig", "mig_sup", "specialized", "probe_acc", "probe_acc_input", "auroc_best",
                  "dci_ridge_disentanglement")


def planted(n: int = 300, seed: int = 0):
    """Activations (n × 24) that are a noisy linear image of three factors' one-hot codes (3, 4 and 5
    values), so a probe can read the factors back, with the factors."""
    rng = np.random.default_rng(seed)
    sizes = (3, 4, 5)
    factors = np.stack([rng.integers(0, k, n) for k in sizes], axis=1)
    onehot = np.concatenate([np.eye(k)[factors[:, j]] for j, k in enumerate(sizes)], axis=1)
    acts = onehot @ rng.normal(size=(sum(sizes), 24)) + 0.05 * rng.normal(size=(n, 24))
    return acts.astype(np.float32), factors


def config(tmp_path, path, **sections):
    sae = {"n_neurons": 32, "k": 4, "epochs": 3}
    sae.update(sections.pop("sae", {}))
    evaluation = {"n_samples": 80, **sections.pop("eval", {})}
    data = {"dataset": "activations", "path": str(path), "n_train": 200, **sections.pop("data", {})}
    return tiny_config(tmp_path, data=data, eval=evaluation, sae=sae, **sections)


def test_a_run_on_activations_with_factors_has_every_metric_and_no_vae(tmp_path):
    acts, factors = planted()
    path = write_activations(tmp_path / "acts.npz", acts, factors, ["colour", "size", "place"])
    events = []
    result = Engine().run(validate(config(tmp_path, path)), [events.append])
    assert result.status == "ok", result.summary.get("reason")
    phases = [e.phase for e in events if isinstance(e, ev.PhaseStarted)]
    assert "vae" not in phases and "codes" not in phases and "sae" in phases
    assert any("vae: not trained" in getattr(e, "text", "") for e in events)
    final = result.summary["final"]
    for key in FACTOR_METRICS:
        assert isinstance(final.get(key), float) or isinstance(final.get(key), int), key
    assert final["probe_acc_input"] > 0.9  # the factors are linearly readable from these activations
    source = store.load_run(result.run_dir).config["data_source"]
    assert source["dataset"] == "activations" and source["rows"] == 300 and len(source["sha256"]) == 64
    assert (result.run_dir / store.layout.NEURONS_FILE).exists()
    profiles = store.read_neurons(result.run_dir)
    assert list(profiles["factors"]) == ["colour", "size", "place"]
    # The held-out rows are rows of the file, never trained on: 80 of them, none of the 200 drawn to train.
    assert len(profiles["eval_indices"]) == 80 and len(set(profiles["eval_indices"].tolist())) == 80


def test_the_split_is_the_runs_seed_and_the_same_again(tmp_path):
    acts, factors = planted()
    path = write_activations(tmp_path / "acts.npz", acts, factors)
    indices = []
    for seed in (3, 3, 4):
        result = Engine().run(validate(config(tmp_path, path, seed=seed, sae={"epochs": 1})))
        assert result.status == "ok", result.summary.get("reason")
        indices.append(store.read_neurons(result.run_dir)["eval_indices"].tolist())
    assert indices[0] == indices[1] and indices[0] != indices[2]


def test_without_factors_the_factor_metrics_are_absent_not_zero(tmp_path):
    acts, _ = planted()
    path = write_activations(tmp_path / "acts.npy", acts)
    events = []
    result = Engine().run(validate(config(tmp_path, path)), [events.append])
    assert result.status == "ok", result.summary.get("reason")
    final = result.summary["final"]
    # What needs no factors is measured (a few updates need not reconstruct well yet: EV may be below 0).
    assert 0 <= final["dead_fraction"] <= 1 and np.isfinite(final["explained_variance"]) and final["l0"] > 0
    for key in FACTOR_METRICS:
        assert key not in final, key
    assert not (result.run_dir / store.layout.NEURONS_FILE).exists()
    assert any("no factors" in getattr(e, "text", "") for e in events)


def test_too_few_rows_fail_the_run_in_one_line(tmp_path):
    acts, factors = planted(n=250)
    path = write_activations(tmp_path / "acts.npz", acts, factors)
    result = Engine().run(validate(config(tmp_path, path)))
    assert result.status == "failed"
    reason = result.summary["reason"]
    assert "\n" not in reason and "exceeds the 250 rows of acts.npz" in reason


def test_a_damaged_file_fails_the_run_in_one_line_naming_it(tmp_path):
    acts, factors = planted()
    path = write_activations(tmp_path / "acts.npz", acts, factors)
    path.write_bytes(path.read_bytes()[:200])
    result = Engine().run(validate(config(tmp_path, path)))
    assert result.status == "failed"
    assert "\n" not in result.summary["reason"] and "acts.npz" in result.summary["reason"]


@pytest.mark.parametrize("suffix, streaming", [(".npz", "auto"), (".h5", "always")])
def test_a_sweep_killed_while_training_resumes_to_the_uninterrupted_result(tmp_path, suffix, streaming):
    acts, factors = planted()
    path = write_activations(tmp_path / f"acts{suffix}", acts, factors)
    sweep = {"sweep": [{"sae.k": [4, 8]}], "data": {"streaming": streaming}}
    whole = config(tmp_path / "whole", path, sae={"epochs": 4}, eval={"every": 2}, **sweep)
    assert cli.main(["--batch", str(write_config(tmp_path, whole, "whole.yaml"))]) == 0
    cut = config(tmp_path / "cut", path, sae={"epochs": 4}, eval={"every": 2}, **sweep)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **{FAULT_PHASE_ENV: "sae:3"})
    killed = subprocess.run([sys.executable, "-m", "collapse_tui", "--batch", str(write_config(tmp_path, cut, "cut.yaml"))],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (sweep_dir,) = (tmp_path / "cut" / "runs" / "sweeps").iterdir()
    assert cli.main(["--resume", str(sweep_dir), "--yes"]) == 0
    expected = {r.config["sae"]["k"]: r.summary["final"] for r in store.list_runs(tmp_path / "whole" / "runs")}
    resumed = {r.config["sae"]["k"]: r for r in store.list_runs(tmp_path / "cut" / "runs")}
    assert sorted(resumed) == [4, 8]
    for k, record in resumed.items():
        assert record.status == "ok"
        for key in ("dead_fraction", "l0", "explained_variance", "mig", "probe_acc"):
            assert record.summary["final"][key] == pytest.approx(expected[k][key], rel=1e-5, abs=1e-9), (k, key)


def test_a_run_whose_file_changed_since_it_began_is_not_resumed_on_other_rows(tmp_path, monkeypatch):
    from collapse_tui.engine import bank_phase

    acts, factors = planted()
    path = write_activations(tmp_path / "acts.npz", acts, factors)
    after = bank_phase.BankPhase.after_epoch
    engine = Engine()

    def stopping(self, e, logs, seconds, **kwargs):
        after(self, e, logs, seconds, **kwargs)
        if e + 1 == 1:
            engine.stop_event.set()

    monkeypatch.setattr(bank_phase.BankPhase, "after_epoch", stopping)
    stopped = engine.run(validate(config(tmp_path, path)))
    assert stopped.status == "stopped"
    monkeypatch.setattr(bank_phase.BankPhase, "after_epoch", after)
    write_activations(path, acts * 2, factors)  # the same name, other rows
    (result,) = Engine().resume([stopped.run_dir])
    assert result.status == "failed"
    reason = result.summary["reason"]
    assert "\n" not in reason and "acts.npz has changed since the run began" in reason
    write_activations(path, acts, factors)  # put back: it resumes
    (result,) = Engine().resume([stopped.run_dir])
    assert result.status == "ok", result.summary.get("reason")
