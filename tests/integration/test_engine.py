import threading

import keras
import numpy as np
import pytest

from collapse_tui import store
from collapse_tui.config import expand, validate
from collapse_tui import events as ev
from collapse_tui.engine.runner import Engine
from collapse_tui.engine.sweep import run_sweep
from tests.helpers import tiny_config

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("engine")
    rec = Recorder()
    config = validate(tiny_config(tmp, sae={"schedule": {"kind": "linear", "start": 12, "epochs": 2}},
                                  eval={"density_thresholds": [1e-4, 1e-3, 0.05], "dci_tree_samples": 20}))
    result = Engine().run(config, [rec])
    return config, result, rec


def test_run_writes_a_complete_run_directory(finished_run):
    config, result, rec = finished_run
    assert result.status == "ok", result.summary.get("reason")
    run_dir = result.run_dir
    assert {"config.yaml", "events.jsonl", "summary.json", "sae.keras"} <= {p.name for p in run_dir.iterdir()}
    record = store.load_run(run_dir)
    assert record.status == "ok"
    assert record.config["sae"]["k"] == 4
    assert record.config["environment"]["backend"] == keras.backend.backend()
    assert record.config["environment"]["keras"] == keras.__version__
    # What the listener saw is exactly what the file holds.
    on_disk = list(store.iter_events(run_dir))
    assert [e.to_dict() for e in on_disk] == [store.jsonable(e.to_dict()) for e in rec.events]


def test_events_follow_the_phases_in_order(finished_run):
    _, result, rec = finished_run
    assert isinstance(rec.events[0], ev.RunStarted) and isinstance(rec.events[-1], ev.RunFinished)
    phases = [e.phase for e in rec.of(ev.PhaseStarted)]
    assert phases[:2] == ["data", "vae"] and phases.index("sae") < phases.index("evaluate")
    sae_epochs = [e for e in rec.of(ev.EpochEnd) if e.phase == "sae"]
    assert [e.epoch for e in sae_epochs] == [1, 2]
    # The linear schedule moves k from 12 to the final 4 over the two epochs.
    assert [e.sparsity for e in sae_epochs] == [12.0, 4.0]
    assert all(np.isfinite(e.logs["loss"]) for e in sae_epochs)


