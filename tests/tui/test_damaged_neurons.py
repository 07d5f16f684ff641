"""A damaged ``neurons.npz`` (truncated, altered, arrays of the wrong shape or type, an object array) is
one line in the neuron inspector, "unreadable: <file>: <problem>", never a crash of the TUI."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui.store import NEURONS_FILE, load_neurons
from collapse_tui.tui.screens.neurons import NeuronScreen, neuron_detail, neuron_rows, tuning_lines
from tests.tui.support import add_neuron_profiles, make_app, make_run, wait_for

SIZE = (100, 30)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """A run with the profiles its final evaluation would write; its neurons.npz bytes and arrays."""
    tmp = tmp_path_factory.mktemp("profiled")
    run_dir = make_run(tmp, "quick-topk-k2")
    arrays = add_neuron_profiles(run_dir)
    return run_dir, (run_dir / NEURONS_FILE).read_bytes(), arrays


def drawn(profiles) -> None:
    """Everything the inspector draws from the profiles, for every neuron."""
    rows = neuron_rows(profiles)
    for neuron in range(len(rows)):
        tuning_lines(profiles, neuron)
        neuron_detail(profiles, rows, neuron)


def read_checked(run_dir, arrays):
    profiles, problem = load_neurons(run_dir)
    if problem is not None:
        assert profiles is None and problem.startswith(f"unreadable: {run_dir / NEURONS_FILE}: ")
        assert "\n" not in problem
        return None
    assert profiles.keys() == arrays.keys()
    drawn(profiles)
    return profiles


def test_the_written_profiles_read_back_whole(profiled, tmp_path):
    run_dir, raw, arrays = profiled
    profiles = read_checked(run_dir, arrays)
    assert all(np.array_equal(profiles[k], np.asarray(arrays[k]), equal_nan=profiles[k].dtype.kind == "f")
               for k in arrays)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_or_altered_bytes_are_one_problem_line(profiled, tmp_path, data):
    _, raw, arrays = profiled
    damage = data.draw(st.sampled_from(["truncate", "flip", "zero-run"]))
    raw = bytearray(raw)
    if damage == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
        width = 1 if damage == "flip" else data.draw(st.integers(1, 64))
        for i in range(at, min(len(raw), at + width)):
            raw[i] = raw[i] ^ 0xFF if damage == "flip" else 0
    (tmp_path / NEURONS_FILE).write_bytes(bytes(raw))
    read_checked(tmp_path, arrays)  # refused in one line, or read whole (the archive's checksums)


def wrong(array: np.ndarray, how: str) -> np.ndarray:
    if how == "shorter":
        return array[:-1]
    if how == "flattened":
        return array.reshape(-1)[:-1] if array.ndim < 2 else array.reshape(-1)
    if how == "extra axis":
        return array[..., None]
    if how == "text":
        return array.astype(str)
    if how == "complex":
        return array.astype(np.complex64) if array.dtype.kind != "U" else array[:0]
    return np.array([], dtype=array.dtype)  # empty


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_arrays_of_the_wrong_shape_or_type_are_one_problem_line(profiled, tmp_path, data):
    _, _, arrays = profiled
    key = data.draw(st.sampled_from(sorted(arrays)))
    how = data.draw(st.sampled_from(["shorter", "flattened", "extra axis", "text", "complex", "empty", "missing"]))
    changed = dict(arrays)
    if how == "missing":
        del changed[key]
    else:
        changed[key] = wrong(np.asarray(arrays[key]), how)
    buffer = io.BytesIO()
    np.savez(buffer, **changed)
    (tmp_path / NEURONS_FILE).write_bytes(buffer.getvalue())
    found = read_checked(tmp_path, arrays if how != "missing" else changed)
    unused = np.asarray(arrays["top_examples"]).max() < len(arrays["eval_indices"]) - 1  # the last sample: in no top
    harmless = (key == "factors" and how == "text") or (key == "eval_indices" and how in ("shorter", "flattened")
                                                        and unused)
    assert found is None or harmless, f"{key} {how} was read as profiles"


@pytest.mark.parametrize("key", ["best_factor", "neighbours", "top_examples", "auroc_factor"])
def test_indices_out_of_range_or_an_object_array_are_refused(profiled, tmp_path, key):
    _, _, arrays = profiled
    changed = dict(arrays)
    changed[key] = np.asarray(arrays[key]) + 1000
    np.savez(tmp_path / NEURONS_FILE, **changed)
    assert "holds an index outside" in load_neurons(tmp_path)[1]
    changed[key] = np.array([{"a": 1}] * len(arrays[key]), dtype=object)  # pickled: never unpickled
    np.savez(tmp_path / NEURONS_FILE, **changed)
    assert load_neurons(tmp_path)[1].startswith(f"unreadable: {tmp_path / NEURONS_FILE}: ValueError")


def test_n_on_a_run_with_damaged_profiles_shows_the_problem_and_the_app_lives(profiled, tmp_path):
    run_dir = make_run(tmp_path, "quick-topk-k2")
    (run_dir / NEURONS_FILE).write_bytes(profiled[1][: len(profiled[1]) // 2])  # cut short

    async def scenario():
        app = make_app(tmp_path, runs_dir=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            app.open_run(run_dir)
            await pilot.pause()
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NeuronScreen), timeout=10)
            await pilot.pause()
            title = str(app.screen.query_one("#neuron-title").content)
            assert title.startswith(f"unreadable: {run_dir / NEURONS_FILE}: ") and "\n" not in title
            assert app.is_running
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, NeuronScreen) and app.is_running

    asyncio.run(scenario())
