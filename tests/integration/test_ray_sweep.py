"""Sweeps on Ray (a local instance of 2 CPUs): the same runs as a local sweep, even when a task's worker
is killed (Ray retries it, and it resumes its runs), a Ctrl-C leaves every run stopped, none running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collapse_tui.config import expand
from collapse_tui.engine.ray_sweep import RayOptions, run_sweep_on_ray, task_environment
from collapse_tui.store.layout import STOP_FILE, TASKS_DIR
from collapse_tui.engine.faults import FAULT_ONCE_ENV, FAULT_PHASE_ENV
from collapse_tui.engine.sweep import run_sweep
from collapse_tui.store import list_runs, load_run, sweep_run_dirs
from tests.helpers import tiny_config, write_config

ROOT = Path(__file__).resolve().parents[2]
ray = pytest.importorskip("ray")
# Compared between a Ray worker and this process: the same seeds, data order and ops, but a worker
# runs its backend with one thread (Ray sets OMP_NUM_THREADS to its CPUs), which changes the order of
# float reductions; the metrics below are means over the evaluation set, so they differ by float
# rounding only.
RTOL = 1e-4


@pytest.fixture(scope="module")
def local_ray():
    import logging

    import warnings

    with warnings.catch_warnings():  # as the app starts it: JAX warns of the fork before Ray's exec
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    yield
    ray.shutdown()


def sweep_runs(tmp_path: Path, where: str, **sections):
    data = tiny_config(tmp_path, runs_dir=str(tmp_path / where / "runs"), models_dir=str(tmp_path / where / "models"),
                       bank_size=2, **{"eval": {"every": 0}, **sections})  # the final evaluation only
    data["sweep"] = [{"sae.k": [2, 4, 6, 8]}]
    return expand(data)


def final_metrics(summary: dict) -> dict:
    final = summary["final"]
    return {k: final[k] for k in ("dead_fraction", "l0", "explained_variance", "mig", "reconstruction_mse")
            if k in final}


def table_keys(sweep_dir: Path) -> list[list[str]]:
    """What identifies each row of a sweep's results.md main table (the sections after it, from its first
    "## " heading on, repeat the rows): dataset, method, remedy, k / λ, seeds."""
    lines = (sweep_dir / "results.md").read_text().split("\n## ")[0].splitlines()
    rows = [line.split("|")[1:6] for line in lines if line.startswith("| ") and not line.startswith("| dataset")]
    return [[cell.strip() for cell in row] for row in rows]


def test_a_sweep_on_ray_gives_the_runs_of_the_same_sweep_run_here_even_when_a_worker_dies(
        tmp_path, local_ray, monkeypatch):
    here = run_sweep(sweep_runs(tmp_path, "here"))
    # On Ray, one worker kills itself (SIGKILL) at the end of its SAE's first epoch, once: Ray starts its
    # task again, which resumes that bank's runs from their checkpoints.
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(FAULT_PHASE_ENV, "sae:1")
    monkeypatch.setenv(FAULT_ONCE_ENV, str(marker))
    notes = []
    there = run_sweep_on_ray(sweep_runs(tmp_path, "ray"), RayOptions(max_retries=1), say=notes.append)
    assert marker.exists(), "the fault never fired"
    assert notes and "2 bank(s) of 4 run(s)" in notes[0]
    assert [r.status for r in there] == ["ok"] * 4
    assert [r.summary["name"] for r in there] == [r.summary["name"] for r in here]
    for mine, theirs in zip(here, there):
        assert theirs.summary["final"]["n_neurons"] == mine.summary["final"]["n_neurons"]
        for key, value in final_metrics(mine.summary).items():
            assert theirs.summary["final"][key] == pytest.approx(value, rel=RTOL, abs=1e-7), key
    # The killed bank's two runs went on in the directories their first attempt made; the other's never
    # stopped.
    assert len(list_runs(tmp_path / "ray" / "runs")) == 4
    kinds = {r.summary["name"]: [json.loads(line)["type"] for line in (r.run_dir / "events.jsonl").read_text()
                                 .splitlines()] for r in there}
    assert all(k.count("run_started") == 1 for k in kinds.values())
    assert sorted(k.count("run_resumed") for k in kinds.values()) == [0, 0, 1, 1]
    assert all(bool(load_run(r.run_dir).summary.get("resumed")) == ("run_resumed" in kinds[r.summary["name"]])
               for r in there)
    # Each task wrote its runs into the shared runs directory; the sweep (written by the driver) lists
    # them all, and its table has a row per run.
    (sweep_dir,) = (tmp_path / "ray" / "runs" / "sweeps").iterdir()
    assert sorted(p.name for p in sweep_run_dirs(sweep_dir)) == sorted(r.run_dir.name for r in there)
    assert sorted(json.loads((sweep_dir / TASKS_DIR / f"{n}.json").read_text())["runs"].__len__()
                  for n in (0, 1)) == [2, 2]
    # The sweep's table has the local sweep's rows (their numbers are compared above, from the summaries).
    (local_sweep,) = (tmp_path / "here" / "runs" / "sweeps").iterdir()
    assert table_keys(sweep_dir) == table_keys(local_sweep) and len(table_keys(sweep_dir)) == 4
    assert len((sweep_dir / "runs.jsonl").read_text().splitlines()) == 4
    # The two banks share one VAE: one task trained it, the other waited for it, then loaded it (as the
    # retried task did again).
    texts = [e.get("text", "") for d in sweep_run_dirs(sweep_dir)
             for e in map(json.loads, (d / "events.jsonl").read_text().splitlines())]
    assert sum(t.startswith("vae: saved") for t in texts) == 1
    assert any(t.startswith("vae: waiting for another process") for t in texts)
    assert len(list((tmp_path / "ray" / "models").glob("vae-*.keras"))) == 1


def test_a_ray_task_left_no_worker_retries_fails_its_runs_clearly(tmp_path, local_ray, monkeypatch):
    monkeypatch.setenv(FAULT_PHASE_ENV, "sae")  # dies at every attempt
    runs = sweep_runs(tmp_path, "ray")[:2]
    results = run_sweep_on_ray(runs, RayOptions(max_retries=0))
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("the Ray task of this bank failed" in r.summary["reason"] for r in results)


def in_sae_training(events_file: Path) -> bool:
    """Whether a run has ended an SAE epoch (a line cut short by the writer is not read yet)."""
    for line in events_file.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "epoch_end" and event.get("phase") == "sae":
            return True
    return False


def test_ctrl_c_stops_every_ray_task_and_leaves_no_run_running(tmp_path):
    data = tiny_config(tmp_path, bank_size=1, sae={"epochs": 2000}, eval={"every": 0})
    data["sweep"] = [{"sae.k": [2, 4, 6]}]  # three tasks on two CPUs: one waits for a free one
    path = write_config(tmp_path, data)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-m", "collapse_tui", "--batch", str(path), "--ray"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if sum(in_sae_training(p) for p in (tmp_path / "runs").glob("*/events.jsonl")) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    (sweep_dir,) = (tmp_path / "runs" / "sweeps").iterdir()
    assert (sweep_dir / STOP_FILE).exists()
    statuses = [load_run(d).status for d in sweep_run_dirs(sweep_dir)]
    assert len(statuses) >= 2 and set(statuses) == {"stopped"}, statuses
    assert "stopped" in out and "resume" in err


def test_tasks_get_the_backend_and_the_apps_settings_not_the_rest_of_the_environment():
    import keras

    env = task_environment(0.25, {"COLLAPSE_TUI_DATA": "/data", "HOME": "/root", "XLA_FLAGS": "--x",
                                  "KERAS_BACKEND": "whatever"})
    assert env["KERAS_BACKEND"] == keras.backend.backend()  # as this process resolved it
    assert env["COLLAPSE_TUI_DATA"] == "/data" and env["XLA_FLAGS"] == "--x" and "HOME" not in env
    # A quarter of a GPU: the backends must not take all of its memory.
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in task_environment(1.0, {})


def test_bad_ray_options_are_refused_before_anything_runs(tmp_path):
    assert RayOptions(cpus=0, gpus=-1, max_retries=-1).problems() == [
        "--ray-cpus must be > 0, got 0", "--ray-gpus must be ≥ 0, got -1", "--ray-retries must be ≥ 0, got -1"]
    assert RayOptions(cpus=0.5, gpus=0.25).problems() == []
    path = write_config(tmp_path, tiny_config(tmp_path))
    out = subprocess.run([sys.executable, "-m", "collapse_tui", "--batch", str(path), "--ray", "--ray-cpus", "0"],
                         cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "cannot run on Ray: --ray-cpus must be > 0" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_ray_needs_batch():
    out = subprocess.run([sys.executable, "-m", "collapse_tui", "--ray"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "--ray goes with --batch" in out.stderr
