"""The decoder marks of a run (store/decoders.py, engine/stability.py): written and read back, measured
against the first mark, and read safely from damaged copies: a clear ValueError naming the file, never
another exception or wrong numbers."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui.engine.stability import StabilityMarks
from collapse_tui.store import DECODERS_FILE, DecoderMarks, read_decoders, write_decoders


def unit_rows(m=6, d=4, seed=0):
    w = np.random.default_rng(seed).normal(size=(m, d))
    return (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32)


def marks(n_marks=2, m=6, d=4):
    return DecoderMarks(np.arange(1, n_marks + 1, dtype=np.int64), np.arange(1, n_marks + 1, dtype=np.int64) * 10,
                        np.stack([unit_rows(m, d, seed=i) for i in range(n_marks)]).astype(np.float16),
                        np.array([[True] * (m - 1) + [False]] * n_marks),
                        np.abs(np.random.default_rng(9).normal(size=(5, m))).astype(np.float16))


def test_round_trip_and_absent(tmp_path):
    assert read_decoders(tmp_path) is None
    original = marks()
    write_decoders(tmp_path, original)
    back = read_decoders(tmp_path)
    for key in ("epochs", "updates", "decoders", "alive", "reference_acts"):
        np.testing.assert_array_equal(getattr(back, key), getattr(original, key))
    assert back.upto(1).epochs.tolist() == [1] and back.upto(0).epochs.size == 0


@pytest.mark.parametrize("change, problem", [
    (lambda a: a.pop("decoders"), "no 'decoders' array"),
    (lambda a: a.update(epochs=np.array([2, 1])), "epochs must increase"),
    (lambda a: a.update(epochs=np.array([1.0, 2.0])), "integer vectors"),
    (lambda a: a.update(decoders=a["decoders"][:, :, :, None]), "decoders must be"),
    (lambda a: a.update(reference_acts=a["reference_acts"][:, :3]), "reference_acts must be"),
    (lambda a: a.update(alive=a["alive"].astype(int)), "alive must be"),
    (lambda a: a.update(alive=a["alive"][:1]), "alive must be"),
    (lambda a: a.update(decoders=np.full_like(a["decoders"], np.nan)), "non-finite"),
])
def test_well_formed_archives_with_wrong_contents_are_refused(tmp_path, change, problem):
    m = marks()
    arrays = {key: getattr(m, key) for key in ("epochs", "updates", "decoders", "alive", "reference_acts")}
    change(arrays)
    np.savez(tmp_path / DECODERS_FILE, **arrays)
    with pytest.raises(ValueError, match=f"{DECODERS_FILE}: unreadable decoder marks.*{problem}"):
        read_decoders(tmp_path)


def test_not_a_regular_file(tmp_path):
    (tmp_path / DECODERS_FILE).mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        read_decoders(tmp_path)
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / DECODERS_FILE)  # a reader must not block on it
    with pytest.raises(ValueError, match="not a regular file"):
        read_decoders(fifo_dir)
    (tmp_path / "zero").mkdir()
    (tmp_path / "zero" / DECODERS_FILE).symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="not a regular file"):
        read_decoders(tmp_path / "zero")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_copies_read_as_the_original_or_a_clear_error(tmp_path_factory, data):
    directory = tmp_path_factory.mktemp("damaged")
    original = marks()
    write_decoders(directory, original)
    path = directory / DECODERS_FILE
    raw = bytearray(path.read_bytes())
    cut = data.draw(st.integers(0, len(raw)), label="truncate at")
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)), max_size=4),
                      label="byte flips")
    for at, mask in flips:
        raw[at] ^= mask
    path.write_bytes(bytes(raw[:cut]))
    try:
        back = read_decoders(directory)
    except ValueError as exc:
        assert str(exc).startswith(f"{path}: unreadable decoder marks")
        return
    # Read without complaint: then what it says must be a well-formed set of marks (a flip inside an
    # array's values can change a number, which the archive cannot tell; it never changes the shapes).
    assert back.decoders.shape == original.decoders.shape and back.epochs.shape == original.epochs.shape


def test_the_first_mark_is_the_reference_and_later_ones_are_measured_against_it(tmp_path):
    w = unit_rows(6, 16)
    acts = np.abs(np.random.default_rng(1).normal(size=(50, 6)))
    acts[:, 5] = 0.0  # neuron 5 never fires: not alive at the first mark
    tracker = StabilityMarks(tmp_path)
    assert tracker.measure(1, 10, w, acts) == {}
    same = tracker.measure(2, 20, w[::-1].copy(), acts[:, ::-1].copy())  # the same features, neurons reordered
    assert same["survival"] == pytest.approx(1.0) and same["survival_cosine"] == pytest.approx(1.0, abs=2e-3)
    assert same["cka_first"] == pytest.approx(1.0, abs=1e-3) and same["stability_reference_epoch"] == 1
    # Turn every direction by 60 degrees (toward a direction orthogonal to it): cosine 0.5 with itself,
    # and in 16 dimensions far less with the others: nothing reaches 0.7.
    ortho = []
    for i, row in enumerate(w):
        v = np.random.default_rng(10 + i).normal(size=w.shape[1])
        v -= (v @ row) * row
        ortho.append(v / np.linalg.norm(v))
    turned = (0.5 * w + np.sqrt(0.75) * np.array(ortho)).astype(np.float32)
    gone = tracker.measure(3, 30, turned, acts)
    assert gone["survival"] == 0.0 and gone["survival_cosine"] < 0.7
    assert read_decoders(tmp_path).epochs.tolist() == [1, 2, 3]
    # Resumed after epoch 2: the marks up to it come back; a damaged file is said and starts over.
    resumed = StabilityMarks(tmp_path)
    resumed.restore(2, lambda text: pytest.fail(text))
    assert resumed.marks.epochs.tolist() == [1, 2]
    (tmp_path / DECODERS_FILE).write_bytes(b"not an archive")
    said = []
    broken = StabilityMarks(tmp_path)
    broken.restore(2, said.append)
    assert broken.marks is None and len(said) == 1 and "unreadable decoder marks" in said[0]
