"""A sweep directory's files damaged in any way (sweep.json, plan.json, runs.jsonl, resume.lock; any of
its files replaced by a FIFO, a symlink to /dev/zero or a directory) through every reader that opens
them: ``load_sweep`` and the sweep's records, ``--table``, ``--resume SWEEP`` planning, the recorder a
resumed sweep reopens, and the resume lock. Each reads what was written or refuses in one line naming
the file; none raises another exception, blocks, or lists a run the sweep did not record."""

from __future__ import annotations

import json
import os
import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from collapse_tui.store import LockHeld, layout, load_sweep, resume_locks, sweep_records
from tests.unit.damaged_store import (SEEDS, STOPPED_SEED, check_resume_readers, check_run_readers,
                                      check_table_readers, one_line, run_name, within)

EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SECONDS = 10  # a reader that has not returned by then is blocked (a FIFO) or reading without end


def damage_bytes(data, raw: bytes) -> bytes:
    """``raw`` cut short at any byte, or with one byte inverted (never valid UTF-8 again)."""
    if data.draw(st.booleans(), label="truncate"):
        return raw[:data.draw(st.integers(0, len(raw) - 1), label="length")]
    at = data.draw(st.integers(0, len(raw) - 1), label="flipped byte")
    return raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:]


TABLES = (layout.RESULTS_MD, layout.RESULTS_CSV, layout.PAIRED_CSV)


def reopen(sweep, name):
    """What ``--resume SWEEP`` does to the sweep's directory before training: its recorder reopened
    (sweep.json read, runs.jsonl read and appended to, the tables rewritten)."""
    from collapse_tui.engine.sweep import SweepRecorder

    try:
        SweepRecorder(sweep.parent.parent, "tiny", path=sweep)
    except ValueError as exc:
        one_line(str(exc), name)
    except OSError as exc:  # a table it cannot replace (a directory in its place): --resume says so in a line
        assert name in TABLES and exc.filename2 and exc.filename2.endswith(name), exc


def check_sweep_readers(runs_dir, sweep, original, name):
    """Every reader of a sweep; what it lists are the sweep's own runs, or it refuses naming ``name``."""
    recorded = {runs_dir / run_name(seed) for seed in (*SEEDS, STOPPED_SEED)}
    try:
        record = load_sweep(sweep)
    except ValueError as exc:
        one_line(str(exc), name)
    else:
        assert isinstance(record.name, str) and (record.config is None or isinstance(record.config, str))
        assert type(record.n_runs) is int and record.n_runs >= 0
        entries = json.loads(layout.sweep_file(sweep, layout.SWEEP_FILE).read_text())["runs"]
        named = {os.path.basename(entry) for entry in entries}  # a damaged record's runs, found by name
        assert all(path.resolve() in recorded or path.name in named for path in record.runs), record.runs
        assert all(path.is_absolute() for path in record.runs)  # never the current directory's
        for run in sweep_records(sweep):
            if run.error:
                one_line(run.error)
    check_run_readers(runs_dir, original)
    check_table_readers(runs_dir, sweep)
    check_resume_readers(runs_dir, sweep, name, layout.CONFIG_FILE, layout.SUMMARY_FILE)
    reopen(sweep, name)


# ---------------------------------------------------------------------------------------- sweep.json
@EXAMPLES
@given(data=st.data())
def test_a_truncated_or_flipped_sweep_record_is_refused_by_name(fresh, data):
    runs_dir, sweep, original = fresh()
    file = layout.sweep_file(sweep, layout.SWEEP_FILE)
    file.write_bytes(damage_bytes(data, file.read_bytes()))
    with pytest.raises(ValueError) as refused:
        load_sweep(sweep)
    one_line(str(refused.value), layout.SWEEP_FILE)
    check_sweep_readers(runs_dir, sweep, original, layout.SWEEP_FILE)


WRONG = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([10 ** 400, 2.5, float("nan")]),
                  st.text(max_size=4), st.lists(st.one_of(st.integers(), st.none(), st.text(max_size=3)), max_size=3),
                  st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


@EXAMPLES
@given(key=st.sampled_from(["runs", "name", "config", "n_runs", None]), value=WRONG)
def test_a_sweep_record_of_another_shape_never_lists_a_run_it_did_not_record(fresh, key, value):
    runs_dir, sweep, original = fresh()
    file = layout.sweep_file(sweep, layout.SWEEP_FILE)
    info = json.loads(file.read_text()) if key else value
    if key:
        info[key] = value
    text = json.dumps(info, allow_nan=True)
    file.write_text(text.replace(str(10 ** 400), "1" + "0" * 400) if value == 10 ** 400 else text)
    check_sweep_readers(runs_dir, sweep, original, layout.SWEEP_FILE)


# ---------------------------------------------------------------------------------------- plan.json
@EXAMPLES
@given(data=st.data())
def test_a_truncated_or_flipped_plan_refuses_resuming_the_sweep_by_name(fresh, data):
    from collapse_tui.engine.sweep import plan_sweep_resume

    runs_dir, sweep, original = fresh()
    file = layout.sweep_file(sweep, layout.PLAN_FILE)
    file.write_bytes(damage_bytes(data, file.read_bytes()))
    with pytest.raises(ValueError) as refused:
        plan_sweep_resume(sweep)
    one_line(str(refused.value), layout.PLAN_FILE)
    check_sweep_readers(runs_dir, sweep, original, layout.PLAN_FILE)