def test_evaluations_carry_every_metric(finished_run):
    config, result, rec = finished_run
    evals = [e for e in rec.of(ev.Evaluation) if e.phase == "sae"]
    assert [e.epoch for e in evals] == [1, 2]  # every epoch, the last one being the final evaluation
    m = evals[-1].metrics
    for t in config.eval.thresholds:
        assert 0.0 <= m[f"dead@{t:g}"] <= 1.0
    dead = [m[f"dead@{t:g}"] for t in sorted(config.eval.thresholds)]
    assert dead == sorted(dead), "a higher threshold never has fewer dead neurons"
    # By firing frequency, on 64 evaluation inputs: below 1e-4 of them is never, below 1e-3 too (0.064
    # inputs): the dead fraction again, so not measured, and the run says so once; below 0.05 is below
    # 3.2 inputs, on at most 3 of them.
    counts = np.array(m["fire_counts"])
    assert counts.shape == (24,) and m["n_samples"] == 64 and counts.max() <= 64
    assert [k for k in m if k.startswith("dead_freq@")] == ["dead_freq@0.05"]
    assert m["dead_freq@0.05"] == np.mean(counts <= 3) >= m["dead@0"]
    said = [e.text for e in rec.of(ev.Message) if "firing frequency" in e.text]
    assert said == ["eval: dead by firing frequency below 0.0001, 0.001 is not measured: 64 evaluation inputs "
                    "cannot tell it from never firing (it needs more than 1,000)"]
    assert m["l0"] <= 4 + 1e-9 and m["sparsity"] == 4
    assert np.array(m["nmi"]).shape == (24, 5)
    assert 0.0 <= m["mig"] <= 1.0 and 0.0 <= m["mig_vae"] <= 1.0
    assert m["explained_variance"] <= 1.0 and m["mse"] >= 0.0 and m["bce"] > 0.0
    assert "bce" not in evals[0].metrics  # decoding through the VAE is kept for the final evaluation
    # Also kept for the end: why the dead are dead (the two causes part the dead at the first threshold, 0)
    # and the trees' DCI, on 20 of the 64 evaluation inputs and 20 others.
    assert {"dead_relu", "dead_gated", "dci_trees_disentanglement"}.isdisjoint(evals[0].metrics)
    assert config.eval.thresholds[0] == 0.0
    assert m["dead_relu"] + m["dead_gated"] == pytest.approx(m["dead@0"])
    assert m["dci_tree_inputs"] == 20
    for key in ("dci_trees_disentanglement", "dci_trees_completeness", "dci_trees_informativeness"):
        assert 0.0 <= m[key] <= 1.0, key
    # Stability against the first mark (epoch 1): measured from the second mark on, from the decoders kept.
    assert "survival" not in evals[0].metrics and m["stability_reference_epoch"] == 1
    for key in ("survival", "survival_cosine", "cka_first", "ksparse_f1_1", "ksparse_f1_5", "absorption"):
        assert 0.0 <= m[key] <= 1.0, key
    marks = store.read_decoders(result.run_dir)
    assert marks.epochs.tolist() == [1, 2] and marks.decoders.shape == (2, 24, marks.decoders.shape[2])
    # The SAE's input is the same at every evaluation: so is its effective rank.
    for key in ("input_participation_ratio", "input_dims_99", "input_silent_units"):
        assert evals[0].metrics[key] == m[key], key
    assert m["input_dims_99"] >= 1 and m["input_participation_ratio"] >= 1.0 and m["input_silent_units"] >= 0
    vae_eval = [e for e in rec.of(ev.Evaluation) if e.phase == "vae"][0].metrics
    assert set(vae_eval) >= {"mig", "bce", "active_latents"}
    assert vae_eval["factors"] == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    assert np.array(vae_eval["nmi"]).shape == (10, 5)
    summary = result.summary
    assert summary["final"]["dead@0"] == m["dead@0"] and summary["vae"]["mig"] == vae_eval["mig"]
    # Two epochs, one of them at the final k: too few marks for a slope, and the curve of both.
    assert m["dead_slope_per_efold"] is None and m["dead_slope_marks"] == 1
    assert summary["final"]["dead_curve"] == [[e.metrics["updates"], e.metrics["dead_fraction"]] for e in evals]
    assert "fire_counts" not in summary["final"]  # the other lists stay in the events
    assert summary["sae_epochs"] == 2 and set(summary["durations"]) >= {"data", "vae", "codes", "sae"}


def test_saved_sae_reproduces_the_final_codes(finished_run):
    _, result, rec = finished_run
    sae = keras.saving.load_model(result.run_dir / "sae.keras", compile=False)
    assert sae.sparsity == 4
    x = np.random.RandomState(0).normal(size=(8, sae.input_dim)).astype("float32")
    assert np.count_nonzero(sae.codes(x), axis=1).max() <= 4


def test_identical_vae_is_loaded_from_models_dir(finished_run, tmp_path):
    config, result, _ = finished_run
    rec = Recorder()
    again = Engine().run(config.model_copy(update={"runs_dir": str(tmp_path)}), [rec])
    assert again.status == "ok"
    texts = [m.text for m in rec.of(ev.Message)]
    assert any(t.startswith("vae: loaded") for t in texts), texts
    assert not [e for e in rec.of(ev.EpochEnd) if e.phase == "vae"], "the VAE was not retrained"
    # Loading is a phase of its own on screen: named while Keras builds the model, never "data" still.
    phases = [(e.phase, e.detail) for e in rec.of(ev.PhaseStarted)]
    assert phases[1][0] == "vae" and phases[1][1].startswith("loading the VAE trained earlier")
    assert again.summary["vae"]["mig"] == pytest.approx(result.summary["vae"]["mig"])


def test_same_seed_reproduces_the_run(finished_run, tmp_path):
    config, result, _ = finished_run
    again = Engine().run(config.model_copy(update={"runs_dir": str(tmp_path)}))
    for key in ("dead@0", "l0", "mse", "mig", "explained_variance"):
        assert again.summary["final"][key] == pytest.approx(result.summary["final"][key], rel=1e-5), key


def test_sweep_trains_its_vae_once(tmp_path):
    rec = Recorder()
    runs = expand(tiny_config(tmp_path, sweep={"sae.k": [6, 2]}, sae={"epochs": 1}))
    results = run_sweep(runs, [rec])
    assert [r.status for r in results] == ["ok", "ok"]
    assert len([e for e in rec.of(ev.EpochEnd) if e.phase == "vae"]) == 1
    assert [r.summary["final"]["l0"] <= k for r, k in zip(results, (6, 2))] == [True, True]
    assert len(store.list_runs(tmp_path / "runs")) == 2


