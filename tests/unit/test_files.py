"""Official dataset files (dSprites npz / hdf5, Shapes3D h5), the auto source and the render cache.

Fixture files are written here with h5py and numpy directly, in the published layout, from procedural
images, so each test knows exactly which image every row must give back.
"""

from __future__ import annotations

import os
import pickle
import time
import zipfile

import h5py
import numpy as np
import pytest

from collapse_tui.data import DatasetFileError, DatasetUnavailable, get_dataset, open_dataset
from collapse_tui.data.cache import CachedDataset
from collapse_tui.data.files import H5DSprites, H5Shapes3D, NpzDSprites, open_official, read_h5_rows

DSPRITES_H5 = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
DSPRITES_NPZ = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"


def _boom():
    raise AssertionError("the npz metadata pickle was loaded")


class _Trap:
    def __reduce__(self):
        return (_boom, ())


def dsprites_rows(n: int, seed: int = 0):
    """``n`` distinct grid indices in a shuffled order, their images (n, 64, 64) and official labels."""
    grid = get_dataset("dsprites")
    idx = grid.sample_indices(n, seed)
    factors = grid.index_to_factors(idx)
    classes = np.concatenate([np.zeros((n, 1), np.int64), factors], axis=1)
    values = np.concatenate([np.ones((n, 1)), grid.factor_value(factors)], axis=1)
    return idx, grid.images(idx)[..., 0], classes, values


def write_dsprites_h5(path, imgs, classes, values, chunks=True):
    with h5py.File(path, "w") as h5:
        h5.create_dataset("imgs", data=imgs, chunks=(16, 64, 64) if chunks else None,
                          compression="gzip" if chunks else None)
        h5.create_dataset("latents/classes", data=classes)
        h5.create_dataset("latents/values", data=values)
    return path


def write_dsprites_npz(path, imgs, classes, values):
    # The published npz carries a pickled metadata dict; this one explodes if anything unpickles it.
    with open(path, "wb") as fh:
        np.savez_compressed(fh, imgs=imgs, latents_classes=classes, latents_values=values,
                            metadata=np.array([_Trap()], dtype=object))
    return path


def shapes3d_rows(n: int, seed: int = 0):
    grid = get_dataset("shapes3d")
    idx = grid.sample_indices(n, seed)
    return idx, grid.images(idx), grid.factor_value(grid.index_to_factors(idx))


def write_shapes3d(path, images, labels):
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images", data=images, chunks=(8, 64, 64, 3), compression="gzip")
        h5.create_dataset("labels", data=labels)
    return path


@pytest.fixture(scope="module")
def dsprites_fixture():
    return dsprites_rows(150)


@pytest.fixture(scope="module")
def shapes3d_fixture():
    return shapes3d_rows(40)


# ------------------------------------------------------------------------------------------ reading
@pytest.mark.parametrize("fmt", ["hdf5", "hdf5-contiguous", "npz"])
def test_dsprites_file_serves_each_row_by_its_labels(tmp_path, dsprites_fixture, fmt):
    idx, imgs, classes, values = dsprites_fixture
    if fmt == "npz":
        path = write_dsprites_npz(tmp_path / DSPRITES_NPZ, imgs, classes, values)
    else:
        path = write_dsprites_h5(tmp_path / DSPRITES_H5, imgs, classes, values, chunks=fmt == "hdf5")
    ds = open_official("dsprites", path)
    assert isinstance(ds, NpzDSprites if fmt == "npz" else H5DSprites)
    assert ds.source == "official" and ds.num_available == 150 and len(ds) == 737_280
    assert np.array_equal(ds.available, np.sort(idx))
    # Any order, with repeats: row r of the file is the image of grid index idx[r].
    ask = np.array([idx[5], idx[0], idx[5], idx[149], idx[77]])
    got = ds.images(ask, batch_size=2)
    assert got.shape == (5, 64, 64, 1) and got.dtype == np.uint8
    assert np.array_equal(got[..., 0], imgs[[5, 0, 5, 149, 77]])
    assert np.array_equal(ds.index_to_factors(ask), classes[[5, 0, 5, 149, 77], 1:])
    # Sampling draws only rows the file holds.
    drawn = ds.sample_indices(150, np.random.RandomState(1))
    assert sorted(drawn.tolist()) == sorted(idx.tolist())
    assert np.isin(ds.sample_factors(40, 2) @ ds.strides, idx).all()
    with pytest.raises(ValueError, match="not among the 150 images"):
        ds.images([int(np.setdiff1d(np.arange(200), idx)[0])])
    with pytest.raises(ValueError, match="at most 150"):
        ds.sample_indices(151, 0)
    record = ds.provenance()
    assert record["source"] == "official" and record["path"] == str(path) and len(record["sha256"]) == 64
    assert record["official"] is False  # a fixture, not the published release
    assert ds.fingerprint() == f"dsprites-file-{record['sha256'][:16]}"