PLANNED = st.one_of(WRONG, st.just({"seed": "x"}), st.just({"sae": {"k": -1}}), st.just({"sae": 5}),
                    st.just({"seed": True}), st.just({"name": ["a"]}))


@EXAMPLES
@given(shape=st.sampled_from(["top", "runs", "entry"]), value=PLANNED)
def test_a_plan_of_another_shape_refuses_resuming_the_sweep_in_one_line(fresh, shape, value):
    from collapse_tui.engine.sweep import plan_sweep_resume

    runs_dir, sweep, original = fresh()
    file = layout.sweep_file(sweep, layout.PLAN_FILE)
    plan = json.loads(file.read_text())
    if shape == "top":
        plan = value
    elif shape == "runs":
        plan["runs"] = value
    else:
        assume(value != {})  # a planned run of every default is a config
        plan["runs"][-1] = value if not isinstance(value, dict) else {**plan["runs"][-1], **value}
    file.write_text(json.dumps(plan, allow_nan=True).replace(str(10 ** 400), "1" + "0" * 400))
    with pytest.raises(ValueError) as refused:
        plan_sweep_resume(sweep)
    one_line(str(refused.value), layout.PLAN_FILE)
    check_sweep_readers(runs_dir, sweep, original, layout.PLAN_FILE)


def test_an_empty_plan_is_refused_not_taken_for_a_finished_sweep(fresh):
    from collapse_tui.engine.sweep import plan_sweep_resume

    _, sweep, _ = fresh()
    layout.sweep_file(sweep, layout.PLAN_FILE).write_text(json.dumps({"runs": []}))
    with pytest.raises(ValueError, match="plan.json: it plans no runs"):
        plan_sweep_resume(sweep)


# ---------------------------------------------------------------------------------------- runs.jsonl
def listed(sweep) -> list[str]:
    runs = []
    for line in layout.sweep_file(sweep, layout.RUNS_JSONL).read_bytes().splitlines():
        try:
            runs.append(json.loads(line)["run"])
        except (ValueError, KeyError, TypeError):
            continue
    return runs


@EXAMPLES
@given(data=st.data(), garbage=st.sampled_from([b"", b"{", b"[1]\n", b'{"run": 5}\n', b"\xff\xfe\n", b"null\n",
                                               b'{"run": "x"', b"x" * 300_000]))
def test_a_damaged_runs_log_lists_every_finished_run_again_after_reopening(fresh, data, garbage):
    runs_dir, sweep, original = fresh()
    file = layout.sweep_file(sweep, layout.RUNS_JSONL)
    damaged = damage_bytes(data, file.read_bytes()) + garbage
    file.write_bytes(damaged)
    check_sweep_readers(runs_dir, sweep, original, layout.RUNS_JSONL)
    finished = {run_name(seed) for seed in SEEDS}
    assert finished <= set(listed(sweep))  # each finished run has a whole line of its own
    appended = file.read_bytes()[len(damaged):].splitlines()
    assert {json.loads(line)["run"] for line in appended if line} <= finished  # and nothing else is appended


# ---------------------------------------------------------------------------------------- resume.lock
@pytest.mark.parametrize("inside", [b"", b"garbage \xff\n" * 10, b"12345", b"-1", b"9" * 200])
def test_a_resume_lock_with_anything_inside_is_taken_and_holds_this_process(fresh, inside):
    _, sweep, _ = fresh()
    lock = layout.sweep_file(sweep, layout.RESUME_LOCK)
    lock.write_bytes(inside)
    with resume_locks([sweep]):
        assert lock.read_bytes() == str(os.getpid()).encode()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "symlink"])
def test_what_is_not_a_lock_file_is_refused_in_one_line_and_left_as_it_is(fresh, tmp_path, kind):
    _, sweep, _ = fresh()
    lock = layout.sweep_file(sweep, layout.RESUME_LOCK)
    other = tmp_path / "somebody's file"
    other.write_text("keep me")
    {"fifo": lambda: os.mkfifo(lock), "dev-zero": lambda: lock.symlink_to("/dev/zero"),
     "directory": lock.mkdir, "symlink": lambda: lock.symlink_to(other)}[kind]()

    def take():
        with resume_locks([sweep]):
            pass

    with pytest.raises(LockHeld) as refused:
        within(SECONDS, take)
    one_line(str(refused.value), layout.RESUME_LOCK)
    assert other.read_text() == "keep me"


# ---------------------------------------------------------------------------------------- not a file
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
@pytest.mark.parametrize("name", layout.SWEEP_FILES)
def test_no_reader_blocks_or_reads_without_end_on_what_is_not_a_file(fresh, name, kind):
    runs_dir, sweep, original = fresh()
    path = sweep / name
    if path.is_dir():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    else:
        path.unlink(missing_ok=True)
    {"fifo": lambda: os.mkfifo(path), "dev-zero": lambda: path.symlink_to("/dev/zero"), "directory": path.mkdir}[kind]()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        within(SECONDS * 3, check_sweep_readers, runs_dir, sweep, original, name)
    if name == layout.RUNS_JSONL:  # the finished runs could not be appended: said, not raised
        assert any(f"{layout.RUNS_JSONL}: not appended to" in str(w.message) for w in caught)