def test_seeds_with_one_vae_seed_share_the_vae_and_data_and_differ_in_their_saes(tmp_path):
    """vae.seed fixes the data draw and the VAE: two seeds train their SAEs on the same codes, so the
    results can match their features across seeds (not applicable when each seed has its own VAE)."""
    rec = Recorder()
    runs = expand(tiny_config(tmp_path, sweep={"seed": [3, 4]}, vae={"seed": 3}, sae={"epochs": 2}))
    results = run_sweep(runs, [rec])
    assert [r.status for r in results] == ["ok", "ok"]
    assert len([e for e in rec.of(ev.EpochEnd) if e.phase == "vae"]) == 1  # one VAE, trained once
    one, two = (r.summary for r in results)
    assert one["vae_model"] == two["vae_model"] and one["vae"] == two["vae"]
    assert one["final"]["mse"] != two["final"]["mse"]  # the SAEs' own seeds differ
    (started,) = rec.of(ev.SweepStarted)
    text = (store.load_sweep(started.sweep_dir).path / "results.md").read_text()
    (line,) = [x for x in text.split("## Feature survival")[1].splitlines() if x.startswith("| dsprites")]
    across, pairs = [c.strip() for c in line.strip("|").split("|")][-2:]
    assert pairs == "1" and 0.0 <= float(across) <= 100.0
    # Each seed its own VAE (the default): the baseline does not apply, and says so.
    apart = Recorder()
    results = run_sweep(expand(tiny_config(tmp_path / "apart", sweep={"seed": [3, 4]}, sae={"epochs": 2})), [apart])
    assert results[0].summary["vae_model"] != results[1].summary["vae_model"]
    (started,) = apart.of(ev.SweepStarted)
    assert "n/a (inputs differ)" in (store.load_sweep(started.sweep_dir).path / "results.md").read_text()


def test_stop_event_ends_the_run_cleanly_keeping_measurements(tmp_path):
    stop = threading.Event()

    def stopper(event):
        if isinstance(event, ev.EpochEnd) and event.phase == "sae" and event.epoch == 1:
            stop.set()

    config = validate(tiny_config(tmp_path, sae={"epochs": 50}))
    result = Engine(stop).run(config, [stopper])
    assert result.status == "stopped"
    record = store.load_run(result.run_dir)
    assert record.status == "stopped" and record.summary["sae_epochs"] < 50
    assert "dead@0" in record.summary["final"], "the model as stopped is evaluated"
    assert (result.run_dir / "sae.keras").exists()
    assert isinstance(list(store.iter_events(result.run_dir))[-1], ev.RunFinished)


def test_keyboard_interrupt_marks_the_run_stopped(tmp_path):
    def interrupt(event):
        if isinstance(event, ev.EpochEnd) and event.phase == "vae":
            raise KeyboardInterrupt

    result = Engine().run(validate(tiny_config(tmp_path)), [interrupt])
    assert result.status == "stopped" and result.interrupted
    assert store.load_run(result.run_dir).status == "stopped"


@pytest.mark.parametrize("where", ["vae", "sae_member"])
def test_an_error_raised_once_a_stop_was_asked_for_stops_the_run_rather_than_failing_it(tmp_path, monkeypatch,
                                                                                        where):
    # A stop signal that lands inside a framework's callback comes back as the framework's own error
    # (TensorFlow wraps it); with the stop event set, that is the stop, not a broken run.
    from collapse_tui.engine import sae_phase, vae_phase

    stop = threading.Event()

    def wrapped_stop(*args, **kwargs):
        stop.set()
        raise RuntimeError("UnknownError: KeyboardInterrupt in a py_function")

    if where == "vae":
        monkeypatch.setattr(vae_phase.VAEPhase, "model", wrapped_stop)
    else:
        monkeypatch.setattr(sae_phase.SAEPhase, "prepare", wrapped_stop)
    result = Engine(stop).run(validate(tiny_config(tmp_path)))
    assert result.status == "stopped" and not result.interrupted
    assert store.load_run(result.run_dir).status == "stopped"


def test_the_same_error_without_a_stop_fails_the_run(tmp_path, monkeypatch):
    from collapse_tui.engine import sae_phase

    def broken(*args, **kwargs):
        raise RuntimeError("a real failure")

    monkeypatch.setattr(sae_phase.SAEPhase, "prepare", broken)
    result = Engine().run(validate(tiny_config(tmp_path)))
    assert result.status == "failed" and "a real failure" in result.summary["reason"]


