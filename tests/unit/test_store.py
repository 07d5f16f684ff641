import json
import subprocess
import sys
import time

import numpy as np
import pytest

from collapse_tui import store
from collapse_tui import events as ev


def started(run_dir, name="r"):
    return ev.RunStarted(run_id=run_dir.name, name=name, run_dir=str(run_dir),
                         config={"name": name, "sae": {"k": 5}}, environment={"backend": "x"})


def test_run_dir_is_never_reused(tmp_path):
    now = time.time()
    a = store.create_run_dir(tmp_path, "quick", now=now)
    b = store.create_run_dir(tmp_path, "quick", now=now)
    c = store.create_run_dir(tmp_path, "quick", now=now)
    assert len({a, b, c}) == 3 and all(p.is_dir() for p in (a, b, c))
    assert b.name == a.name + "-2" and c.name == a.name + "-3"


def test_events_round_trip_through_jsonl(tmp_path):
    run_dir = store.create_run_dir(tmp_path, "r")
    writer = store.RunWriter(run_dir)
    sent = [
        started(run_dir),
        ev.PhaseStarted(phase="sae", detail="d", epochs=3, steps_per_epoch=10),
        ev.Progress(phase="sae", done=5, total=30, epoch=1),
        ev.EpochEnd(phase="sae", epoch=1, epochs=3, logs={"loss": 0.5}, seconds=0.1, sparsity=50.0),
        ev.Evaluation(phase="sae", epoch=1, metrics={"dead@0": np.float32(0.25), "nmi": np.zeros((2, 2))}),
        ev.RunFinished(status="ok", summary={"final": {"dead@0": 0.25}}),
    ]
    for e in sent:
        writer(e)
    back = list(store.iter_events(run_dir))
    assert [type(e) for e in back] == [type(e) for e in sent]
    assert back[3] == sent[3]
    assert back[4].metrics == {"dead@0": 0.25, "nmi": [[0.0, 0.0], [0.0, 0.0]]}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["final"]["dead@0"] == 0.25
    config = store.load_run(run_dir).config
    assert config["sae"]["k"] == 5 and config["environment"]["backend"] == "x"


def test_summary_says_running_until_the_end_and_failure_reason(tmp_path):
    run_dir = store.create_run_dir(tmp_path, "r")
    writer = store.RunWriter(run_dir)
    writer(started(run_dir))
    assert store.load_run(run_dir).status == "running"
    writer(ev.RunFailed(reason="ValueError: boom", summary={"final": {}}))
    rec = store.load_run(run_dir)
    assert rec.status == "failed" and rec.summary["reason"] == "ValueError: boom"


def test_non_finite_values_become_null(tmp_path):
    assert json.loads(store.dumps({"a": float("nan"), "b": [np.inf, 1.0]})) == {"a": None, "b": [None, 1.0]}


def test_read_events_leaves_partial_last_line_for_later(tmp_path):
    run_dir = store.create_run_dir(tmp_path, "r")
    path = run_dir / store.EVENTS_FILE
    line = store.dumps(ev.Message(text="hello").to_dict())
    path.write_text(line + "\n" + line[:10])
    events, offset = store.read_events(run_dir)
    assert [e.text for e in events] == ["hello"]
    with open(path, "a") as fh:
        fh.write(line[10:] + "\n")
    more, offset2 = store.read_events(run_dir, offset)
    assert [e.text for e in more] == ["hello"] and offset2 == path.stat().st_size
    assert store.read_events(run_dir, offset2) == ([], offset2)


def test_another_process_can_follow_a_run_as_it_is_written(tmp_path):
    run_dir = store.create_run_dir(tmp_path, "r")
    writer = store.RunWriter(run_dir)
    writer(started(run_dir))
    writer(ev.Message(text="one"))
    # The writer keeps its file open; a separate process must already see both lines (flushed).
    code = ("import sys; from collapse_tui import store; "
            "print(len(store.read_events(sys.argv[1])[0]))")
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"


def test_list_runs_skips_unreadable_with_a_warning(tmp_path):
    good = store.create_run_dir(tmp_path, "good")
    w = store.RunWriter(good)
    w(started(good, "good"))
    w(ev.RunFinished(status="ok", summary={}))
    bad = tmp_path / "20200101-000000-bad"
    bad.mkdir()
    (bad / "config.yaml").write_text("name: bad\n")
    (bad / "summary.json").write_text("{not json")
    with pytest.warns(UserWarning, match="summary.json"):
        runs = store.list_runs(tmp_path)
    assert [r.path for r in runs] == [good] and runs[0].status == "ok"
    both = store.list_runs(tmp_path, include_unreadable=True)
    assert {r.status for r in both} == {"ok", "unreadable"}
    assert store.list_runs(tmp_path / "missing") == []


def test_unknown_event_type_is_an_error():
    with pytest.raises(ValueError, match="unknown event type"):
        ev.event_from_dict({"type": "nope"})
    # Fields added by newer writers are ignored by older readers.
    e = ev.event_from_dict({"type": "message", "text": "x", "future_field": 1, "time": 1.0})
    assert e == ev.Message(text="x", time=1.0)


def test_every_event_type_round_trips_through_its_dict():
    examples = {
        ev.SweepStarted: ev.SweepStarted(name="s", sweep_dir="/x/sweeps/s", n_runs=3, time=2.0),
        ev.DataSource: ev.DataSource(provenance={"source": "procedural"}, time=2.0),
        ev.Message: ev.Message(text="hi", level="warning", time=2.0),
        ev.RunFailed: ev.RunFailed(reason="boom", traceback="tb", summary={"status": "failed"}, time=2.0),
    }
    for kind, event in examples.items():
        assert ev.EVENT_TYPES[kind.kind] is kind
        assert ev.event_from_dict(event.to_dict()) == event


def test_sweep_record_reads_back_what_the_writer_wrote(tmp_path):
    writer = store.SweepWriter(tmp_path / "runs", "study", config_path="/c.yaml", n_runs=3)
    assert writer.path.parent == tmp_path / "runs" / store.SWEEPS_DIR
    runs = [store.create_run_dir(tmp_path / "runs", f"study-{i}") for i in range(2)]
    for run in runs:
        writer.add(run)
    record = store.load_sweep(writer.path)
    assert (record.name, record.config, record.n_runs) == ("study", "/c.yaml", 3)
    assert record.runs == [r.resolve() for r in runs] and store.is_sweep_dir(writer.path)
    assert not store.is_sweep_dir(runs[0])
    # A run that could not be read is listed with its error, not dropped.
    assert [r.error is not None for r in writer.records()] == [True, True]


def test_a_file_lock_held_by_another_process_waits_until_it_is_released(tmp_path):
    from collapse_tui.store import file_lock

    lock = tmp_path / "models" / "vae-x.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from collapse_tui.store import file_lock\n"
        f"with file_lock({str(lock)!r}):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(1.5)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        waits = []
        start = time.monotonic()
        with file_lock(lock, waiting=lambda: waits.append(time.monotonic()), poll_seconds=0.05):
            waited = time.monotonic() - start  # it got the lock once the holder let go, 1.5 s on
        assert len(waits) >= 5 and waited > 0.5
    finally:
        holder.wait(timeout=30)
    # A waiting callback that raises gives up the wait (a stop asked for meanwhile).
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time\nfrom collapse_tui.store import file_lock\n"
        f"with file_lock({str(lock)!r}):\n    print('held', flush=True)\n    time.sleep(5)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"

        def give_up():
            raise TimeoutError("stop")

        with pytest.raises(TimeoutError):
            with file_lock(lock, waiting=give_up):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
