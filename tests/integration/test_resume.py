"""Checkpoints and resume: a run cut short (stopped, or its process killed in any phase) goes on from its
last checkpoint to the same result as a run never interrupted; a sweep cut short is finished."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from collapse_tui import cli, store
from collapse_tui.config import expand, validate
from collapse_tui.engine import bank_phase
from collapse_tui.engine.checkpoint import (CHECKPOINT_FILE, Checkpoint, read_checkpoint, read_checkpoint_file,
                                           write_checkpoint_file)
from collapse_tui.engine.faults import FAULT_PHASE_ENV
from collapse_tui.engine.runner import Engine, resume_plan, run
from collapse_tui.engine.sweep import plan_sweep_resume, run_sweep
from collapse_tui.engine.vae_training import vae_checkpoint_path
from tests.helpers import tiny_config, write_config

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

ROOT = Path(__file__).resolve().parents[2]
COMPARED = ("dead_fraction", "l0", "explained_variance", "mse", "mig", "specialized", "dead_before_extension")
# A resumed run repeats the uninterrupted one's arithmetic exactly on one backend and machine; the
# tolerance only absorbs a last-bit difference from reloading float32 weights.
RTOL = 1e-5


def protocol(tmp_path, **sections):
    """Two VAE epochs; six SAE epochs: a schedule over three, two extended, evaluations every two epochs,
    AuxK and resampling on (their idle counts and random state must survive a checkpoint too)."""
    sae = {"epochs": 4, "extended_epochs": 2, "schedule": {"kind": "linear", "start": 12, "epochs": 3},
           "remedies": {"auxk": True, "dead_steps": 2, "resample_epochs": [2]}}
    sae.update(sections.pop("sae", {}))
    return tiny_config(tmp_path, vae={"epochs": 2}, sae=sae, eval={"every": 2}, **sections)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final metrics of the protocol's run, never interrupted: what every resumed run must reach."""
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    result = run(validate(protocol(tmp_path)))
    assert result.status == "ok" and not (result.run_dir / CHECKPOINT_FILE).exists()  # a finished run keeps none
    return result.summary


def same_results(a: dict, b: dict) -> None:
    for key in COMPARED:
        assert b.get(key) == pytest.approx(a.get(key), rel=RTOL, abs=1e-9), key


def stop_after(epoch: int, stop: threading.Event, monkeypatch, k: int | None = None):
    after = bank_phase.BankPhase.after_epoch

    def stopping(self, e, logs, seconds, **kwargs):
        after(self, e, logs, seconds, **kwargs)
        if e + 1 == epoch and (k is None or self.members[0].cfg.sae.k == k):
            stop.set()

    monkeypatch.setattr(bank_phase.BankPhase, "after_epoch", stopping)


def test_a_stopped_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, uninterrupted):
    stop = threading.Event()
    stop_after(3, stop, monkeypatch)
    cut = Engine(stop).run(validate(protocol(tmp_path)))
    monkeypatch.undo()
    assert cut.status == "stopped"
    checkpoint = read_checkpoint(cut.run_dir)
    assert checkpoint is not None and checkpoint.epoch == 3
    (resumed,) = Engine().resume([cut.run_dir])
    assert resumed.status == "ok" and resumed.run_dir == cut.run_dir
    same_results(uninterrupted["final"], resumed.summary["final"])
    assert resumed.summary["sae_epochs"] == 6 and resumed.summary["resampled"] == uninterrupted["resampled"]
    assert len(resumed.summary["resumed"]) == 1
    events = [type(e).__name__ for e in store.iter_events(cut.run_dir)]
    assert events.count("RunStarted") == 1 and events.count("RunResumed") == 1
    assert not (cut.run_dir / CHECKPOINT_FILE).exists()


def test_a_run_resumed_under_another_backend_says_so(tmp_path, monkeypatch):
    """The run's config.yaml names the backend it started on; a resume under another one warns, once."""
    import keras
    import yaml

    stop = threading.Event()
    stop_after(1, stop, monkeypatch)
    cut = Engine(stop).run(validate(protocol(tmp_path, sae={"epochs": 2, "extended_epochs": 0})))
    monkeypatch.undo()
    config_file = cut.run_dir / store.CONFIG_FILE
    stored = yaml.safe_load(config_file.read_text())
    here = keras.backend.backend()
    assert stored["environment"]["backend"] == here
    other = "jax" if here != "jax" else "torch"
    stored["environment"]["backend"] = other
    config_file.write_text(yaml.safe_dump(stored))
    (resumed,) = Engine().resume([cut.run_dir])
    assert resumed.status == "ok"
    warnings = [e.text for e in store.iter_events(cut.run_dir) if getattr(e, "level", "") == "warning"]
    assert [w for w in warnings if "resumed under" in w] == [
        f"resumed under {here}; the run started under {other}, so its numbers can differ in the last digits "
        "from a run that never changed backend"]