def test_failure_is_recorded_with_its_reason(tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the models directory should be")
    result = Engine().run(validate(tiny_config(tmp_path)))
    assert result.status == "failed"
    record = store.load_run(result.run_dir)
    assert record.status == "failed" and record.summary["reason"]
    last = list(store.iter_events(result.run_dir))[-1]
    assert isinstance(last, ev.RunFailed) and "Traceback" in last.traceback


def test_a_broken_listener_is_detached_not_fatal(tmp_path):
    def broken(event):
        raise RuntimeError("display went away")

    result = Engine().run(validate(tiny_config(tmp_path, sae={"epochs": 1})), [broken])
    assert result.status == "ok"
    texts = [e.text for e in store.iter_events(result.run_dir) if isinstance(e, ev.Message)]
    assert any("detached" in t for t in texts)


def test_shapes3d_runs_end_to_end_on_rgb_images(tmp_path):
    rec = Recorder()
    config = validate(tiny_config(tmp_path, data={"dataset": "shapes3d", "n_train": 64}, sae={"epochs": 1}))
    result = Engine().run(config, [rec])
    assert result.status == "ok", result.summary.get("reason")
    assert result.summary["data"]["dataset"] == "shapes3d"
    vae_eval = [e for e in rec.of(ev.Evaluation) if e.phase == "vae"][0].metrics
    assert vae_eval["factors"] == ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"]
    final = [e for e in rec.of(ev.Evaluation) if e.phase == "sae"][-1].metrics
    assert np.array(final["nmi"]).shape == (24, 6)
    # RGB pixels are scaled to [0, 1] for the Bernoulli loss: a per-image BCE of 64*64*3 values at most ln 2 each
    # for an untrained decoder, never the thousands that unscaled 0-255 targets would give.
    assert 0 < vae_eval["bce"] < 64 * 64 * 3 * 1.0


def test_engine_keeps_the_newest_datasets_vaes_and_codes_within_bounds(monkeypatch):
    from collapse_tui.engine import memory

    monkeypatch.setattr(memory, "KEEP", 2)
    cache = {}
    for key in ("dsprites", "shapes3d", "dsprites", "other"):
        memory.keep(cache, key, key.upper())
    # "dsprites" was used again after "shapes3d", so "shapes3d" is the one dropped.
    assert list(cache) == ["dsprites", "other"] and cache["dsprites"] == "DSPRITES"
    # With sizes, the oldest go while the total is over budget; the newest stays even if alone too big.
    sized = {}
    for key, nbytes in (("a", 4), ("b", 4), ("c", 3)):
        memory.keep(sized, key, nbytes, size=lambda v: v, budget=8)
    assert list(sized) == ["b", "c"]
    memory.keep(sized, "huge", 100, size=lambda v: v, budget=8)
    assert list(sized) == ["huge"]


@pytest.mark.parametrize("kwargs, marks", [
    ({"total_epochs": 10, "every": 5}, {5}),  # 10 is the end: the phase evaluates it itself
    ({"total_epochs": 10, "every": 3}, {3, 6, 9}),
    ({"total_epochs": 10, "every": 0}, set()),
    ({"total_epochs": 10, "every": 5, "before_sparsification": True}, {1, 5}),
    ({"total_epochs": 30, "every": 0, "before_extension": 20}, {20}),
    ({"total_epochs": 30, "every": 10, "before_sparsification": True, "before_extension": 20}, {1, 10, 20}),
    ({"total_epochs": 1, "every": 1, "before_sparsification": True}, set()),
])
def test_evaluation_marks_are_the_epochs_asked_for_but_the_last(kwargs, marks):
    from collapse_tui.engine.sae_phase import evaluation_marks

    assert evaluation_marks(**kwargs) == marks


def test_a_run_with_a_schedule_and_extension_is_measured_at_its_marks(tmp_path):
    # 2 scheduled + 2 extended epochs, eval.every 3: the first epoch (before sparsification), the end of
    # the schedule (before extension), epoch 3, then the final evaluation at 4.
    rec = Recorder()
    config = validate(tiny_config(tmp_path, eval={"every": 3},
                                  sae={"epochs": 2, "extended_epochs": 2,
                                       "schedule": {"kind": "linear", "start": 12, "epochs": 2}}))
    result = Engine().run(config, [rec])
    assert result.status == "ok", result.summary.get("reason")
    assert [e.epoch for e in rec.of(ev.Evaluation) if e.phase == "sae"] == [1, 2, 3, 4]
    final = result.summary["final"]
    first, before_extension = [e.metrics for e in rec.of(ev.Evaluation) if e.phase == "sae"][:2]
    assert final["dead_before_sparsification"] == first["dead_fraction"]
    assert final["specialized_before_sparsification"] == first["specialized"]
    assert final["dead_before_extension"] == before_extension["dead_fraction"]
    assert "bce" in final and "bce" not in first  # only the final evaluation decodes the images
    # 96 codes in batches of 32: 3 updates an epoch; k = 12 for the first epoch, then 4 for three.
    assert result.summary["updates_by_sparsity"] == {"12": 3, "4": 9} and final["updates"] == 12
    evals = [e.metrics for e in rec.of(ev.Evaluation) if e.phase == "sae"]
    assert [m["updates"] for m in evals] == [3, 6, 9, 12]
    # The last 20% of the 12 updates starts after update 9.6: measured from the evaluation at 9.
    assert final["dead_change_last_20pct"] == pytest.approx(evals[3]["dead_fraction"] - evals[2]["dead_fraction"])
    # The slope against ln(updates) over the second half (6 updates on), all at the final k = 4: the
    # marks at 6, 9 and 12, fitted by least squares here from the run's own evaluations.
    assert [m["sparsity"] for m in evals] == [12, 4, 4, 4]
    x = np.log([6.0, 9.0, 12.0])
    y = np.array([m["dead_fraction"] for m in evals[1:]])
    slope = float(np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2))
    assert final["dead_slope_marks"] == 3 and final["dead_slope_per_efold"] == pytest.approx(slope, abs=1e-12)
    # The whole curve, marks before the final sparsity included, in the event and in summary.json.
    curve = [[m["updates"], m["dead_fraction"]] for m in evals]
    assert evals[3]["dead_curve"] == curve and store.load_run(result.run_dir).summary["final"]["dead_curve"] == curve


