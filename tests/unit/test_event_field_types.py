"""A run's events read back hold what their types declare: a line of ``events.jsonl`` that is valid JSON
and names a known event, but holds a field of another JSON kind (``"metrics": 5``, ``"epoch": "x"``, a
loss that is text), is left out by the store's reader with a warning in its place, for every reader
(the run views, the CLI, anything that reads a run's events), never passed on to crash one of them."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui import events as ev
from collapse_tui.store import EVENTS_FILE, read_events
from tests.tui.support import make_run


def holds(value, hint) -> bool:
    """Whether ``value`` is of the declared type ``hint`` (as JSON gives it: an int is a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(holds(value, a) for a in args)
    if hint is typing.Any:
        return True
    if hint is type(None):
        return value is None
    if origin is dict:
        return isinstance(value, dict) and all(holds(k, args[0]) and holds(v, args[1]) for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:  # JSON's 3.0 is the count 3 (the reader hands it on as an int)
        whole = isinstance(value, float) and math.isfinite(value) and value.is_integer()
        return (isinstance(value, int) and not isinstance(value, bool)) or whole
    return isinstance(value, hint)


def wrong_fields(event: ev.Event) -> list[str]:
    hints = typing.get_type_hints(type(event))
    return [f.name for f in dataclasses.fields(event) if not holds(getattr(event, f.name), hints[f.name])]


def kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "number", float: "number", str: "text", list: "list", dict: "object"}[type(value)]


def paths(value, prefix=(), depth=4):
    """Every place in an event's JSON a value sits (its ``type`` too), lists by their first and last item."""
    if depth == 0:
        return
    keys = value.keys() if isinstance(value, dict) else sorted({0, len(value) - 1}) if isinstance(value, list) else ()
    for key in keys:
        yield prefix + (key,)
        yield from paths(value[key], prefix + (key,), depth - 1)


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.integers(10**300, 10**400),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = make_run(tmp_path_factory.mktemp("events"), "quick-topk-k2", sparsity=2, epochs=2, n_neurons=6)
    return run_dir, [json.loads(line) for line in (run_dir / EVENTS_FILE).read_text().splitlines()]


def write(run_dir: Path, lines) -> None:
    (run_dir / EVENTS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_value_of_another_kind_never_reaches_a_reader_as_an_event(run, data):
    run_dir, lines = run
    index = data.draw(st.integers(0, len(lines) - 1), label="line")
    path = data.draw(st.sampled_from(list(paths(lines[index]))), label="path")
    line = json.loads(json.dumps(lines[index]))
    place = line
    for key in path[:-1]:
        place = place[key]
    value = data.draw(JSON_VALUES.filter(lambda v: kind(v) != kind(place[path[-1]])), label="value")
    place[path[-1]] = value
    try:
        write(run_dir, [*lines[:index], line, *lines[index + 1:]])
        events, _ = read_events(run_dir)
        assert len(events) == len(lines)  # one a line: the event, or a warning in its place
        assert [(e.kind, wrong_fields(e)) for e in events if wrong_fields(e)] == []
        hints = typing.get_type_hints(ev.EVENT_TYPES[lines[index]["type"]])
        if len(path) == 1 and path[0] != "type" and not holds(value, hints[path[0]]):  # a field of another type
            said = events[index]
            assert said.kind == "message" and said.level == "warning"
            assert said.text.startswith(f"{run_dir / EVENTS_FILE}: left out a damaged {line['type']} event (")
            assert said.run_id in ("", run_dir.name) and isinstance(said.time, float)
    finally:
        write(run_dir, lines)


@pytest.mark.parametrize("kind_, field, value", [
    ("evaluation", "metrics", 5), ("epoch_end", "epoch", "x"), ("progress", "logs", {"loss": "x"}),
    ("epoch_end", "time", "now"), ("run_started", "config", []), ("run_finished", "summary", None),
])
def test_the_damage_users_met_is_named_with_its_field_and_line(run, kind_, field, value):
    run_dir, lines = run
    index = next(i for i, line in enumerate(lines) if line["type"] == kind_)
    damaged = json.loads(json.dumps(lines[index]))
    damaged[field] = value
    try:
        write(run_dir, [*lines[:index], damaged, *lines[index + 1:]])
        events, _ = read_events(run_dir)
        said = events[index]
        offset = sum(len(json.dumps(line)) + 1 for line in lines[:index])
        assert said.kind == "message" and f"{field} = " in said.text and f"byte {offset}" in said.text
        # the warning sits in the timeline where the damaged event was
        assert said.time == (lines[index]["time"] if field != "time" else lines[index - 1]["time"])
        assert [e.kind for e in events[:index]] == [line["type"] for line in lines[:index]]
    finally:
        write(run_dir, lines)


def test_every_field_of_every_event_is_checked():
    """A field added to an event without saying what it holds would go to readers unchecked."""
    for cls in ev.EVENT_TYPES.values():
        assert {f.name for f in dataclasses.fields(cls)} <= set(ev.FIELD_CHECKS[cls]) | {"time", "run_id"}, cls.kind


def test_an_event_built_from_a_damaged_dict_is_refused_naming_its_field():
    with pytest.raises(ev.DamagedEvent, match="epoch = 'x'") as refused:
        ev.event_from_dict({"type": "evaluation", "phase": "sae", "epoch": "x", "metrics": {}, "time": 1.0})
    assert refused.value.kind == "evaluation" and isinstance(refused.value, ValueError)


def test_a_count_json_gives_as_a_whole_float_reaches_readers_as_an_int():
    event = ev.event_from_dict({"type": "phase_started", "time": 1.0, "run_id": "r", "phase": "sae",
                                "epochs": 3.0, "steps_per_epoch": None})
    assert event.epochs == 3 and type(event.epochs) is int and event.steps_per_epoch is None
    ended = ev.event_from_dict({"type": "progress", "time": 1.0, "run_id": "r", "phase": "sae", "done": 4.0,
                                "total": 8, "epoch": 2.0})
    assert (type(ended.done), type(ended.epoch)) == (int, int)
    with pytest.raises(ev.DamagedEvent):
        ev.event_from_dict({"type": "phase_started", "time": 1.0, "run_id": "r", "phase": "sae", "epochs": 2.5})