def test_a_run_resumed_under_its_own_backend_says_nothing_of_it():
    from collapse_tui.engine.runner import backend_change

    assert backend_change({"environment": {"backend": "torch"}}, {"backend": "torch"}) is None
    assert backend_change({"environment": "damaged"}, {"backend": "torch"}) is None  # unknown: nothing to say
    assert backend_change({}, {"backend": "torch"}) is None
    assert "started under jax" in backend_change({"environment": {"backend": "jax"}}, {"backend": "torch"})


def _truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


def _claim_epoch_99(path):
    checkpoint = read_checkpoint_file(path)
    checkpoint.epoch = 99
    write_checkpoint_file(path, checkpoint)


def _misshape(path):
    checkpoint = read_checkpoint_file(path)
    checkpoint.weights[1] = np.zeros((3, 3), np.float32)
    write_checkpoint_file(path, checkpoint)


@pytest.mark.parametrize("damage, said", [(_truncate, "unreadable checkpoint"),
                                          (_claim_epoch_99, "it is after epoch 99, and the phase has 6"),
                                          (_misshape, "weight array 1 has shape (3, 3)")])
def test_a_checkpoint_that_cannot_be_resumed_is_set_aside_and_the_sae_trains_again(tmp_path, monkeypatch,
                                                                                    uninterrupted, damage, said):
    stop = threading.Event()
    stop_after(3, stop, monkeypatch)
    cut = Engine(stop).run(validate(protocol(tmp_path)))
    monkeypatch.undo()
    damage(cut.run_dir / CHECKPOINT_FILE)
    assert cli.main(["--resume", str(cut.run_dir)]) == 0  # resumed, never refused or failed for it
    after = store.load_run(cut.run_dir)
    assert after.status == "ok" and after.summary["sae_epochs"] == 6
    same_results(uninterrupted["final"], after.summary["final"])  # the SAE phase again, from its seed
    warnings = [e.text for e in store.iter_events(cut.run_dir) if getattr(e, "level", "") == "warning"]
    assert any(said in w and "set aside as checkpoint.set-aside.npz" in w for w in warnings), warnings
    assert (cut.run_dir / store.layout.SET_ASIDE_CHECKPOINT).exists() and not (cut.run_dir / CHECKPOINT_FILE).exists()


def test_a_run_failed_by_a_full_disk_resumes_from_its_last_checkpoint(tmp_path, monkeypatch, uninterrupted):
    import errno

    written = bank_phase.write_checkpoint

    def disk_full_at_epoch_4(run_dir, checkpoint):
        if checkpoint.epoch == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(run_dir))
        return written(run_dir, checkpoint)

    monkeypatch.setattr(bank_phase, "write_checkpoint", disk_full_at_epoch_4)
    failed = Engine().run(validate(protocol(tmp_path)))
    monkeypatch.undo()
    assert failed.status == "failed" and "No space left on device" in failed.summary["reason"]
    assert read_checkpoint(failed.run_dir).epoch == 3  # the last one written whole
    assert cli.main(["--resume", str(failed.run_dir)]) == 0
    after = store.load_run(failed.run_dir)
    assert after.status == "ok" and after.summary["sae_epochs"] == 6
    same_results(uninterrupted["final"], after.summary["final"])
    # A failed run without a checkpoint has nothing to go on from: refused in one line.
    lone = run(validate(tiny_config(tmp_path / "lone", sae={"epochs": 1})))
    (lone.run_dir / store.SUMMARY_FILE).write_text(
        (lone.run_dir / store.SUMMARY_FILE).read_text().replace('"status": "ok"', '"status": "failed"'))
    with pytest.raises(ValueError, match="ended failed and kept no checkpoint"):
        resume_plan(lone.run_dir)