def test_summary_json_keeps_the_keys_readers_know(finished_run):
    _, result, _ = finished_run
    on_disk = store.load_run(result.run_dir).summary
    # Every key older readers know, in their order, and the updates spent at each sparsity.
    assert list(on_disk) == [
        "status", "run_id", "name", "dataset", "method", "sparsity", "n_neurons", "source", "remedies",
        "resampled", "started", "finished", "seconds", "durations", "sae_epochs", "updates_by_sparsity",
        "evaluated_at_epoch", "final", "vae", "vae_model", "data"]
    # reason, flags and resumed are written only when the run has them.
    assert list(on_disk) == [f for f in store.RunSummary.__dataclass_fields__ if f not in ("reason", "flags", "resumed")]
    assert on_disk["sae_epochs"] == 2 and on_disk["evaluated_at_epoch"] == 2 and on_disk["method"] == "topk"


def test_a_sweep_announces_its_directory_and_records_its_runs_there(tmp_path):
    rec = Recorder()
    runs = expand(tiny_config(tmp_path, sweep={"sae.k": [6, 2]}, sae={"epochs": 1}))
    results = run_sweep(runs, [rec], config_path="sweep.yaml")
    (started,) = [e for e in rec.events if isinstance(e, ev.SweepStarted)]
    assert rec.events[0] is started and started.n_runs == 2 and started.name == "tiny"
    sweep = store.load_sweep(started.sweep_dir)
    assert (sweep.name, sweep.config, sweep.n_runs) == ("tiny", "sweep.yaml", 2)
    assert [p.name for p in sweep.runs] == [r.run_dir.name for r in results]
    assert "| dsprites | topk | none | k=2 |" in (sweep.path / "results.md").read_text()
    # One run alone is no sweep: no directory, no announcement.
    lone = Recorder()
    run_sweep(expand(tiny_config(tmp_path / "lone", sae={"epochs": 1})), [lone])
    assert not lone.of(ev.SweepStarted) and not (tmp_path / "lone" / "runs" / "sweeps").exists()


