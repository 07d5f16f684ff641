"""A run directory's files damaged in any way (summary.json and config.yaml as whole files; any file of a
run replaced by a FIFO, a symlink to /dev/zero or a directory) through every reader that opens them:
``load_run``, the runs listing and its table rows, ``--table``, and ``--resume`` planning. Each reads what
was written or refuses in one line naming the file; none raises another exception, blocks, or puts a
number nobody wrote into a table."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui.store import layout, load_run, read_events
from collapse_tui.store.records import finite_number
from tests.unit.damaged_store import (SEEDS, STOPPED_SEED, check_resume_readers, check_run_readers,
                                      check_table_readers, one_line, run_name, within)

EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ANY_RUN = st.sampled_from([*SEEDS, STOPPED_SEED])
SECONDS = 10  # a reader that has not returned by then is blocked (a FIFO) or reading without end


def check_every_reader(runs_dir, sweep, original, name):
    check_run_readers(runs_dir, original, name)
    check_table_readers(runs_dir, sweep, name)
    check_resume_readers(runs_dir, sweep, name)


def damage_bytes(data, raw: bytes) -> bytes:
    """``raw`` cut short at any byte, or with one byte inverted (never valid UTF-8 again)."""
    if data.draw(st.booleans(), label="truncate"):
        return raw[:data.draw(st.integers(0, len(raw) - 1), label="length")]
    at = data.draw(st.integers(0, len(raw) - 1), label="flipped byte")
    return raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:]


# ---------------------------------------------------------------------------------------- summary.json
@EXAMPLES
@given(data=st.data(), seed=ANY_RUN)
def test_a_truncated_or_flipped_summary_is_refused_by_name(fresh, data, seed):
    runs_dir, sweep, original = fresh()
    file = layout.run_file(runs_dir / run_name(seed), layout.SUMMARY_FILE)
    file.write_bytes(damage_bytes(data, file.read_bytes()))
    with pytest.raises(ValueError) as refused:
        load_run(file.parent)
    one_line(str(refused.value), file.name)
    check_every_reader(runs_dir, sweep, original, layout.SUMMARY_FILE)


NOT_A_MAPPING = st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.floats(), st.text(max_size=5),
                          st.none(), st.booleans())
# Values no field of a summary holds where a number, a name or a status belongs.
WRONG_VALUE = st.one_of(st.booleans(), st.text(max_size=4), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
                        st.sampled_from([float("nan"), float("inf"), -float("inf"), 10 ** 400, -1.5]))
FIELDS = ["status", "sparsity", "dataset", "method", "n_neurons", "started", "final", "flags", "seconds"]


@EXAMPLES
@given(top=NOT_A_MAPPING, seed=ANY_RUN)
def test_a_summary_that_is_not_a_mapping_is_refused_by_name(fresh, top, seed):
    runs_dir, sweep, original = fresh()
    file = layout.run_file(runs_dir / run_name(seed), layout.SUMMARY_FILE)
    file.write_text(json.dumps(top))
    with pytest.raises(ValueError) as refused:
        load_run(file.parent)
    one_line(str(refused.value), file.name)
    check_every_reader(runs_dir, sweep, original, layout.SUMMARY_FILE)


@EXAMPLES
@given(key=st.sampled_from(FIELDS), value=WRONG_VALUE, seed=ANY_RUN)
def test_a_summary_field_of_the_wrong_type_never_reaches_a_table(fresh, key, value, seed):
    runs_dir, sweep, original = fresh()
    file = layout.run_file(runs_dir / run_name(seed), layout.SUMMARY_FILE)
    summary = json.loads(file.read_text())
    summary[key] = value
    file.write_text(json.dumps(summary, allow_nan=True) if not isinstance(value, int) or abs(value) < 2 ** 63
                    else json.dumps(summary).replace(str(value), "1" + "0" * 400))
    try:
        record = load_run(file.parent)
    except ValueError as exc:
        one_line(str(exc), layout.SUMMARY_FILE)
    else:  # read only where the value is of the field's kind: a name, a finite number, a mapping, a list
        kind = {"status": str, "dataset": str, "method": str, "final": dict, "flags": list}.get(key)
        if kind is not None:
            assert isinstance(value, kind)
        else:
            assert finite_number(value) and (key != "n_neurons" or type(value) is int)
        if key == "flags" and value and seed in SEEDS:
            assert record.status == "suspect"  # flagged as no result: out of the table
    check_every_reader(runs_dir, sweep, original, layout.SUMMARY_FILE)


@pytest.mark.parametrize("key, value, problem", [
    ("status", 5, "summary.json: status is int 5, not str"),
    ("status", None, "summary.json has no status"),
    ("sparsity", float("nan"), "summary.json: sparsity is nan, not a finite number"),
    ("sparsity", float("inf"), "summary.json: sparsity is inf, not a finite number"),
    ("sparsity", "8", "summary.json: sparsity is str '8', not int or float"),
    ("sparsity", -2, "summary.json: sparsity is -2, not a k or λ"),
    ("status", "done", "summary.json: status is 'done', not one of running, ok, stopped, failed"),
])
def test_the_refusal_says_which_field_is_wrong(fresh, key, value, problem):
    runs_dir, _, _ = fresh()
    file = layout.run_file(runs_dir / run_name(0), layout.SUMMARY_FILE)
    file.write_text(json.dumps({**json.loads(file.read_text()), key: value}, allow_nan=True))
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_run(file.parent)


# ---------------------------------------------------------------------------------------- config.yaml
@EXAMPLES
@given(data=st.data(), seed=ANY_RUN)
def test_a_truncated_or_flipped_config_is_refused_or_read_as_written(fresh, data, seed):
    runs_dir, sweep, original = fresh()
    file = layout.run_file(runs_dir / run_name(seed), layout.CONFIG_FILE)
    written = load_run(file.parent).config
    file.write_bytes(damage_bytes(data, file.read_bytes()))
    try:
        record = load_run(file.parent)
    except ValueError as exc:
        one_line(str(exc), file.name)
    else:  # a cut in the last value's trailing newline leaves the same config
        assert record.config == written
    check_every_reader(runs_dir, sweep, original, layout.CONFIG_FILE)


OTHER_YAML = st.sampled_from(["", "\n", "# nothing\n", "null\n", "~\n", "- 1\n- 2\n", "5\n", "text\n", "true\n",
                              "[1, {a: 2}]\n", "? [a, b]\n: 1\n", "1: 2\n", "seed: 3\n: x\n"])
SEED_VALUES = st.sampled_from(["'abc'", "true", "false", "2.5", "[1]", "{a: 1}", "null", "1e400", ".nan", ".inf",
                               "99999999999999999999999", "'3_0'", "''"])


@EXAMPLES
@given(text=OTHER_YAML, seed=ANY_RUN)
def test_a_config_of_another_shape_is_refused_by_name(fresh, text, seed):
    runs_dir, sweep, original = fresh()
    file = layout.run_file(runs_dir / run_name(seed), layout.CONFIG_FILE)
    file.write_text(text)
    with pytest.raises(ValueError) as refused:
        load_run(file.parent)
    one_line(str(refused.value), file.name)
    check_every_reader(runs_dir, sweep, original, layout.CONFIG_FILE)


@EXAMPLES
@given(value=SEED_VALUES, seed=ANY_RUN)
def test_a_seed_of_the_wrong_type_is_refused_or_read_as_the_run_would_take_it(fresh, value, seed):
    from collapse_tui.config import validate
    from collapse_tui.store import stored_settings

    runs_dir, sweep, original = fresh()
    file = layout.run_file(runs_dir / run_name(seed), layout.CONFIG_FILE)
    file.write_text(file.read_text().replace(f"\nseed: {seed}\n", f"\nseed: {value}\n", 1))
    try:
        record = load_run(file.parent)
    except ValueError as exc:
        one_line(str(exc), file.name)
    else:
        assert int(record.config["seed"]) == validate(stored_settings(record.config)).seed
    check_every_reader(runs_dir, sweep, original, layout.CONFIG_FILE)


def test_an_alias_bomb_or_a_huge_config_is_refused_quickly(fresh):
    runs_dir, sweep, original = fresh()
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    cases = {SEEDS[0]: bomb, SEEDS[1]: "# padding\n" * 200_000 + "seed: 1\n", SEEDS[2]: "seed: [" * 100_000}
    for seed, text in cases.items():
        file = layout.run_file(runs_dir / run_name(seed), layout.CONFIG_FILE)
        file.write_text(text)
        with pytest.raises(ValueError) as refused:
            within(SECONDS, load_run, file.parent)
        one_line(str(refused.value), file.name)
    within(SECONDS * 3, check_every_reader, runs_dir, sweep, original, layout.CONFIG_FILE)


def test_a_summary_without_a_number_where_one_was_not_finite_is_read(fresh):
    runs_dir, _, _ = fresh()
    file = layout.run_file(runs_dir / run_name(0), layout.SUMMARY_FILE)
    file.write_text(json.dumps({**json.loads(file.read_text()), "sparsity": None, "seconds": None}))
    assert load_run(file.parent).status == "ok"


def test_an_empty_config_is_not_a_run_of_default_settings(fresh):
    runs_dir, _, _ = fresh()
    file = layout.run_file(runs_dir / run_name(0), layout.CONFIG_FILE)
    file.write_text("")
    layout.run_file(file.parent, layout.LISTING_FILE).unlink()  # as a run of a version that wrote none
    with pytest.raises(ValueError, match="config.yaml: empty"):
        load_run(file.parent)


def test_a_config_cut_at_a_line_end_is_refused_as_cut_short(fresh):
    """A config.yaml cut after a whole line still parses: into a config whose missing settings would take
    their defaults (another row, or a resume at other settings). The listing sidecar knows the whole."""
    runs_dir, _, _ = fresh()
    file = layout.run_file(runs_dir / run_name(0), layout.CONFIG_FILE)
    text = file.read_text()
    file.write_text(text[:text.index("\nsae:") + 1])
    with pytest.raises(ValueError, match="config.yaml: cut short"):
        load_run(file.parent)
    assert yaml.safe_load(file.read_text())["seed"] == 0  # what the slow path alone would have read


# ---------------------------------------------------------------------------------------- not a file
def _not_a_file(path, kind: str) -> None:
    if path.is_dir():
        os.rmdir(path) if not any(path.iterdir()) else None
    else:
        path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()


def _other_readers(run_dir) -> None:
    """The readers of a run's other files: events, profiles, decoder marks, checkpoint, resume lock."""
    from collapse_tui.engine.checkpoint import read_checkpoint
    from collapse_tui.store import LockHeld, load_neurons, read_decoders, resume_locks

    events, _ = read_events(run_dir)
    for event in events:
        if event.kind == "message" and "events.jsonl" in getattr(event, "text", ""):
            one_line(event.text, layout.EVENTS_FILE)
    _, problem = load_neurons(run_dir)
    if problem:
        one_line(problem, layout.NEURONS_FILE)
    for read, name in ((read_decoders, layout.DECODERS_FILE), (read_checkpoint, layout.CHECKPOINT_FILE)):
        try:
            read(run_dir)
        except ValueError as exc:
            one_line(str(exc), name)
    try:
        with resume_locks([run_dir]):
            pass
    except LockHeld as exc:
        one_line(str(exc), layout.RESUME_LOCK)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
@pytest.mark.parametrize("name", layout.RUN_FILES)
def test_no_reader_blocks_or_reads_without_end_on_what_is_not_a_file(fresh, name, kind):
    runs_dir, sweep, original = fresh()
    run_dir = runs_dir / run_name(STOPPED_SEED)
    _not_a_file(layout.run_file(run_dir, name), kind)
    within(SECONDS, check_every_reader, runs_dir, sweep, original, name)
    within(SECONDS, _other_readers, run_dir)