def test_a_run_being_resumed_is_not_resumed_again_by_a_second_process(tmp_path, monkeypatch, capsys):
    stop = threading.Event()
    stop_after(2, stop, monkeypatch)
    cut = Engine(stop).run(validate(protocol(tmp_path, sae={"epochs": 2, "extended_epochs": 1})))
    monkeypatch.undo()
    lock = cut.run_dir / store.layout.RESUME_LOCK
    holder = subprocess.Popen(  # another process resuming it: holds the run's lock
        [sys.executable, "-c", "import sys, time\nfrom collapse_tui.store import only_writer\n"
         f"with only_writer({str(lock)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli.main(["--resume", str(cut.run_dir)]) == 2
        assert f"is being resumed by process {holder.pid}" in capsys.readouterr().err
        assert store.load_run(cut.run_dir).status == "stopped"  # untouched
    finally:
        holder.kill()
        holder.wait()
    assert cli.main(["--resume", str(cut.run_dir)]) == 0  # the holder died: its lock with it
    assert store.load_run(cut.run_dir).status == "ok"


def test_a_run_stopped_within_an_epoch_redoes_that_epoch(tmp_path, monkeypatch):
    # The stop lands between two steps of epoch 3: that epoch is cut short, so the checkpoint stays the
    # one after epoch 2 and the resumed run trains epoch 3 whole. Batches of one make an epoch 96 steps,
    # several calls of TensorFlow's training function (32 steps each).
    whole = run(validate(protocol(tmp_path, sae={"batch_size": 1})))
    stop = threading.Event()
    progress, init = bank_phase.BankPhase.progress, bank_phase._MemberEvents.__init__

    def stopping(self, epoch, batch):
        progress(self, epoch, batch)
        if epoch == 2 and batch >= 1:
            stop.set()

    def every_step(self, phase):
        init(self, phase)
        self.interval = 0.0

    monkeypatch.setattr(bank_phase.BankPhase, "progress", stopping)
    monkeypatch.setattr(bank_phase._MemberEvents, "__init__", every_step)
    cut = Engine(stop).run(validate(protocol(tmp_path, sae={"batch_size": 1})))
    monkeypatch.undo()
    assert cut.status == "stopped" and read_checkpoint(cut.run_dir).epoch == 2
    (resumed,) = Engine().resume([cut.run_dir])
    assert resumed.status == "ok"
    same_results(whole.summary["final"], resumed.summary["final"])


def test_only_a_stopped_or_crashed_run_resumes(tmp_path, capsys):
    result = run(validate(tiny_config(tmp_path, sae={"epochs": 1})))
    assert cli.main(["--resume", str(result.run_dir)]) == 2
    assert "ended ok; only a stopped or crashed run, or a failed one that kept its checkpoint" in capsys.readouterr().err
    assert cli.main(["--resume", str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize("point", ["data", "vae:2", "sae:3", "evaluate", "evaluation:6"])
def test_a_run_killed_in_any_phase_resumes_to_the_uninterrupted_result(tmp_path, point, uninterrupted):
    # Killed (SIGKILL: nothing cleaned up) as the data phase starts, at the end of VAE epoch 2 of 2 (its
    # checkpoint, in the models dir, is epoch 1's) and of SAE epoch 3 (its checkpoint is epoch 2's), as
    # the final evaluation starts and as sae.keras is about to be saved (the last checkpoint: epoch 6's,
    # written before the final evaluation).
    # A models dir of its own, so that the VAE phase really trains (and is killed while it does).
    path = write_config(tmp_path, protocol(tmp_path, models_dir=str(tmp_path / "fresh-models")))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **{FAULT_PHASE_ENV: point})
    killed = subprocess.run([sys.executable, "-m", "collapse_tui", "--batch", str(path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (record,) = store.list_runs(tmp_path / "runs")
    assert record.summary["status"] == "running" and record.status == "crashed"
    if point in ("sae:3", "evaluate"):
        assert read_checkpoint(record.path).epoch == {"sae:3": 2, "evaluate": 6}[point]
    if point == "evaluation:6":
        assert read_checkpoint(record.path).epoch == 6 and not (record.path / "sae.keras").exists()
    models = tmp_path / "fresh-models"
    if point in ("data", "vae:2"):  # killed before its VAE was trained: none cached
        assert not list(models.glob("vae-*.keras"))
    if point == "vae:2":
        (vae_checkpoint,) = models.glob("vae-*.checkpoint.npz")
        assert read_checkpoint_file(vae_checkpoint).epoch == 1
    assert cli.main(["--resume", str(record.path)]) == 0
    after = store.load_run(record.path)
    assert after.status == "ok"
    same_results(uninterrupted["final"], after.summary["final"])
    assert not [p.name for p in record.path.iterdir() if p.name.startswith(".")]  # no temporary left
    assert not (record.path / CHECKPOINT_FILE).exists()
    assert not list(models.glob("*.npz")) and list(models.glob("vae-*.keras"))  # the VAE's replaced it
    if point == "vae:2":
        assert any("continuing from its checkpoint after epoch 1" in getattr(e, "text", "")
                   for e in store.iter_events(record.path))


def test_a_vae_checkpoint_that_does_not_fit_is_ignored(tmp_path):
    # A damaged file where the VAE's checkpoint goes, and one written for another VAE: each run warns and
    # trains its VAE from the start, to the VAE a clean run trains (one SAE epoch is enough to see it).
    config = validate(tiny_config(tmp_path, sae={"epochs": 1}, eval={"every": 0}))
    clean = Engine().run(config)
    (saved,) = Path(config.models_dir).glob("vae-*.keras")
    key = saved.stem.removeprefix("vae-")
    saved.unlink()
    target = vae_checkpoint_path(config.models_dir, key)
    target.write_bytes(b"not a zip")
    damaged = Engine().run(config)
    write_checkpoint_file(target, Checkpoint(epoch=1, weights=[np.zeros(3)], optimizer={}, rng={},
                                             state={"vae_key": key}))
    saved.unlink()
    foreign = Engine().run(config)
    for result in (damaged, foreign):
        assert result.status == "ok" and not target.exists()
        warnings = [e.text for e in store.iter_events(result.run_dir) if getattr(e, "level", "") == "warning"]
        assert any("ignoring the checkpoint" in w for w in warnings), warnings
        same_results(clean.summary["final"], result.summary["final"])


def test_a_sweep_cut_short_is_finished(tmp_path, monkeypatch, capsys):
    data = tiny_config(tmp_path, bank_size=1, sae={"epochs": 4}, eval={"every": 0}, sweep={"sae.k": [2, 3, 4]})
    whole = {r.summary["name"]: r.summary["final"] for r in run_sweep(expand(data))}
    stop = threading.Event()
    stop_after(2, stop, monkeypatch, k=3)  # the second run of three is stopped; the third never starts
    cut = run_sweep(expand({**data, "runs_dir": str(tmp_path / "cut")}), stop_event=stop)
    monkeypatch.undo()
    assert [r.status for r in cut] == ["ok", "stopped"]
    (sweep_dir,) = (tmp_path / "cut" / "sweeps").iterdir()
    plan = plan_sweep_resume(sweep_dir)
    assert (len(plan.finished), len(plan.resume), len(plan.new)) == (1, 1, 1)
    assert cli.main(["--resume", str(sweep_dir)]) == 0
    records = store.sweep_records(sweep_dir)
    assert sorted(r.summary["name"] for r in records) == sorted(whole) and all(r.status == "ok" for r in records)
    for r in records:
        same_results(whole[r.summary["name"]], r.summary["final"])
    assert cli.main(["--resume", str(sweep_dir)]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_a_checkpoint_round_trips(tmp_path):
    from collapse_tui.engine.checkpoint import Checkpoint, write_checkpoint

    rng = np.random.RandomState(4)
    rng.permutation(10)
    ck = Checkpoint(epoch=7, weights=[np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3)],
                    optimizer={"W_enc:momentum": np.full((2, 3), 0.5), "iterations": np.array(70)},
                    rng={"orders": rng.get_state()}, state={"history": [[10, 50.0, 0.25]]})
    write_checkpoint(tmp_path, ck)
    back = read_checkpoint(tmp_path)
    assert back.epoch == 7 and back.state == {"history": [[10, 50.0, 0.25]]}
    assert all(np.array_equal(a, b) for a, b in zip(ck.weights, back.weights))
    assert np.array_equal(back.optimizer["W_enc:momentum"], ck.optimizer["W_enc:momentum"])
    again = np.random.RandomState()
    again.set_state(back.rng["orders"])
    assert np.array_equal(again.permutation(10), rng.permutation(10))
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="unreadable checkpoint"):
        read_checkpoint(tmp_path)
