"""The tensorflow-datasets source: reading prepared copies (tfds' mock data and real tiny copies), the
offline 'not prepared' path, and preparing from the official file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from collapse_tui.data import tfds_source as ts
from collapse_tui.data.base import DatasetFileError, DatasetUnavailable

DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"


@pytest.fixture(scope="module")
def tf_tfds():
    return ts._import_tfds()


def write_info(data_dir: Path, name: str, n: int, version: str = "2.0.0", file_format: str = "tfrecord",
               num_bytes: int = 1000, shard: bool = True) -> Path:
    """A minimal dataset_info.json, as tfds writes it after preparing ``n`` rows in one shard, and an empty
    stand-in for the shard unless ``shard`` is False."""
    version_dir = Path(data_dir) / name / version
    version_dir.mkdir(parents=True, exist_ok=True)
    info = {"name": name, "version": version, "fileFormat": file_format,
            "splits": [{"name": "train", "numBytes": str(num_bytes), "shardLengths": [str(n)],
                        "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"}]}
    (version_dir / "dataset_info.json").write_text(json.dumps(info))
    if shard:
        (version_dir / f"{name}-train.{file_format}-00000-of-00001").touch()  # mocks never read it
    return version_dir


def controlled_as_dataset(examples):
    """A replacement for tfds' ``_as_dataset`` serving ``examples`` (decoded feature dicts) through tfds'
    own encode/decode, so decoders such as SkipDecoding behave as on a real copy."""
    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        import tensorflow as tf
        features = self.info.features
        encoded = [features.encode_example(ex) for ex in examples]
        columns = {key: np.array([e[key] for e in encoded]) for key in encoded[0]}
        ds = tf.data.Dataset.from_tensor_slices(columns)
        return ds.map(lambda ex: features.decode_example(ex, decoders=decoders))
    return as_dataset


def dsprites_example(classes, marker: int) -> dict:
    image = np.zeros((64, 64, 1), np.uint8)
    image[0, :20, 0] = (marker >> np.arange(20)) & 1  # the marker, in binary, along the top row
    keys = ts.SPECS["dsprites"].label_keys
    ex = {"image": image, **{k: int(c) for k, c in zip(keys, classes)}}
    ex.update({k.replace("label_", "value_"): float(c) for k, c in zip(keys, classes)})
    return ex


def marker_of(images: np.ndarray) -> np.ndarray:
    return (images[:, 0, :20, 0].astype(np.int64) << np.arange(20)).sum(axis=1)


def accepting(name: str, size: int, sha256: str):
    """``ts.SPECS[name]`` with the official file it prepares from declared to have ``size`` and ``sha256``."""
    spec = ts.SPECS[name]
    return dataclasses.replace(spec, file=dataclasses.replace(spec.file, size=size, sha256=sha256))


# ---------------------------------------------------------------------------------------- cheap paths
def test_module_imports_without_tensorflow():
    code = ("import sys, collapse_tui.data.tfds_source as t; "
            "t.find_prepared('dsprites', '/nonexistent'); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_find_prepared(tmp_path, monkeypatch):
    assert ts.find_prepared("dsprites", tmp_path) is None
    assert ts.find_prepared("dsprites", tmp_path / "missing") is None
    (tmp_path / "dsprites" / "2.0.0").mkdir(parents=True)  # a directory without metadata is not prepared
    assert ts.find_prepared("dsprites", tmp_path) is None
    # tfds' work-in-progress directory, even with metadata, is not a prepared version
    write_info(tmp_path, "dsprites", 5, version="incomplete.ABC_2.0.0")
    assert ts.find_prepared("dsprites", tmp_path) is None
    newer = write_info(tmp_path, "dsprites", 5, version="2.1.0")
    assert ts.find_prepared("dsprites", tmp_path) == newer
    default = write_info(tmp_path, "dsprites", 5, version="2.0.0")
    assert ts.find_prepared("dsprites", tmp_path) == default  # the builder's default version first
    assert ts.find_prepared("shapes3d", tmp_path) is None
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert ts.default_data_dir() == tmp_path
    assert ts.find_prepared("dsprites") == default
    with pytest.raises(ValueError, match="mnist"):
        ts.find_prepared("mnist", tmp_path)


@pytest.mark.parametrize("cls, name, filename", [(ts.TfdsDSprites, "dsprites", DSPRITES_FILE),
                                                 (ts.TfdsShapes3D, "shapes3d", "3dshapes.h5")])
def test_not_prepared_says_how_and_returns_at_once(tmp_path, cls, name, filename):
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as err:
        cls(data_dir=tmp_path)
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert filename in message
    assert f"collapse-tui --prepare-tfds {name} --manual-dir DIR --data-dir {tmp_path}" in message
    assert "Traceback" not in message


def test_shards_missing_behind_metadata_is_unavailable_not_a_traceback(tmp_path, tf_tfds):
    # dataset_info.json present but no shards: tfds' "could not find data" AssertionError is turned into
    # instructions, not let out.
    write_info(tmp_path, "dsprites", 5, shard=False)
    with pytest.raises(DatasetUnavailable) as err:
        ts.TfdsDSprites(tmp_path)
    assert "incomplete" in str(err.value) and "--prepare-tfds dsprites" in str(err.value)


def test_unreadable_metadata_is_a_file_error(tmp_path):
    version_dir = write_info(tmp_path, "shapes3d", 5)
    (version_dir / "dataset_info.json").write_text("{not json")
    with pytest.raises(DatasetFileError, match="dataset_info.json"):
        ts.TfdsShapes3D(tmp_path)


# ---------------------------------------------------------------------------------------- reading mocks
def test_reads_tfds_mock_dsprites(tmp_path, tf_tfds):
    _, tfds = tf_tfds
    n = 60
    write_info(tmp_path, "dsprites", n)
    calls = []
    with tfds.testing.mock_data(num_examples=n, max_value=2, data_dir=str(tmp_path)):
        ds = ts.TfdsDSprites(tmp_path, progress=lambda done, total: calls.append((done, total)))
        # What tfds itself serves, read independently, fully decoded, in storage order.
        served = list(tfds.as_numpy(tfds.builder("dsprites", data_dir=str(tmp_path)).as_dataset(
            split="train", shuffle_files=False)))
        assert len(served) == n
        keys = ts.SPECS["dsprites"].label_keys
        labels = np.array([[ex[k] for k in keys] for ex in served])
        index = labels @ ds.strides
        first = {}
        for row, i in enumerate(index):
            first.setdefault(int(i), row)
        assert ds.source == "tfds"
        assert calls[-1] == (n, n)
        np.testing.assert_array_equal(ds.available, sorted(first))
        np.testing.assert_array_equal(ds.index_to_factors(ds.available), labels[[first[i] for i in sorted(first)]])

        chosen = ds.available[[7, 2, 7, 40, 0]]
        progress = []
        images = ds.images(chosen, progress=lambda d, t: progress.append((d, t)), batch_size=2)
        assert images.dtype == np.uint8 and images.shape == (5, 64, 64, 1)
        assert set(np.unique(images)) <= {0, 1}
        for got, i in zip(images, chosen):
            np.testing.assert_array_equal(got, served[first[int(i)]]["image"])
        np.testing.assert_array_equal(images[0], images[2])  # a row asked for twice comes back identical
        assert progress[-1] == (5, 5) and [d for d, _ in progress] == sorted(d for d, _ in progress)
        assert len(progress) == 2  # 4 distinct rows, 2 a batch, all in one pass

        picks = ds.sample_indices(30, np.random.RandomState(0))
        assert np.isin(picks, ds.available).all() and len(set(picks.tolist())) == 30
        again = ds.images(picks[:3])
        np.testing.assert_array_equal(again, ds.images(picks[:3]))
        assert ds.images([], progress=lambda d, t: progress.append((d, t))).shape == (0, 64, 64, 1)
        assert progress[-1] == (0, 0)
        factors = ds.index_to_factors(chosen[:2])
        obs = ds.sample_observations_from_factors(factors)
        assert obs.dtype == np.float32 and obs.shape == (2, 64, 64, 1)
        with pytest.raises(ValueError, match="not among"):
            ds.images([int(np.setdiff1d(np.arange(len(ds)), ds.available)[0])])


def test_reads_shapes3d_labels_in_factor_order(tmp_path, tf_tfds):
    _, tfds = tf_tfds
    keys = ts.SPECS["shapes3d"].label_keys  # floor, wall, object hue, scale, shape, orientation
    classes = np.array([[1, 2, 3, 4, 1, 5], [9, 0, 0, 7, 3, 14], [0, 0, 0, 0, 0, 0], [5, 5, 5, 5, 2, 9]])
    examples = []
    for row, c in enumerate(classes):
        image = np.full((64, 64, 3), 40 * row, np.uint8)
        image[0, 0] = (row, 255 - row, 7)
        ex = {"image": image, **{k: int(v) for k, v in zip(keys, c)}}
        ex.update({k.replace("label_", "value_"): float(v) for k, v in zip(keys, c)})
        examples.append(ex)
    write_info(tmp_path, "shapes3d", len(examples))
    with tfds.testing.mock_data(as_dataset_fn=controlled_as_dataset(examples), data_dir=str(tmp_path)):
        ds = ts.TfdsShapes3D(tmp_path)
        # index = classes . strides with strides (48000, 4800, 480, 60, 15, 1)
        expected = {1 * 48000 + 2 * 4800 + 3 * 480 + 4 * 60 + 1 * 15 + 5: 0,
                    9 * 48000 + 0 + 0 + 7 * 60 + 3 * 15 + 14: 1, 0: 2,
                    5 * 48000 + 5 * 4800 + 5 * 480 + 5 * 60 + 2 * 15 + 9: 3}
        np.testing.assert_array_equal(ds.available, sorted(expected))
        order = [3, 0, 1, 2, 0]
        images = ds.images(ds.factors_to_index(classes[order]))
        assert images.dtype == np.uint8 and images.shape == (5, 64, 64, 3)
        for got, row in zip(images, order):
            np.testing.assert_array_equal(got, examples[row]["image"])
        assert ds.description.startswith("Shapes3D from the tensorflow-datasets copy in ")
        assert "4 images" in ds.description


def test_repeated_factors_keep_the_first_row_with_a_warning(tmp_path, tf_tfds):
    _, tfds = tf_tfds
    classes = [(0, 1, 2, 3, 4), (2, 5, 39, 31, 31), (0, 1, 2, 3, 4), (1, 0, 0, 0, 0)]
    examples = [dsprites_example(c, marker=100 + row) for row, c in enumerate(classes)]
    write_info(tmp_path, "dsprites", len(examples))
    with tfds.testing.mock_data(as_dataset_fn=controlled_as_dataset(examples), data_dir=str(tmp_path)):
        with pytest.warns(UserWarning, match="1 of its 4 rows repeat"):
            ds = ts.TfdsDSprites(tmp_path)
        assert ds.num_available == 3
        twice = ds.factors_to_index(classes[0])[0]
        np.testing.assert_array_equal(marker_of(ds.images([twice, ds.factors_to_index(classes[3])[0]])),
                                      [100, 103])


# ---------------------------------------------------------------------------------------- real copies
def official_layout_dsprites(path: Path, indices: np.ndarray) -> None:
    """A small hdf5 in the official dSprites layout (colour first) whose images carry their index."""
    import h5py
    sizes = np.array([1, 3, 6, 40, 32, 32])
    strides = np.append(np.cumprod(sizes[:0:-1])[::-1], 1)
    classes = (indices[:, None] // strides) % sizes
    images = np.stack([dsprites_example(c[1:], int(i))["image"][..., 0] for c, i in zip(classes, indices)])
    with h5py.File(path, "w") as h5:
        h5["imgs"] = images
        h5["latents/classes"] = classes
        h5["latents/values"] = classes.astype(np.float64)


@pytest.fixture
def small_official(tmp_path, tf_tfds):
    """An official-layout file small enough to prepare in a test, accepted as the official one: the
    expected size and sha256 are switched to its own and tfds is handed the file instead of downloading."""
    _, tfds = tf_tfds
    manual = tmp_path / "manual"
    manual.mkdir()
    path = manual / DSPRITES_FILE
    indices = np.sort(np.random.RandomState(3).choice(737280, 40, replace=False))
    official_layout_dsprites(path, indices)
    spec = accepting("dsprites", path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    with mock.patch.dict(ts.SPECS, {"dsprites": spec}), \
            mock.patch.object(tfds.download.DownloadManager, "download", lambda self, url: str(path)):
        yield manual, indices


@pytest.mark.parametrize("file_format", ["tfrecord", "array_record"])
def test_prepare_and_read_a_real_copy(tmp_path, small_official, tf_tfds, file_format):
    _, tfds = tf_tfds
    manual, indices = small_official
    data_dir = tmp_path / "tfds"
    lines = []
    real_builder = tfds.builder
    with mock.patch.object(tfds, "builder", lambda *a, **k: real_builder(*a, file_format=file_format, **k)):
        version_dir = ts.prepare("dsprites", manual, data_dir, log=lines.append)
    assert version_dir == data_dir / "dsprites" / "2.0.0"
    assert ts.find_prepared("dsprites", data_dir) == version_dir
    assert any("prepared dSprites" in line for line in lines)
    # Preparing again is a no-op, whatever the manual directory holds.
    assert ts.prepare("dsprites", tmp_path / "nothing", data_dir, log=lines.append) == version_dir

    ds = ts.TfdsDSprites(data_dir)
    np.testing.assert_array_equal(ds.available, indices)
    wanted = indices[[5, 39, 5, 0, 17]]
    images = ds.images(wanted, batch_size=2)
    assert images.dtype == np.uint8 and images.shape == (5, 64, 64, 1)
    np.testing.assert_array_equal(marker_of(images), wanted)
    if file_format == "array_record":
        assert ds._data_source  # random access, not a scan
    assert ds.fingerprint() == ts.TfdsDSprites(data_dir).fingerprint()
    assert ds.fingerprint().startswith("dsprites-tfds-2.0.0-")
    assert ds.description == (f"dSprites from the tensorflow-datasets copy in {data_dir} "
                              "(version 2.0.0, 40 images)")
    assert ds.provenance()["data_dir"] == str(data_dir) and ds.provenance()["version"] == "2.0.0"

    info_path = version_dir / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["splits"][0]["numBytes"] = str(int(info["splits"][0].get("numBytes", 0)) + 1)
    info_path.write_text(json.dumps(info))
    assert ts.TfdsDSprites(data_dir).fingerprint() != ds.fingerprint()


def test_tfds_refusing_the_file_is_a_clear_error(tmp_path, tf_tfds):
    # Our own check accepts the file (its size and sha256 are declared official), but tfds checks it
    # against its registered checksum too: the refusal comes back as DatasetFileError, with no download.
    manual = tmp_path / "manual"
    manual.mkdir()
    path = manual / DSPRITES_FILE
    official_layout_dsprites(path, np.arange(4))
    spec = accepting("dsprites", path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    start = time.perf_counter()
    with mock.patch.dict(ts.SPECS, {"dsprites": spec}), pytest.raises(DatasetFileError) as err:
        ts.prepare("dsprites", manual, tmp_path / "tfds", log=lambda line: None)
    assert time.perf_counter() - start < 30
    assert "could not prepare dSprites" in str(err.value)
    assert ts.find_prepared("dsprites", tmp_path / "tfds") is None


# ---------------------------------------------------------------------------------------- prepare errors
def test_prepare_without_the_file_names_it(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        ts.prepare("dsprites", tmp_path, tmp_path / "tfds", log=lambda line: None)
    assert DSPRITES_FILE in str(err.value) and "28,024,106 bytes" in str(err.value)
    with pytest.raises(DatasetUnavailable, match="3dshapes.h5.*267,573,662 bytes"):
        ts.prepare("shapes3d", tmp_path / "absent", tmp_path / "tfds", log=lambda line: None)
    assert not (tmp_path / "tfds").exists()


def test_prepare_refuses_a_file_of_the_wrong_size(tmp_path):
    (tmp_path / "3dshapes.h5").write_bytes(b"\0" * 1000)
    with pytest.raises(DatasetFileError, match="1,000 bytes, but the official 3dshapes.h5 has 267,573,662"):
        ts.prepare("shapes3d", tmp_path, tmp_path / "tfds", log=lambda line: None)


def test_prepare_refuses_a_file_whose_checksum_differs(tmp_path):
    path = tmp_path / DSPRITES_FILE
    with open(path, "wb") as fh:  # the official size, sparse, so the checksum is what refuses it
        fh.truncate(28_024_106)
    lines = []
    with pytest.raises(DatasetFileError) as err:
        ts.prepare("dsprites", tmp_path, tmp_path / "tfds", log=lines.append)
    assert "sha256" in str(err.value) and ts.SPECS["dsprites"].file.sha256 in str(err.value)
    assert err.value.path == str(path)
    assert not (tmp_path / "tfds").exists()


def test_check_official_file_accepts_the_published_bytes(tmp_path):
    payload = os.urandom(5000)
    path = tmp_path / "3dshapes.h5"
    path.write_bytes(payload)
    spec = accepting("shapes3d", 5000, hashlib.sha256(payload).hexdigest())
    with mock.patch.dict(ts.SPECS, {"shapes3d": spec}):
        assert ts.check_official_file("shapes3d", tmp_path, log=lambda line: None) == path