def test_shapes3d_file_serves_each_row_by_its_values(tmp_path, shapes3d_fixture):
    idx, images, labels = shapes3d_fixture
    ds = open_official("shapes3d", write_shapes3d(tmp_path / "3dshapes.h5", images, labels))
    assert isinstance(ds, H5Shapes3D) and ds.num_available == 40
    order = np.array([3, 39, 3, 0])
    assert np.array_equal(ds.images(idx[order]), images[order])
    assert ds.images(idx[:1]).shape == (1, 64, 64, 3)
    assert "40 of the 480,000 images" in ds.description


def test_h5_rows_are_read_a_chunk_at_a_time(tmp_path):
    data = np.arange(100 * 3, dtype=np.uint8).reshape(100, 3)
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        h5.create_dataset("chunked", data=data, chunks=(10, 3))
        h5.create_dataset("contiguous", data=data)
    rows = np.array([0, 9, 10, 11, 55, 99])
    with h5py.File(tmp_path / "x.h5", "r") as h5:
        for key in ("chunked", "contiguous"):
            assert np.array_equal(read_h5_rows(h5[key], rows), data[rows])
        assert read_h5_rows(h5["chunked"], np.array([], dtype=np.int64)).shape == (0, 3)
    # Rows near and far apart, merged into slabs or not: always exactly the rows asked for.
    big = np.random.RandomState(0).randint(0, 255, size=(1000, 5)).astype(np.uint8)
    with h5py.File(tmp_path / "y.h5", "w") as h5:
        h5.create_dataset("chunked", data=big, chunks=(7, 5), compression="gzip")
        h5.create_dataset("contiguous", data=big)
    rs = np.random.RandomState(1)
    with h5py.File(tmp_path / "y.h5", "r") as h5:
        for n in (1, 30, 400, 1000):
            rows = np.sort(rs.choice(1000, size=n, replace=False))
            for key in ("chunked", "contiguous"):
                assert np.array_equal(read_h5_rows(h5[key], rows), big[rows]), (key, n)


def test_npz_metadata_pickle_is_never_loaded(tmp_path, dsprites_fixture):
    idx, imgs, classes, values = dsprites_fixture
    path = write_dsprites_npz(tmp_path / DSPRITES_NPZ, imgs, classes, values)
    with pytest.raises(AssertionError, match="unpickles|was loaded"):
        np.load(path, allow_pickle=True)["metadata"]  # the trap works when something does unpickle it
    ds = open_official("dsprites", path)
    assert np.array_equal(ds.images(idx[:3])[..., 0], imgs[:3])


# --------------------------------------------------------------------------------------- bad files
def _bad_h5(path, **changes):
    idx, imgs, classes, values = dsprites_rows(20, seed=4)
    parts = {"imgs": imgs, "latents/classes": classes, "latents/values": values}
    parts.update(changes)
    with h5py.File(path, "w") as h5:
        for key, value in parts.items():
            if value is not None:
                h5.create_dataset(key, data=value)
    return path


def _assert_one_clear_error(path, match, name="dsprites", read=False):
    with pytest.raises(DatasetFileError, match=match) as info:
        ds = open_official(name, path)
        if read:
            ds.images(ds.available)
    err = info.value
    assert str(path) in str(err)
    # One message, not a chain of h5py/numpy tracebacks.
    assert err.__cause__ is None and err.__suppress_context__ or err.__context__ is None


