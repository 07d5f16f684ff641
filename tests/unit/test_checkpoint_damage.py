"""A run's checkpoint, damaged in any way, reads back as what was written or as one ValueError naming the
file: never another exception (zipfile's, numpy's, a KeyError) and never a checkpoint with other values."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui.engine.checkpoint import Checkpoint, read_checkpoint_file, weights_problem, write_checkpoint_file

RNG = np.random.RandomState(7).get_state()


def original() -> Checkpoint:
    return Checkpoint(epoch=3, weights=[np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)],
                      optimizer={"0/m": np.full((2, 3), 0.5, np.float32)}, rng={"orders": RNG},
                      state={"history": [[625, 50, 0.1]], "resampled": 1})


def same(a: Checkpoint, b: Checkpoint) -> bool:
    return (a.epoch == b.epoch and a.state == b.state and len(a.weights) == len(b.weights)
            and all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights))
            and a.optimizer.keys() == b.optimizer.keys()
            and all(np.array_equal(a.optimizer[k], b.optimizer[k]) for k in a.optimizer)
            and np.array_equal(a.rng["orders"][1], b.rng["orders"][1]) and a.rng["orders"][2:] == b.rng["orders"][2:])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.npz"
    write_checkpoint_file(path, original())
    return path.read_bytes()


def test_a_checkpoint_round_trips(tmp_path):
    path = write_checkpoint_file(tmp_path / "checkpoint.npz", original())
    assert same(read_checkpoint_file(path), original())


def read_or_refuse(path):
    try:
        return read_checkpoint_file(path)
    except ValueError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_or_altered_bytes_are_refused_or_harmless(tmp_path, written, data):
    damage = data.draw(st.sampled_from(["truncate", "flip", "zero-run"]))
    raw = bytearray(written)
    if damage == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
        width = 1 if damage == "flip" else data.draw(st.integers(1, 64))
        for i in range(at, min(len(raw), at + width)):
            raw[i] = raw[i] ^ 0xFF if damage == "flip" else 0
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(bytes(raw))
    found = read_or_refuse(path)
    assert found is None or same(found, original())  # the archive's checksums catch altered data


def rewrite(path, **arrays):
    with np.load(path) as data:
        content = {k: data[k] for k in data.files}
    content.update(arrays)
    for key in [k for k, v in arrays.items() if v is None]:
        del content[key]
    np.savez(path, **content)


def meta(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode(), np.uint8)


@pytest.mark.parametrize("change, problem", [
    ({"meta": meta([1, 2])}, "its metadata is not a record"),
    ({"meta": meta({"version": 1, "epoch": -1})}, "epoch -1 is not a count"),
    ({"meta": meta({"version": 1, "epoch": "3"})}, "epoch '3' is not a count"),
    ({"meta": meta({"version": 1, "epoch": 3, "state": [1]})}, "its record is not a mapping"),
    ({"meta": meta({"version": 9, "epoch": 3})}, "checkpoint format 9, this version reads 1"),
    ({"weights/0": None}, "KeyError"),  # a gap in the weights
    ({"rng/orders/rest": None}, "KeyError"),
    ({"rng/orders/keys": np.zeros(5, np.uint32)}, "is not a Mersenne Twister's"),
    ({"weights/1": np.array(["a", "b"])}, "holds <U1, not numbers"),
    ({"meta": np.array([1.5])}, "unreadable checkpoint"),
])
def test_well_formed_archives_with_wrong_contents_are_refused_in_one_line(tmp_path, change, problem):
    path = write_checkpoint_file(tmp_path / "checkpoint.npz", original())
    rewrite(path, **change)
    with pytest.raises(ValueError, match=problem) as caught:
        read_checkpoint_file(path)
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_regular_is_refused_without_opening_it(tmp_path):
    import os

    path = tmp_path / "checkpoint.npz"
    os.mkfifo(path)  # opening it would block for ever
    with pytest.raises(ValueError, match="not a regular file"):
        read_checkpoint_file(path)
    assert read_checkpoint_file(tmp_path / "none.npz") is None


def test_a_checkpoint_that_does_not_fit_its_model_says_why():
    weights = [np.zeros((2, 3)), np.zeros(3)]
    ckpt = original()
    assert weights_problem(ckpt, weights, epochs=6, rng=("orders",)) is None
    assert weights_problem(ckpt, weights, epochs=2, rng=("orders",)) == "it is after epoch 3, and the phase has 2"
    assert weights_problem(ckpt, weights[:1], 6, ("orders",)) == "it holds 2 weight arrays, the model 1"
    assert weights_problem(ckpt, [np.zeros((3, 2)), np.zeros(3)], 6, ("orders",)) == (
        "weight array 0 has shape (2, 3), the model's (3, 2)")
    assert weights_problem(ckpt, weights, 6, ("orders", "resample")) == "it lacks the random state 'resample'"
