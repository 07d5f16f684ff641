"""Training rows read from their file as training uses them: the rows asked for, in the order asked, as
float32, whatever the file's float type; every row once in a pass; a changed or shortened file refused in
one line; and the normalisation's statistics from one pass of blocks equal to those of the rows held whole."""

from __future__ import annotations

import os

import numpy as np
import pytest

from collapse_tui.data.activations import open_activations, write_activations
from collapse_tui.data.base import DatasetFileError
from collapse_tui.data.streamed_rows import TrainingRows
from collapse_tui.nn import input_statistics


def rows_of(tmp_path, dtype=np.float32, suffix=".npy", n=500, d=7):
    acts = np.random.default_rng(1).normal(size=(n, d)).astype(dtype)
    file = open_activations(write_activations(tmp_path / f"acts{suffix}", acts))
    indices = np.random.default_rng(2).choice(n, 300, replace=False)
    return acts, file, indices, TrainingRows(file, indices)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_take_gives_the_rows_asked_for_in_their_order_as_float32(tmp_path, dtype, suffix):
    acts, _, indices, rows = rows_of(tmp_path, dtype, suffix)
    assert rows.shape == (300, 7) and len(rows) == 300 and rows.dtype == np.float32
    positions = np.array([5, 0, 299, 5, 17, 18, 19, 120])  # repeats, runs of neighbours, any order
    got = rows.take(positions)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, acts[indices[positions]].astype(np.float32))


def test_blocks_give_every_training_row_once(tmp_path):
    acts, _, indices, rows = rows_of(tmp_path)
    seen = np.concatenate(list(rows.blocks(size=64)))
    assert seen.shape == (300, 7)
    np.testing.assert_array_equal(seen, acts[np.sort(indices)])


def test_nothing_but_the_indices_is_held(tmp_path):
    _, _, indices, rows = rows_of(tmp_path)
    assert rows.nbytes == indices.astype(np.int64).nbytes


def test_a_file_changed_after_opening_is_refused_in_one_line(tmp_path):
    acts, file, _, rows = rows_of(tmp_path)
    rows.take([0])
    np.save(file.path, acts * 2)  # the same size, other numbers
    os.utime(file.path, ns=(1, 1))
    with pytest.raises(DatasetFileError, match="changed since it was opened") as err:
        rows.take([0])
    assert "\n" not in str(err.value) and str(file.path) in str(err.value)


def test_a_file_shortened_after_opening_is_refused_in_one_line(tmp_path, monkeypatch):
    _, file, indices, rows = rows_of(tmp_path)
    with open(file.path, "r+b") as fh:
        fh.truncate(file.path.stat().st_size // 2)
    st = file.path.stat()
    monkeypatch.setattr(file, "_stamp", (st.st_size, st.st_mtime_ns))  # past the change check: the read itself
    last = int(np.argmax(indices))
    with pytest.raises(DatasetFileError, match="truncated"):
        rows.take([last])


def test_empty_or_two_dimensional_indices_are_refused(tmp_path):
    _, file, _, _ = rows_of(tmp_path)
    with pytest.raises(ValueError):
        TrainingRows(file, [])
    with pytest.raises(ValueError):
        TrainingRows(file, [[1, 2]])


@pytest.mark.parametrize("kind", ["none", "unit_norm", "standardise", "centre"])
def test_statistics_from_blocks_are_those_of_the_rows_held_whole(kind):
    x = np.random.default_rng(3).normal(loc=2.0, scale=[1.0, 0.5, 1e-9, 3.0], size=(1000, 4))
    mean, std = input_statistics.normalisation(x, kind)
    s_mean, s_std, data_mean = input_statistics.streamed_normalisation(
        (x[i:i + 128] for i in range(0, 1000, 128)), 4, kind)
    np.testing.assert_allclose(s_mean, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s_std, std, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(data_mean, x.mean(axis=0), rtol=1e-12)


def test_the_streamed_start_is_the_start_of_the_rows_held_whole(tmp_path):
    _, _, indices, rows = rows_of(tmp_path)
    whole = rows.take(np.arange(len(rows))).astype(np.float64)
    for geometric in (False, True):
        mean, std, centre = input_statistics.streamed_start(rows, 7, "standardise", geometric)
        held_mean, held_std = input_statistics.normalisation(whole, "standardise")
        expected = input_statistics.decoder_bias_start((whole - held_mean) / held_std, geometric)
        np.testing.assert_allclose(centre, expected, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="data_init"):
        input_statistics.streamed_start(rows, 7, "none", False, data_init=True)
    with pytest.raises(ValueError, match="must hold at least one sample"):
        input_statistics.streamed_normalisation(iter(()), 7, "none")
    bad = np.ones((3, 7))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        input_statistics.streamed_normalisation([bad], 7, "none")