@pytest.mark.parametrize("history, expected", [
    # (updates, sparsity, dead): the change since the latest evaluation at or before 80% of the updates
    ([(100, 50, 0.10), (400, 50, 0.20), (800, 50, 0.30), (1000, 50, 0.32)], 0.32 - 0.30),
    ([(100, 50, 0.10), (500, 50, 0.20), (900, 50, 0.25), (1000, 50, 0.26)], 0.26 - 0.20),
    # the evaluation at 80% was still sparsifying: no plateau measured
    ([(100, 250, 0.0), (800, 100, 0.05), (1000, 50, 0.2)], None),
    ([(1000, 50, 0.2)], None),
    ([], None),
    # an L1 coefficient read back from float32 is still the final value
    ([(500, 0.029999999329447746, 0.4), (1000, 0.029999999329447746, 0.41)], 0.41 - 0.4),
])
def test_dead_change_over_the_last_fifth_of_training(history, expected):
    from collapse_tui.engine.sae_phase import dead_change

    final = 0.03 if history and history[-1][1] < 1 else 50
    got = dead_change(history, final)
    assert got == (None if expected is None else pytest.approx(expected))


def _final_numbers(result):
    return {k: v for k, v in result.summary["final"].items() if isinstance(v, (int, float))}


def _step_losses(run_dir) -> dict[int, float]:
    """The SAE phase's per-step loss points of a run: steps done -> mean loss since the point before."""
    return {e.done: e.logs["loss"] for e in store.read_events(run_dir)[0]
            if isinstance(e, ev.Progress) and e.phase == "sae" and e.logs}


def test_a_sweeps_runs_train_in_banks_exactly_as_they_would_alone(tmp_path, monkeypatch):
    from collapse_tui.engine import callbacks, evaluation

    monkeypatch.setattr(callbacks, "PROGRESS_INTERVAL", 0.0)  # a progress event, with step means, per call
    # Every evaluation is handed the codes and reconstruction the bank computed for all its members in
    # one pass: they are the run's own SAE's (after resampling, where it resampled).
    evaluate_sae, handed = evaluation.evaluate_sae, []

    def checked(sae, codes, *args, acts=None, recon=None, **kwargs):
        np.testing.assert_allclose(acts, sae.codes(codes), atol=1e-5)
        np.testing.assert_allclose(recon, sae.reconstruct(codes), atol=1e-5)
        handed.append(len(codes))
        return evaluate_sae(sae, codes, *args, acts=acts, recon=recon, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_sae", checked)
    # Two seeds (two VAEs, two tables of codes), two k, AuxK in one run with an evaluation mark only it
    # has, resampling in another: six runs, two banks (the AuxK run's own: bank_key keeps runs with and
    # without AuxK apart); then the same sweep with every SAE alone.
    models = str(tmp_path / "models")
    sweep = [{"seed": [3, 4], "sae.k": [4, 8]}, {"sae.remedies.auxk": [True], "eval.every": [1]},
             {"sae.remedies.resample_epochs": [[1, 2]], "sae.remedies.dead_steps": [1]}]

    def run(bank_size, where):
        config = tiny_config(tmp_path / where, models_dir=models, bank_size=bank_size, sweep=sweep,
                             sae={"epochs": 2, "extended_epochs": 1}, eval={"every": 0})
        rec = Recorder()
        return run_sweep(expand(config), [rec]), rec

    banked, rec = run(16, "banked")
    alone, _ = run(1, "alone")
    assert [r.status for r in banked] == ["ok"] * 6 and [r.status for r in alone] == ["ok"] * 6
    # The first bank: its five runs started before any SAE trained; every event names its run.
    kinds = [(type(e).__name__, e.run_id) for e in rec.events if not isinstance(e, ev.SweepStarted)]
    first_epoch = next(i for i, e in enumerate(rec.events) if isinstance(e, ev.EpochEnd) and e.phase == "sae")
    assert len([e for e in rec.events[:first_epoch] if isinstance(e, ev.RunStarted)]) == 5
    assert all(run_id for _, run_id in kinds)
    assert max(r.summary["resampled"] for r in banked) > 0  # the resampling run did resample, in the bank
    by_name = {r.summary["name"]: r for r in alone}
    for result in banked:
        twin = by_name[result.summary["name"]]
        ours, theirs = _final_numbers(result), _final_numbers(twin)
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-5), (result.summary["name"], key)
        assert result.summary["updates_by_sparsity"] == twin.summary["updates_by_sparsity"]
        assert result.summary["resampled"] == twin.summary["resampled"]
        # Each run's SAE is a standalone file, equal to the lone run's.
        mine = keras.saving.load_model(result.run_dir / store.SAE_FILE)
        other = keras.saving.load_model(twin.run_dir / store.SAE_FILE)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(mine.W_dec), keras.ops.convert_to_numpy(other.W_dec),
                                   atol=1e-5)
        # Its per-step curve too: the same means over the same steps (on TensorFlow a call runs 32 steps,
        # more than a tiny epoch has, so there are none there).
        ours, theirs = _step_losses(result.run_dir), _step_losses(twin.run_dir)
        assert ours.keys() == theirs.keys()
        assert list(ours.values()) == pytest.approx(list(theirs.values()), rel=1e-4, abs=1e-5)
        assert ours or keras.backend.backend() == "tensorflow"
    # The run with eval.every 1 was evaluated after each of the 3 epochs, the others at the end of the
    # schedule (before extension) and at the end.
    counts = {r.summary["name"]: len([e for e in store.read_events(r.run_dir)[0]
                                      if isinstance(e, ev.Evaluation) and e.phase == "sae"]) for r in banked}
    assert sorted(counts.values()) == [2, 2, 2, 2, 2, 3]
    assert len(handed) == 2 * sum(counts.values())  # each evaluation, banked and alone