@pytest.mark.parametrize("change, match", [
    ({"imgs": None}, "no 'imgs' array"),
    ({"latents/values": None}, "no 'latents/values' array"),
    ({"imgs": np.zeros((20, 32, 32), np.uint8)}, r"'imgs' has shape \(20, 32, 32\)"),
    ({"imgs": np.zeros((20, 64, 64), np.float32)}, "'imgs' has dtype float32"),
    ({"imgs": np.zeros((19, 64, 64), np.uint8)}, "'imgs' has 19 rows but the labels have 20"),
    ({"latents/classes": np.zeros((20, 5), np.int64)}, r"'latents/classes' has shape \(20, 5\)"),
])
def test_bad_layouts_are_named(tmp_path, change, match):
    _assert_one_clear_error(_bad_h5(tmp_path / DSPRITES_H5, **change), match)


def test_inconsistent_labels_are_named(tmp_path):
    idx, imgs, classes, values = dsprites_rows(20, seed=4)
    wrong = classes.copy()
    wrong[7, 3] = (wrong[7, 3] + 1) % 40
    _assert_one_clear_error(_bad_h5(tmp_path / "a.hdf5", **{"latents/classes": wrong}),
                            "inconsistent labels: row 7 has classes")
    off = values.copy()
    off[2, 2] = 0.55  # between two scales
    _assert_one_clear_error(_bad_h5(tmp_path / "b.hdf5", **{"latents/values": off}), "row 2: scale value 0.55")
    dup_c, dup_v = classes.copy(), values.copy()
    dup_c[9], dup_v[9] = classes[3], values[3]
    _assert_one_clear_error(_bad_h5(tmp_path / "c.hdf5", **{"latents/classes": dup_c, "latents/values": dup_v}),
                            "rows 3 and 9 have the same factors")
    colour = classes.copy()
    colour[0, 0] = 1
    _assert_one_clear_error(_bad_h5(tmp_path / "d.hdf5", **{"latents/classes": colour}), "colour class 1")
    big = imgs.copy()
    big[4, 10, 10] = 255
    _assert_one_clear_error(_bad_h5(tmp_path / "e.hdf5", imgs=big), "pixels go up to 255", read=True)


def test_shapes3d_labels_off_the_grid_are_named(tmp_path, shapes3d_fixture):
    idx, images, labels = shapes3d_fixture
    bad = labels.copy()
    bad[5, 5] = 31.0  # orientation beyond 30 degrees
    _assert_one_clear_error(write_shapes3d(tmp_path / "3dshapes.h5", images, bad), "row 5: orientation value 31",
                            name="shapes3d")
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        h5.create_dataset("images", data=images)
    _assert_one_clear_error(tmp_path / "x.h5", "no 'labels' array", name="shapes3d")


