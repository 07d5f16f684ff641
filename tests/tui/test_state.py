"""How the TUI folds events into what its panels show, on hand-made runs."""

from __future__ import annotations

import pytest

from collapse_tui import events as ev
from collapse_tui.store import RunWriter
from tests.tui.support import FACTORS, THRESHOLDS, make_run, make_runs, run_events


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
    from collapse_tui.tui.feeds import FileFeed

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
    from collapse_tui.tui.feeds import FileFeed, SweepFeed

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
    from collapse_tui.tui.feeds import EventFeed
    from collapse_tui.tui.state import RunState

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
    from collapse_tui.tui.feeds import EventFeed
    from collapse_tui.tui.state import RunState

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