def test_a_member_that_fails_fails_alone(tmp_path, monkeypatch):
    from collapse_tui.engine import sae_phase

    prepare = sae_phase.SAEPhase.prepare

    def poisoned(self):
        prepare(self)
        if self.cfg.sae.k == 8:  # this run's weights turn to NaN before training
            w = keras.ops.convert_to_numpy(self.sae.W_enc).copy()
            w[:] = np.nan
            self.sae.W_enc.assign(w)

    monkeypatch.setattr(sae_phase.SAEPhase, "prepare", poisoned)
    config = tiny_config(tmp_path, sweep={"sae.k": [4, 8]}, sae={"epochs": 2})
    results = run_sweep(expand(config))
    status = {r.summary["name"]: (r.status, r.summary.get("reason")) for r in results}
    assert status["tiny-k4"] == ("ok", None)
    assert status["tiny-k8"][0] == "failed" and "diverged" in status["tiny-k8"][1]
    assert store.load_run(results[1].run_dir).summary["status"] == "failed"


def test_a_failed_evaluation_pass_of_the_bank_leaves_its_members_to_evaluate_alone(tmp_path, monkeypatch):
    from collapse_tui.nn.sae_bank import SAEBank

    member_outputs = SAEBank.member_outputs

    def failing(self, inputs, **kwargs):  # the first member's outputs, then the pass fails
        yield next(member_outputs(self, inputs, **kwargs))
        raise RuntimeError("out of memory")

    monkeypatch.setattr(SAEBank, "member_outputs", failing)
    config = tiny_config(tmp_path, sweep={"sae.k": [4, 8]}, sae={"epochs": 2}, eval={"every": 1})
    results = run_sweep(expand(config))
    assert [r.status for r in results] == ["ok", "ok"]
    for result, k, told in zip(results, (4, 8), (False, True)):
        events = store.read_events(result.run_dir)[0]
        texts = [e.text for e in events if isinstance(e, ev.Message)]
        assert any("evaluation pass failed (RuntimeError: out of memory)" in t for t in texts) is told
        # evaluated after both epochs all the same, by its own SAE where the pass failed
        evaluations = [e.metrics for e in events if isinstance(e, ev.Evaluation) and e.phase == "sae"]
        assert len(evaluations) == 2 and 0 < evaluations[-1]["l0"] <= k + 1e-9


def test_every_sae_epoch_logs_the_neurons_dead_in_training(finished_run):
    # 96 codes in batches of 32: 3 steps an epoch. A neuron idle for 3 steps fired on none of the epoch's
    # training inputs; the last epoch's count is the saved SAE's idle streaks at or above 3.
    config, result, rec = finished_run
    epochs = [e for e in rec.of(ev.EpochEnd) if e.phase == "sae"]
    values = [e.logs["dead_in_training"] for e in epochs]
    assert len(values) == config.sae.epochs and all(0.0 <= v <= 1.0 for v in values)
    sae = keras.saving.load_model(result.run_dir / store.SAE_FILE)
    idle = keras.ops.convert_to_numpy(sae.idle_steps)
    assert values[-1] == pytest.approx(float((idle >= 3).mean()))