def test_truncated_and_garbage_files_get_one_clear_error(tmp_path, dsprites_fixture):
    idx, imgs, classes, values = dsprites_fixture
    good_h5 = write_dsprites_h5(tmp_path / "good.hdf5", imgs, classes, values)
    data = good_h5.read_bytes()
    cut = tmp_path / DSPRITES_H5
    cut.write_bytes(data[: len(data) // 2])
    _assert_one_clear_error(cut, "not a readable HDF5 file|could not be read", read=True)
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(b"this is not a dataset" * 100)
    _assert_one_clear_error(garbage, "not a readable HDF5 file")
    _assert_one_clear_error(tmp_path / "missing.hdf5", "no such file")
    (tmp_path / "empty").mkdir()
    _assert_one_clear_error(tmp_path / "empty", "no dsprites file here")

    good_npz = write_dsprites_npz(tmp_path / "good.npz", imgs, classes, values)
    blob = good_npz.read_bytes()
    short = tmp_path / "short.npz"
    short.write_bytes(blob[: len(blob) * 2 // 3])
    _assert_one_clear_error(short, "not a readable HDF5 file|not a readable npz file", read=True)


def test_npz_damaged_inside_is_caught_when_read(tmp_path, dsprites_fixture):
    idx, imgs, classes, values = dsprites_fixture
    path = write_dsprites_npz(tmp_path / DSPRITES_NPZ, imgs, classes, values)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("imgs.npy")
    blob = bytearray(path.read_bytes())
    # Flip bytes inside the compressed image member (past its local header): the labels still open,
    # the images fail their CRC or their inflate when read.
    start = info.header_offset + 30 + len(info.filename) + 200
    for i in range(start, start + 64):
        blob[i] ^= 0xFF
    path.write_bytes(bytes(blob))
    _assert_one_clear_error(path, "images could not be read|not a readable npz file|truncated", read=True)


def test_npz_with_missing_or_pickled_arrays_is_refused(tmp_path, dsprites_fixture):
    idx, imgs, classes, values = dsprites_fixture
    np.savez(tmp_path / "a.npz", imgs=imgs, latents_classes=classes)
    _assert_one_clear_error(tmp_path / "a.npz", "no 'latents_values' array")
    with open(tmp_path / "b.npz", "wb") as fh:
        np.savez(fh, imgs=imgs, latents_classes=np.array([_Trap()] * len(classes), dtype=object),
                 latents_values=values)
    _assert_one_clear_error(tmp_path / "b.npz", "holds Python objects, which are never unpickled")


# ---------------------------------------------------------------------------------- finding a source
def test_auto_takes_the_official_file_from_data_dir_env_or_path(tmp_path, monkeypatch, dsprites_fixture):
    idx, imgs, classes, values = dsprites_fixture
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = write_dsprites_h5(data_dir / DSPRITES_H5, imgs, classes, values)
    assert open_dataset("dsprites", data_dir=data_dir).source == "official"
    assert open_dataset("dsprites", path=path).path == path
    assert open_dataset("dsprites", path=data_dir).path == path
    monkeypatch.setenv("COLLAPSE_TUI_DATA", os.pathsep.join([str(tmp_path / "elsewhere"), str(data_dir)]))
    assert open_dataset("dsprites").source == "official"
    # Nothing for Shapes3D there: auto renders it, and says so.
    ds = open_dataset("shapes3d", cache=False)
    assert ds.source == "procedural" and "not the official" in ds.description


def test_official_source_without_a_file_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetUnavailable, match=f"searched {tmp_path}.*3dshapes.h5.*--data-dir"):
        open_dataset("shapes3d", "official", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown source 'web'"):
        open_dataset("dsprites", "web")


def test_auto_does_not_hide_a_broken_file(tmp_path):
    (tmp_path / "3dshapes.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(DatasetFileError, match="3dshapes.h5: not a readable HDF5 file"):
        open_dataset("shapes3d", data_dir=tmp_path)


# -------------------------------------------------------------------------------------------- cache
def _cached(tmp_path, log=None):
    return open_dataset("dsprites", "procedural", cache_dir=tmp_path / "cache", log=log)


def test_cache_serves_the_second_run_without_rendering(tmp_path, monkeypatch):
    first = _cached(tmp_path)
    assert isinstance(first, CachedDataset) and "renders cached in" in first.description
    idx = first.sample_indices(300, 0)
    want = get_dataset("dsprites").images(idx)
    assert np.array_equal(first.images(idx), want)
    assert first.directory.name == "dsprites-procedural-v2"
    segments = list(first.directory.glob("*.h5"))
    assert len(segments) == 1
    # The segment is a file in the official layout: the official loader reads it.
    assert open_official("dsprites", segments[0]).num_available == 300

    calls = []
    real = type(first.inner).render
    monkeypatch.setattr(type(first.inner), "render", staticmethod(lambda f: calls.append(len(f)) or real(f)))
    second = _cached(tmp_path)
    progress = []
    assert np.array_equal(second.images(idx[::-1], progress=lambda d, t: progress.append((d, t))), want[::-1])
    assert sum(calls) <= 2 * len(segments)  # only the spot check renders, nothing else
    assert progress[-1] == (300, 300)
    # New rows are rendered once and added as a new segment; old ones still come from disk.
    more = np.concatenate([idx[:10], np.setdiff1d(second.sample_indices(40, 9), idx)[:20]])
    expected = get_dataset("dsprites").images(more)
    calls.clear()
    assert np.array_equal(second.images(more), expected)
    assert sum(calls) == 20
    assert len(list(first.directory.glob("*.h5"))) == 2


def test_cache_detects_half_written_and_stale_segments(tmp_path):
    messages: list[str] = []
    ds = _cached(tmp_path, log=messages.append)
    idx = ds.sample_indices(100, 3)
    want = ds.images(idx)
    (segment,) = ds.directory.glob("*.h5")

    # Killed mid-write: a cut file under the real name is detected, deleted and rebuilt.
    blob = segment.read_bytes()
    segment.write_bytes(blob[: len(blob) // 3])
    again = _cached(tmp_path, log=messages.append)
    assert np.array_equal(again.images(idx), want)
    assert any("unusable" in m for m in messages)
    (segment,) = ds.directory.glob("*.h5")
    assert open_official("dsprites", segment).num_available == 100

    # A file whose writer never marked it complete is not trusted either.
    with h5py.File(segment, "r+") as h5:
        del h5.attrs["complete"]
    messages.clear()
    assert np.array_equal(_cached(tmp_path, log=messages.append).images(idx), want)
    assert any("not completely written" in m for m in messages)

    # Images that differ from what the renderer draws now (a renderer change without a version bump).
    (segment,) = ds.directory.glob("*.h5")
    with h5py.File(segment, "r+") as h5:
        h5["imgs"][...] = 1 - h5["imgs"][...]
    messages.clear()
    assert np.array_equal(_cached(tmp_path, log=messages.append).images(idx), want)
    assert any("differ from what the renderer draws" in m for m in messages)


def test_cache_is_keyed_by_renderer_version_and_sweeps_old_temporaries(tmp_path, monkeypatch):
    ds = _cached(tmp_path)
    ds.images(ds.sample_indices(20, 0))
    old = ds.directory / "0000020-0000000000000000.h5.tmp999"
    old.write_bytes(b"partial")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    young = ds.directory / "0000020-0000000000000001.h5.tmp998"
    young.write_bytes(b"partial")
    monkeypatch.setattr(type(ds.inner), "renderer_version", 99)
    bumped = _cached(tmp_path)
    assert bumped.directory.name == "dsprites-procedural-v99" and not bumped.segments()
    monkeypatch.undo()
    assert len(_cached(tmp_path).segments()) == 1
    assert not old.exists() and young.exists()  # a young one may belong to a run writing now


def test_unwritable_cache_costs_only_the_cache(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    messages: list[str] = []
    ds = open_dataset("dsprites", "procedural", cache_dir=blocker, log=messages.append)
    idx = ds.sample_indices(10, 0)
    assert np.array_equal(ds.images(idx), get_dataset("dsprites").images(idx))
    assert any("could not cache" in m for m in messages)


def test_pickle_trap_is_a_real_trap():
    with pytest.raises(AssertionError):
        pickle.loads(pickle.dumps(_Trap()))


# ------------------------------------------------------------------------------------ through a run
def test_a_run_trains_on_the_file_in_data_dir_and_records_it(tmp_path, capsys):
    import yaml

    from collapse_tui import cli, store
    from tests.helpers import tiny_config, write_config

    idx, imgs, classes, values = dsprites_rows(160, seed=5)  # exactly n_train + eval.n_samples of the tiny run
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = write_dsprites_h5(data_dir / DSPRITES_H5, imgs, classes, values)
    config = write_config(tmp_path, tiny_config(tmp_path, sae={"epochs": 1}))
    assert cli.main(["--batch", str(config), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"data: dSprites from a file in the official layout {path}" in out.replace("\n", "")
    (run,) = store.list_runs(tmp_path / "runs")
    recorded = yaml.safe_load((run.path / "config.yaml").read_text())
    assert recorded["data"]["path"] == str(data_dir)
    source = recorded["data_source"]
    assert source["source"] == "official" and source["path"] == str(path) and source["images"] == 160
    assert source["sha256"] == open_official("dsprites", path).sha256
    progress = [e for e in store.iter_events(run.path) if e.kind == "progress" and e.phase == "data"]
    assert progress and progress[-1].done == progress[-1].total == 160

    # Too few rows for the run: the run fails with a sentence, not a traceback on the console.
    small = dsprites_rows(100, seed=6)
    write_dsprites_h5(data_dir / DSPRITES_H5, *small[1:])
    assert cli.main(["--batch", str(config), "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out.replace("\n", "")
    assert "exceeds the 100 images of dSprites from a file in the official layout" in out
    assert "Traceback" not in out
