"""Run directories with fixed, hand-made events (no training) for the TUI tests, and tests of how
the TUI folds events into what its panels show."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from collapse_tui import config as config_mod
from collapse_tui import events as ev
from collapse_tui.store import RunWriter

T0 = 1_790_000_000.0  # a fixed clock: screenshots must not change from one test run to the next
ENVIRONMENT = {"collapse_tui": "0.1.0", "backend": "tensorflow", "device": "CPU", "keras": "3.15.1"}
FACTORS = ["shape", "scale", "orientation", "pos_x", "pos_y"]
THRESHOLDS = [0.0, 1e-6, 1e-3, 1e-2]


def run_config(tmp_path: Path, name: str, method: str, sparsity: float, epochs: int, n_neurons: int) -> dict:
    sae = {"n_neurons": n_neurons, "method": method, "epochs": epochs}
    sae["k" if method == "topk" else "l1_coefficient"] = int(sparsity) if method == "topk" else sparsity
    data = {"name": name, "seed": 3, "runs_dir": str(tmp_path / "runs"), "models_dir": str(tmp_path / "models"),
            "data": {"n_train": 96}, "vae": {"epochs": 3}, "sae": sae,
            "eval": {"n_samples": 64, "every": 1, "thresholds": THRESHOLDS}}
    return config_mod.validate(data).to_dict()


def sae_metrics(epoch: int, epochs: int, n_neurons: int, dead_final: float, sparsity: float, mig: float) -> dict:
    """Deterministic metrics of one SAE evaluation: the dead fraction grows towards ``dead_final``."""
    progress = epoch / epochs
    dead_fraction = round(dead_final * progress, 4)
    n_dead = round(dead_fraction * n_neurons)
    nmi, best, mask = [], [], []
    for i in range(n_neurons):
        if i >= n_neurons - n_dead:
            nmi.append([0.0] * len(FACTORS))
            best.append(0)
            mask.append(False)
            continue
        row = [round(0.05 + 0.6 * ((i * 7 + j * 3) % 11) / 11 * (0.5 + progress / 2), 4) for j in range(len(FACTORS))]
        nmi.append(row)
        best.append(max(range(len(FACTORS)), key=lambda j: row[j]))
        mask.append(max(row) >= 0.3)
    counts = [0] * 20
    for i in range(n_neurons - n_dead):
        counts[10 + (i * 5) % 9] += 1
    dead = {f"dead@{t:g}": round(min(1.0, dead_fraction + 0.02 * k), 4) for k, t in enumerate(THRESHOLDS)}
    return {**dead, "dead_fraction": dead_fraction, "n_neurons": n_neurons,
            "l0": round(sparsity * (1 - 0.1 * progress), 3) if sparsity >= 1 else round(40 * (1 - progress / 2), 3),
            "mse": round(0.002 / (1 + epoch), 6), "explained_variance": round(0.9 + 0.01 * epoch, 4),
            "mig": round(mig * (0.6 + 0.4 * math.sin(epoch)), 4), "specialized": sum(mask),
            "density_histogram": {"counts": counts, "edges": [-5 + 0.25 * i for i in range(21)], "dead": n_dead},
            "nmi": nmi, "best_factor": best, "specialized_mask": mask, "sparsity": sparsity, "mig_vae": 0.0812}


def run_events(tmp_path: Path, run_dir: Path, name: str, method: str = "topk", sparsity: float = 8,
               epochs: int = 6, n_neurons: int = 40, dead_final: float = 0.4, mig: float = 0.05,
               status: str = "ok", upto: int | None = None) -> list[ev.Event]:
    """The events a run writes, at fixed times. ``status``: ok, stopped, failed (after 2 epochs) or
    running (no final event)."""
    cfg = run_config(tmp_path, name, method, sparsity, epochs, n_neurons)
    t = T0
    out: list[ev.Event] = [
        ev.RunStarted(run_id=run_dir.name, name=name, run_dir=str(run_dir), config=cfg,
                      environment=ENVIRONMENT, time=t),
        ev.PhaseStarted(phase="data", detail="96 training + 64 evaluation images of dsprites", time=t + 0.1),
        ev.PhaseStarted(phase="vae", detail="training the VAE (beta=4)", epochs=3, steps_per_epoch=3, time=t + 0.2),
    ]
    for e in range(1, 4):
        out.append(ev.Progress(phase="vae", done=3 * e, total=9, epoch=e, time=t + e))
        out.append(ev.EpochEnd(phase="vae", epoch=e, epochs=3, logs={"loss": 3000.0 - 400 * e + 20 * e * e,
                                                                   "reconstruction": 2900.0 - 380 * e, "kl": 5.0 * e},
                               seconds=1.0, time=t + e + 0.01))
    vae_nmi = [[round(0.1 + 0.05 * ((i + j) % 4), 4) for j in range(5)] for i in range(10)]
    out.append(ev.Evaluation(phase="vae", epoch=0, metrics={"mig": 0.0812, "bce": 2800.5, "active_latents": 4,
                                                            "nmi": vae_nmi, "factors": FACTORS}, time=t + 4))
    out.append(ev.PhaseStarted(phase="sae", detail=f"training the SAE ({method}, {n_neurons} neurons)",
                               epochs=epochs, steps_per_epoch=3, time=t + 5))
    last = epochs if status != "failed" else 2
    final = {}
    for e in range(1, last + 1):
        tt = t + 5 + e
        for step in (1, 2, 3):  # the per-step curve's points: each the mean over the steps since the last
            x = e - 1 + step / 3
            out.append(ev.Progress(phase="sae", done=3 * (e - 1) + step, total=3 * epochs, epoch=e, time=tt - 1 + step / 3,
                                   logs={"loss": round(0.01 / x + 0.001, 6), "reconstruction": round(0.01 / x, 6)}))
        out.append(ev.EpochEnd(phase="sae", epoch=e, epochs=epochs,
                               logs={"loss": round(0.01 / e + 0.001, 6), "reconstruction": round(0.01 / e, 6),
                                     "sparsity_loss": 0.001, "l0": float(sparsity),
                                     "dead_in_training": round(dead_final * e / epochs, 4)},
                               seconds=0.5, sparsity=float(sparsity), time=tt + 0.01))
        final = sae_metrics(e, epochs, n_neurons, dead_final, float(sparsity), mig)
        out.append(ev.Evaluation(phase="sae", epoch=e, metrics=final, time=tt + 0.02))
    summary = {"status": status, "run_id": run_dir.name, "name": name, "dataset": "dsprites", "method": method,
               "sparsity": float(sparsity), "n_neurons": n_neurons, "started": t, "finished": t + 20,
               "seconds": 20.0, "final": {k: v for k, v in final.items()
                                          if k not in ("nmi", "best_factor", "specialized_mask", "density_histogram")},
               "vae": {"mig": 0.0812, "bce": 2800.5}}
    if status in ("ok", "stopped"):
        out.append(ev.RunFinished(status=status, summary=summary, time=t + 20))
    elif status == "failed":
        out.append(ev.RunFailed(reason="RuntimeError: loss is NaN", summary=summary, time=t + 20))
    return out[:upto] if upto is not None else out


def make_run(tmp_path: Path, name: str, stamp: str = "20260101-120000", **kwargs) -> Path:
    """Write a whole fixture run directory ``runs/<stamp>-<name>`` and return its path."""
    run_dir = tmp_path / "runs" / f"{stamp}-{name}"
    run_dir.mkdir(parents=True)
    writer = RunWriter(run_dir)
    for event in run_events(tmp_path, run_dir, name, **kwargs):
        writer(event)
    writer.close()
    return run_dir


def make_runs(tmp_path: Path) -> dict[str, Path]:
    """Four runs and one unreadable directory: what the runs and compare screens are tested on."""
    runs = {
        "k8": make_run(tmp_path, "quick-topk-k8", "20260101-120000", method="topk", sparsity=8, dead_final=0.1,
                       mig=0.03),
        "k2": make_run(tmp_path, "quick-topk-k2", "20260101-120100", method="topk", sparsity=2, dead_final=0.5,
                       mig=0.02),
        "l1": make_run(tmp_path, "quick-l1-lam0.3", "20260101-120200", method="l1", sparsity=0.3, dead_final=0.7,
                       mig=0.01),
        "failed": make_run(tmp_path, "quick-l1-lam9", "20260101-120300", method="l1", sparsity=9.0, status="failed"),
    }
    broken = tmp_path / "runs" / "20260101-120400-broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("name: [unclosed\n")
    runs["broken"] = broken
    return runs


# --------------------------------------------------------------------------- folding events


def test_run_state_folds_a_whole_run(tmp_path):
    from collapse_tui.tui.state import RunState, dead_neurons

    run_dir = tmp_path / "runs" / "r"
    state = RunState()
    for event in run_events(tmp_path, run_dir, "r", epochs=4, n_neurons=10, dead_final=0.5):
        state.apply(event)
    assert state.status == "ok" and state.finished
    assert [e for e, _ in state.vae_loss] == [1, 2, 3]
    assert state.vae_loss[0][1] == pytest.approx(3000 - 400 + 20)
    assert [e for e, _ in state.sae_loss] == [1, 2, 3, 4]
    # Every term of the loss is kept per epoch; l0 is a statistic, not a loss term.
    assert sorted(state.vae_terms) == ["kl", "loss", "reconstruction"]
    assert state.vae_terms["kl"] == [(1, 5.0), (2, 10.0), (3, 15.0)]
    assert sorted(state.sae_terms) == ["loss", "reconstruction", "sparsity_loss"]
    assert state.sae_terms["reconstruction"][1] == (2, 0.005)
    assert state.thresholds == THRESHOLDS
    # dead_final 0.5 reached linearly over 4 epochs; the next threshold reads 2 points higher.
    assert state.dead_series(0.0) == [(1, 0.125), (2, 0.25), (3, 0.375), (4, 0.5)]
    assert state.dead_series(1e-6)[-1] == (4, 0.52)
    assert state.sparsity == 8.0 and state.method == "topk"
    # 5 of 10 neurons dead at the end: their NMI rows are all zero.
    assert dead_neurons(state.latest) == [False] * 5 + [True] * 5
    assert state.vae_metrics["factors"] == FACTORS


def test_loss_panel_draws_each_term_and_skips_one_that_is_always_zero():
    from collapse_tui.tui.screens.run import loss_series

    terms = {"kl": [(1, 5.0), (2, 4.0)], "loss": [(1, 9.0), (2, 7.0)], "reconstruction": [(1, 4.0), (2, 3.0)],
             "sparsity_loss": [(1, 0.0), (2, 0.0)]}
    series = loss_series(terms)
    assert [s.label for s in series] == ["loss", "reconstruction", "KL"]  # fixed order, not the logs' order
    assert list(series[2].xs) == [1, 2] and list(series[2].ys) == [5.0, 4.0]
    assert len({s.color for s in series}) == 3
    terms["sparsity_loss"][1] = (2, 0.5)
    assert [s.label for s in loss_series(terms)][-1] == "sparsity"
    assert loss_series({}) == []
    # Top-k: the loss is its reconstruction; one line, whose legend says so.
    topk = {"loss": [(1, 3.0), (2, 2.0)], "reconstruction": [(1, 3.0), (2, 2.0)], "sparsity_loss": [(1, 0.0), (2, 0.0)]}
    (only,) = loss_series(topk)
    assert only.label == "loss = reconstruction" and list(only.ys) == [3.0, 2.0]


def test_eta_from_progress_rate():
    from collapse_tui.tui.state import RunState

    state = RunState()
    state.apply(ev.PhaseStarted(phase="sae", epochs=10, steps_per_epoch=10, time=100.0))
    state.apply(ev.Progress(phase="sae", done=0, total=100, epoch=1, time=100.0))
    assert state.eta() is None  # no rate yet
    state.apply(ev.Progress(phase="sae", done=20, total=100, epoch=2, time=110.0))
    assert state.eta() == pytest.approx(40.0)  # 2 steps/s, 80 steps left
    assert state.eta(now=120.0) == pytest.approx(80.0)  # measured at a later clock: 1 step/s


def test_file_feed_reads_only_complete_lines(tmp_path):
    from collapse_tui.tui.state import FileFeed

    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    events = run_events(tmp_path, run_dir, "r", epochs=2, n_neurons=12)
    writer = RunWriter(run_dir)
    feed = FileFeed(run_dir)
    assert feed.poll() is False and feed.states == []
    for event in events[:4]:
        writer(event)
    # Half a line, as a writer caught mid-write leaves it: not an event yet.
    with open(run_dir / "events.jsonl", "a") as fh:
        fh.write('{"type": "progress", "pha')
    assert feed.poll() is True
    assert feed.current.name == "r" and feed.current.phase == "vae" and feed.running
    with open(run_dir / "events.jsonl", "a") as fh:
        fh.write('se": "vae", "done": 1, "total": 9, "time": 1.0}\n')
    assert feed.poll() is True and feed.current.done == 1
    for event in events[4:]:
        writer(event)
    feed.poll()
    assert feed.current.status == "ok" and not feed.running
    assert feed.poll() is False  # nothing new


def test_the_comparison_leaves_out_settings_a_run_does_not_use(tmp_path):
    from collapse_tui.store import load_run
    from collapse_tui.tui.runs_table import UNUSED, config_rows, load_compared

    runs = make_runs(tmp_path)
    compared = load_compared([load_run(runs["k2"]), load_run(runs["l1"])])
    differing = dict(config_rows(compared))
    # Top-k at k = 2 against L1 at λ = 0.3: the method differs; k (unused by L1) and λ (unused by
    # Top-k) each have one run using them, so neither is a difference.
    assert differing["sae.method"] == ["topk", "l1"]
    assert "sae.k" not in differing and "sae.l1_coefficient" not in differing
    every = dict(config_rows(compared, only_differing=False))
    assert every["sae.k"] == ["2", UNUSED] and every["sae.l1_coefficient"] == [UNUSED, "0.3"]
    assert every["sae.remedies.auxk_k"] == [UNUSED, UNUSED]  # AuxK is off in both


def test_the_run_head_says_the_phase_in_few_words():
    from collapse_tui.tui.screens.run import phase_text
    from collapse_tui.tui.state import RunState

    state = RunState()
    assert phase_text(state) == ""
    state.apply(ev.PhaseStarted(phase="sae", detail="training the SAE (topk, 500 neurons)", epochs=10,
                                steps_per_epoch=3))
    state.apply(ev.Progress(phase="sae", done=7, total=30, epoch=3))
    assert phase_text(state) == "sae epoch 3/10 · topk, 500 neurons"
    state.apply(ev.PhaseStarted(phase="evaluate", detail="final evaluation"))
    assert phase_text(state).endswith("final evaluation")


def test_following_a_sweep_moves_on_to_its_next_run(tmp_path):
    from collapse_tui.engine.sweep import SweepRecorder
    from collapse_tui.tui.app import feed_for
    from collapse_tui.tui.state import FileFeed, SweepFeed

    recorder = SweepRecorder(tmp_path / "runs", "quick", n_runs=3)
    first = make_run(tmp_path, "quick-topk-k8", "20260101-120000", sparsity=8)
    recorder.add(first)
    second = make_run(tmp_path, "quick-topk-k2", "20260101-120100", sparsity=2, status="running")
    recorder.add(second)
    assert isinstance(feed_for(first), FileFeed)  # finished, and not the sweep's latest: itself
    assert isinstance(feed_for(recorder.path), SweepFeed)
    feed = feed_for(second)  # the latest run, still open: the sweep
    assert isinstance(feed, SweepFeed)
    feed.poll()
    assert [s.name for s in feed.states] == ["quick-topk-k8", "quick-topk-k2"] and feed.running
    assert feed.current.name == "quick-topk-k2" and not feed.current.finished and feed.n_planned == 3
    # The sweep starts its third run: the feed picks it up by itself, the view's latest run.
    third = make_run(tmp_path, "quick-l1-lam0.3", "20260101-120200", method="l1", sparsity=0.3)
    recorder.add(third)
    feed._listed = 0.0  # as if its second had passed
    feed.poll()
    assert feed.current.name == "quick-l1-lam0.3" and feed.current.finished
    assert feed.running  # the second run is still open


def test_the_sweep_eta_extrapolates_the_work_done():
    from collapse_tui.tui.state import EventFeed, RunState

    feed = EventFeed()
    feed.n_planned = 4
    first, second = RunState(), RunState()
    first.apply(ev.RunStarted(run_id="a", name="a", run_dir="a", config={}, environment={}, time=1000.0))
    first.apply(ev.RunFinished(status="ok", summary={}, time=1060.0))
    second.apply(ev.RunStarted(run_id="b", name="b", run_dir="b", config={}, environment={}, time=1060.0))
    second.apply(ev.PhaseStarted(phase="sae", epochs=2, steps_per_epoch=10, time=1070.0))
    second.apply(ev.Progress(phase="sae", done=10, total=20, epoch=1, time=1090.0))
    feed.states = [first, second]
    # 1.5 runs of 4 done in 100 s: 2.5 left, 100 * 2.5 / 1.5 seconds.
    assert feed.sweep_eta(now=1100.0) == pytest.approx(100 * 2.5 / 1.5)
    feed.n_planned = 1
    assert feed.sweep_eta(now=1100.0) is None  # one run: its phase ETA says it


def test_the_run_eta_spans_its_phases_from_the_run_before():
    from collapse_tui.tui.state import EventFeed, RunState

    feed = EventFeed()
    first, second = RunState(), RunState()
    # The first run: data 10 s, VAE 100 s, codes 5 s, SAE 40 s, final evaluation 15 s.
    first.apply(ev.RunStarted(run_id="a", name="a", run_dir="a", config={}, environment={}, time=0.0))
    for phase, start in [("data", 0.0), ("vae", 10.0), ("codes", 110.0), ("sae", 115.0), ("evaluate", 155.0)]:
        first.apply(ev.PhaseStarted(phase=phase, epochs=1, steps_per_epoch=10, time=start))
    feed.states = [first]
    assert first.phase_seconds == {"data": 10.0, "vae": 100.0, "codes": 5.0, "sae": 40.0}
    # While it runs nothing after its phase is known: its time left there is a lower bound.
    assert feed.run_eta(first) is None  # the evaluation reports no progress, and there is no run before
    first.apply(ev.RunFinished(status="ok", summary={}, time=170.0))
    assert first.phase_seconds["evaluate"] == 15.0 and feed.run_eta(first) is None  # over
    # The second run, in its SAE phase: 10 of 40 steps in 10 s leaves 30 s, then the 15-s evaluation.
    second.apply(ev.RunStarted(run_id="b", name="b", run_dir="b", config={}, environment={}, time=200.0))
    second.apply(ev.PhaseStarted(phase="sae", epochs=4, steps_per_epoch=10, time=200.0))
    second.apply(ev.Progress(phase="sae", done=0, total=40, epoch=1, time=200.0))
    second.apply(ev.Progress(phase="sae", done=10, total=40, epoch=1, time=210.0))
    feed.states = [first, second]
    assert feed.run_eta(second) == pytest.approx((45.0, False))
    assert feed.run_eta(second, now=214.0) == pytest.approx((41.0, False))  # the clock counts it down
    # Its final evaluation has no progress: it takes as long as the first run's did.
    second.apply(ev.PhaseStarted(phase="evaluate", time=250.0))
    assert feed.run_eta(second, now=256.0) == pytest.approx((9.0, False))
    # A lone run in its VAE phase: the phase's time left, and a bound, since more phases follow.
    lone = EventFeed()
    state = RunState()
    state.apply(ev.PhaseStarted(phase="vae", epochs=1, steps_per_epoch=100, time=0.0))
    state.apply(ev.Progress(phase="vae", done=0, total=100, epoch=1, time=0.0))
    state.apply(ev.Progress(phase="vae", done=50, total=100, epoch=1, time=25.0))
    lone.states = [state]
    assert lone.run_eta(state) == pytest.approx((25.0, True))


def add_neuron_profiles(run_dir: Path, n_neurons: int = 40, n_eval: int = 64) -> dict:
    """Give a fixture run the neurons.npz its final evaluation would write: profiles computed from
    made-up codes of procedural dSprites images (whose source the run's config then records)."""
    import numpy as np
    import yaml

    from collapse_tui.data import open_dataset
    from collapse_tui.metrics import decoder_neighbours, neuron_profiles
    from collapse_tui.store import write_neurons

    dataset = open_dataset("dsprites", source="procedural", cache=False)
    rng = np.random.default_rng(0)
    eval_indices = rng.choice(dataset.num_available, size=n_eval, replace=False).astype(np.int32)
    factors = dataset.index_to_factors(eval_indices)
    # Neuron i fires with the scale factor for i < 10, with pos_x for the next 10; the last 20 are dead.
    acts = np.zeros((n_eval, n_neurons), np.float32)
    for i in range(20):
        acts[:, i] = np.maximum(0, factors[:, 1 if i < 10 else 3] - (i % 5)) * (1 + i / 10)
    profiles = neuron_profiles(acts, factors)
    neighbours, cosines = decoder_neighbours(rng.normal(size=(n_neurons, 8)))
    dead = ~(acts > 0).any(axis=0)
    nmi = np.zeros((n_neurons, len(FACTORS)), np.float32)
    nmi[:10, 1], nmi[10:20, 3] = 0.4, 0.3
    arrays = {k: profiles[k] for k in ("frequency", "max_activation", "mean_activation", "top_examples", "top_values")}
    for name, tuning, values in zip(FACTORS, profiles["tuning"], profiles["tuning_values"]):
        arrays[f"tuning/{name}"], arrays[f"tuning_values/{name}"] = tuning, values
    # Neuron 0 the best detector of scale's value 2; no other the best of any value.
    auroc, auroc_factor, auroc_value = np.full(n_neurons, np.nan, np.float32), np.full(n_neurons, -1), np.full(n_neurons, -1)
    auroc[0], auroc_factor[0], auroc_value[0] = 0.9, 1, 2
    arrays.update(auroc=auroc, auroc_factor=auroc_factor, auroc_value=auroc_value)
    arrays.update(factors=np.asarray(FACTORS), eval_indices=eval_indices, nmi=nmi,
                  best_factor=nmi.argmax(axis=1), dead=dead, neighbours=neighbours, neighbour_cosines=cosines)
    write_neurons(run_dir, arrays)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["data_source"] = {"dataset": "dsprites", "source": "procedural"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return arrays