def test_the_final_evaluation_writes_each_neurons_profile(finished_run):
    # The profiles agree with the run's own evaluation and with its saved SAE on its evaluation set.
    config, result, rec = finished_run
    profiles = store.read_neurons(result.run_dir)
    final = result.summary["final"]
    n_neurons, n_eval = config.sae.n_neurons, config.eval.n_samples
    assert profiles["frequency"].shape == (n_neurons,) and profiles["top_examples"].shape == (n_neurons, 16)
    assert profiles["eval_indices"].shape == (n_eval,) and len(set(profiles["eval_indices"].tolist())) == n_eval
    assert profiles["factors"].tolist() == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    last = [e for e in rec.of(ev.Evaluation) if e.phase == "sae"][-1].metrics
    np.testing.assert_allclose(profiles["frequency"] * n_eval, last["fire_counts"])
    assert profiles["dead"].tolist() == last["dead_mask"]
    assert profiles["dead"].mean() == pytest.approx(final["dead_fraction"])
    np.testing.assert_allclose(profiles["nmi"], last["nmi"], atol=1e-4)
    # A dead neuron has no top examples; a live one's first is a row where it fired.
    assert (profiles["top_examples"][profiles["dead"]] == -1).all()
    live = np.flatnonzero(~profiles["dead"])
    assert (profiles["top_examples"][live, 0] >= 0).all() and (profiles["top_values"][live, 0] > 0).all()
    # One tuning curve per factor, over the values its evaluation samples take.
    assert {k for k in profiles if k.startswith("tuning/")} == {f"tuning/{f}" for f in profiles["factors"]}
    assert profiles["tuning/shape"].shape == (n_neurons, len(profiles["tuning_values/shape"]))
    # Each varied factor's every value has a best detector, whose AUROC the profile holds (the highest
    # of the values it is best at).
    for j, (best, neurons) in enumerate(zip(last["auroc_best_per_value"], last["auroc_best_neuron"])):
        if len(best) > 1:
            for a, i in zip(best, neurons):
                assert profiles["auroc"][i] >= a - 1e-6 and profiles["auroc_factor"][i] >= 0
    marked = ~np.isnan(profiles["auroc"])
    assert marked.any() and (profiles["auroc_value"][~marked] == -1).all()


def test_unreadable_neuron_profiles_are_a_clear_error(tmp_path):
    assert store.read_neurons(tmp_path) is None
    (tmp_path / store.NEURONS_FILE).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="unreadable neuron profiles"):
        store.read_neurons(tmp_path)


def test_torch_compiles_a_bank_planned_for_many_updates_unless_told_otherwise(monkeypatch):
    from collapse_tui.engine import bank_phase, torch_compile

    monkeypatch.delenv(torch_compile.TORCH_COMPILE_VARIABLE, raising=False)
    limit = bank_phase.TORCH_COMPILE_MIN_UPDATES
    on_torch = keras.backend.backend() == "torch"
    assert bank_phase.torch_compiles(limit) is on_torch
    assert bank_phase.torch_compiles(limit - 1) is False
    monkeypatch.setenv(torch_compile.TORCH_COMPILE_VARIABLE, "on")
    assert bank_phase.torch_compiles(10) is on_torch  # XLA compiles the other backends' steps anyway
    monkeypatch.setenv(torch_compile.TORCH_COMPILE_VARIABLE, " OFF ")
    assert bank_phase.torch_compiles(10 * limit) is False
    monkeypatch.setenv(torch_compile.TORCH_COMPILE_VARIABLE, "yes")
    with pytest.raises(ValueError, match="must be auto, on or off, got 'yes'"):
        bank_phase.torch_compiles(10)


def test_a_sweep_asked_to_stop_after_its_bank_ends_that_bank_and_starts_no_other(tmp_path):
    """Banks of one run: the first bank ends as it would (ok, every epoch), the second never starts, and
    the sweep's plan still holds it (a resume starts it)."""
    after = threading.Event()

    def asker(event):
        if isinstance(event, ev.EpochEnd) and event.phase == "sae" and event.epoch == 1:
            after.set()

    runs = expand(tiny_config(tmp_path, sweep={"sae.k": [6, 2]}, sae={"epochs": 2}, bank_size=1))
    results = run_sweep(runs, [asker], stop_after_bank=after)
    assert [r.status for r in results] == ["ok"] and results[0].summary["sae_epochs"] == 2
    (sweep_dir,) = (tmp_path / "runs" / "sweeps").iterdir()
    sweep = store.load_sweep(sweep_dir)
    assert sweep.n_runs == 2 and [p.name for p in sweep.runs] == [results[0].run_dir.name]
