"""dSprites and Shapes3D from a prepared tensorflow-datasets (tfds) copy.

tfds writes a dataset once ("prepare") into ``<data_dir>/<name>/<version>/``: shard files plus a
``dataset_info.json`` written last. This module reads such a copy and never downloads: offline, a tfds
download retries for minutes before failing, so a copy that is not prepared is reported at once, with
the command that prepares it from the official file the user already has (``prepare``).

tfds shuffles examples when it writes them, so the storage rows are in no useful order and each carries
its factor classes in ``label_*`` features. Opening a copy reads every row's labels once (images left
encoded) to index the rows; ``images`` then fetches any set of rows in one pass over the shards,
decoding only the wanted images. A copy written in the array_record format is read at random instead.

``tensorflow_datasets`` (which loads TensorFlow) is imported only when a copy is actually opened or
prepared: ``find_prepared`` and everything else here imports nothing heavy.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from collapse_tui.data.base import DatasetFileError, DatasetUnavailable, ProgressFn, StoredDataset
from collapse_tui.data.grid import DSPRITES, SHAPES3D, FactorGrid
from collapse_tui.data.official import DSPRITES_HDF5, SHAPES3D_H5, OfficialFile, file_sha256

LogFn = Callable[[str], None]

SPLIT = "train"


@dataclass(frozen=True)
class _Spec:
    """What the tfds builder of a dataset is made of."""

    grid: FactorGrid
    #: The official file tfds prepares the dataset from (under its published name, as in tfds' checksums).
    file: OfficialFile
    #: tfds feature of each of our factors, in our factor order.
    label_keys: tuple[str, ...]
    #: The builder's default version first; others it can read.
    versions: tuple[str, ...]


SPECS: dict[str, _Spec] = {
    "dsprites": _Spec(
        grid=DSPRITES,
        file=DSPRITES_HDF5,
        label_keys=("label_shape", "label_scale", "label_orientation", "label_x_position", "label_y_position"),
        versions=("2.0.0", "2.1.0"),
    ),
    "shapes3d": _Spec(
        grid=SHAPES3D,
        file=SHAPES3D_H5,
        label_keys=("label_floor_hue", "label_wall_hue", "label_object_hue", "label_scale", "label_shape",
                    "label_orientation"),
        versions=("2.0.0",),
    ),
}

_VERSION_DIR = re.compile(r"^\d+\.\d+\.\d+$")
_INFO_FILE = "dataset_info.json"
# Rows whose labels are read per tf.data batch in the indexing pass.
_LABEL_BATCH = 8192


def _spec(name: str) -> _Spec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"no tensorflow-datasets source for dataset {name!r}; "
                         f"expected one of {', '.join(SPECS)}") from None


def default_data_dir() -> Path:
    """Where tfds keeps prepared datasets unless told otherwise: ``$TFDS_DATA_DIR``, else
    ``~/tensorflow_datasets``."""
    return Path(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def _data_root(data_dir: str | Path | None) -> Path:
    return default_data_dir() if data_dir is None else Path(data_dir).expanduser()


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def find_prepared(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The directory ``<data_dir>/<name>/<version>`` of a prepared tfds copy of dataset ``name``, or None.

    A copy counts as prepared when its ``dataset_info.json`` exists (tfds writes it after the data). The
    builder's default version is preferred, then the newest other version. Imports nothing heavy."""
    spec = _spec(name)
    base = _data_root(data_dir) / name
    if not base.is_dir():
        return None
    for version in spec.versions:
        if (base / version / _INFO_FILE).is_file():
            return base / version
    others = sorted((p for p in base.iterdir() if _VERSION_DIR.match(p.name) and (p / _INFO_FILE).is_file()),
                    key=lambda p: _version_key(p.name), reverse=True)
    return others[0] if others else None


def prepare_instructions(name: str, data_dir: str | Path | None = None) -> str:
    """How to prepare the tfds copy of ``name`` offline from the official file, as one paragraph."""
    spec = _spec(name)
    target = "" if data_dir is None else f" --data-dir {_data_root(data_dir)}"
    return (f"Put the official file {spec.file.filename} ({spec.file.size:,} bytes) in a directory DIR and run "
            f"`collapse-tui --prepare-tfds {name} --manual-dir DIR{target}` (no network needed).")


def _unavailable(name: str, data_dir: str | Path | None) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"{_spec(name).grid.title} has not been prepared for tensorflow-datasets in {_data_root(data_dir)} "
        f"(no {name}/<version>/{_INFO_FILE} there). {prepare_instructions(name, data_dir)}")


def _import_tfds():
    """tensorflow_datasets, imported on first use with TensorFlow's start-up chatter turned down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    first = "tensorflow" not in sys.modules
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DatasetUnavailable(f"tensorflow-datasets is not usable here ({err}); install tensorflow and "
                                 "tensorflow-datasets, or use the official files instead") from None
    if first:
        _keep_tf_off_the_gpu(tf)
    return tf, tfds


def _keep_tf_off_the_gpu(tf) -> None:
    # TensorFlow only parses and decodes records here; left alone it reserves most of a GPU's memory,
    # which starves JAX or torch training on the same device. Under the TensorFlow backend the GPU is
    # Keras' and is left as it is.
    backend = os.environ.get("KERAS_BACKEND")
    keras = sys.modules.get("keras")
    if keras is not None:
        try:
            backend = keras.backend.backend()
        except Exception:  # noqa: BLE001 - a half-imported keras must not stop the data from loading
            pass
    if backend == "tensorflow":
        return
    try:
        tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):  # the runtime was already started by someone else
        pass


def _read_info(version_dir: Path) -> dict:
    path = version_dir / _INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetFileError(path, f"unreadable tfds metadata: {err}") from None
    if not isinstance(info, dict):
        raise DatasetFileError(path, "unreadable tfds metadata: not a JSON object")
    return info


def _split_info(info: dict, path: Path) -> dict:
    for split in info.get("splits") or ():
        if isinstance(split, dict) and split.get("name") == SPLIT:
            return split
    raise DatasetFileError(path, f"the prepared copy has no '{SPLIT}' split")


def _reason(err: BaseException) -> str:
    """The first line of an error, without TensorFlow's op names around it."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text).strip()
    return text or type(err).__name__


class TfdsDataset(StoredDataset):
    """A prepared tfds copy of a ground-truth dataset (``TfdsDSprites`` and ``TfdsShapes3D`` open one of
    each); ``_read_rows`` reads all the rows of a request in one pass."""

    source = "tfds"

    def __init__(self, name: str, data_dir: str | Path | None = None, progress: ProgressFn | None = None):
        """Open the prepared copy of dataset ``name`` in ``data_dir`` (None: tfds' default) and index its rows
        by their labels; ``progress(done, total)`` follows the indexing pass. Raises ``DatasetUnavailable``
        (saying how to prepare it) when there is no prepared copy, ``DatasetFileError`` when the copy cannot
        be read."""
        self._spec = _spec(name)
        self.grid = self._spec.grid
        version_dir = find_prepared(self.name, data_dir)
        if version_dir is None:
            raise _unavailable(self.name, data_dir)
        self.data_dir = str(_data_root(data_dir))
        self.version = version_dir.name
        self._version_dir = version_dir
        info = _read_info(version_dir)
        split = _split_info(info, version_dir / _INFO_FILE)
        self._file_format = str(info.get("fileFormat") or "tfrecord").lower()
        # dataset_info.json records no checksums of the shards, but their example counts and the split's
        # byte size change whenever the data is prepared differently.
        recorded = {"version": self.version, "format": self._file_format,
                    "shards": [int(n) for n in split.get("shardLengths") or ()],
                    "bytes": str(split.get("numBytes", "")), "template": split.get("filepathTemplate", "")}
        self._hash = hashlib.sha256(json.dumps(recorded, sort_keys=True).encode()).hexdigest()[:10]

        tf, tfds = _import_tfds()
        self._tf, self._tfds = tf, tfds
        try:
            self._builder = tfds.builder(f"{self.name}:{self.version}", data_dir=self.data_dir)
        except Exception as err:  # noqa: BLE001 - any tfds failure is reported as this copy's problem
            raise DatasetFileError(version_dir, f"tensorflow-datasets cannot open it: {_reason(err)}") from None
        self._data_source = None
        self._check_shards()
        classes = self._read_labels(progress)
        self._index_rows(classes)

    # ------------------------------------------------------------------ metadata
    @property
    def description(self) -> str:
        return (f"{self.title} from the tensorflow-datasets copy in {self.data_dir} "
                f"(version {self.version}, {self.num_available:,} images)")

    def fingerprint(self) -> str:
        return f"{self.name}-tfds-{self.version}-{self._hash}"

    # ------------------------------------------------------------------ reading
    def _check_shards(self) -> None:
        """Raise DatasetUnavailable when shard files named in the metadata are missing (a copy deleted in
        part, or whose preparation was interrupted after the metadata was copied)."""
        try:
            names = [Path(str(fi.filename)).name for fi in self._builder.info.splits[SPLIT].file_instructions]
        except Exception:  # noqa: BLE001 - without the list, reading reports what is wrong
            return
        missing = [name for name in names if not (self._version_dir / name).exists()]
        if missing:
            raise DatasetUnavailable(
                f"the tensorflow-datasets copy of {self.title} in {self._version_dir} is incomplete: "
                f"{len(missing)} of its {len(names)} data files are missing (first: {missing[0]}). Delete "
                f"that directory and prepare it again: {prepare_instructions(self.name, self.data_dir)}")

    def _dataset(self, **decoders):
        """The split as a tf.data pipeline, rows in storage order (shard by shard, never interleaved, so
        a row's position is the same in every pass)."""
        tfds = self._tfds
        try:
            return self._builder.as_dataset(
                split=SPLIT, shuffle_files=False, decoders=decoders or None,
                read_config=tfds.ReadConfig(interleave_cycle_length=1, try_autocache=False))
        except AssertionError as err:  # tfds' "could not find data": shards gone since dataset_info.json
            raise DatasetUnavailable(f"the tensorflow-datasets copy of {self.title} in {self._version_dir}: "
                                     f"{_reason(err)} "
                                     f"{prepare_instructions(self.name, self.data_dir)}") from None
        except Exception as err:  # noqa: BLE001
            raise DatasetFileError(self._version_dir, f"tensorflow-datasets cannot read it: {_reason(err)}") from None

    def _labels_of(self, example):
        return self._tf.stack([self._tf.cast(example[key], self._tf.int64) for key in self._spec.label_keys],
                              axis=-1)

    def _iterate(self, ds):
        """numpy batches of ``ds``, with a failing read (a damaged or vanished shard) as DatasetFileError."""
        try:
            yield from self._tfds.as_numpy(ds)
        except (DatasetFileError, DatasetUnavailable):
            raise
        except Exception as err:  # noqa: BLE001
            raise DatasetFileError(self._version_dir, f"reading the prepared copy failed: {_reason(err)}") from None

    def _read_labels(self, progress: ProgressFn | None) -> np.ndarray:
        """Factor classes (n, K) of every storage row, in storage order, read without decoding images."""
        tfds = self._tfds
        try:
            expected = int(self._builder.info.splits[SPLIT].num_examples)
        except Exception:  # noqa: BLE001 - only the progress total depends on it
            expected = 0
        if self._file_format == "array_record":
            # tfds reads array_record only through a data source; its records are parsed here in large
            # batches, labels only, which is far faster than deserialising them one by one.
            batches = self._raw_label_batches()
        else:
            ds = self._dataset(image=tfds.decode.SkipDecoding())
            batches = self._iterate(ds.map(self._labels_of).batch(_LABEL_BATCH))
        parts, done = [], 0
        for labels in batches:
            parts.append(np.asarray(labels, dtype=np.int64))
            done += parts[-1].shape[0]
            if progress is not None:
                progress(done, max(expected, done))
        if progress is not None and done == 0:
            progress(0, 0)
        return np.concatenate(parts) if parts else np.zeros((0, self.num_factors), dtype=np.int64)

    def _raw_label_batches(self):
        tf, tfds = self._tf, self._tfds
        try:
            raw = self._builder.as_data_source(split=SPLIT,
                                               deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
            total = len(raw)
        except Exception as err:  # noqa: BLE001
            raise DatasetFileError(self._version_dir, f"tensorflow-datasets cannot read it: {_reason(err)}") from None
        spec = {key: tf.io.FixedLenFeature([], tf.int64) for key in self._spec.label_keys}
        for start in range(0, total, _LABEL_BATCH):
            try:
                records = raw.__getitems__(list(range(start, min(start + _LABEL_BATCH, total))))
                parsed = tf.io.parse_example(tf.constant(records), spec)
            except Exception as err:  # noqa: BLE001
                raise DatasetFileError(self._version_dir, f"reading the prepared copy failed: {_reason(err)}") from None
            yield np.stack([parsed[key].numpy() for key in self._spec.label_keys], axis=-1)

    def _index_rows(self, classes: np.ndarray) -> None:
        where = f"the tensorflow-datasets copy in {self._version_dir}"
        try:
            self._row_index = self.grid.index_of_rows(classes)  # kept to check rows as they are read
        except ValueError as err:
            raise DatasetFileError(self._version_dir, str(err)) from None
        self._num_rows = int(classes.shape[0])
        # The official data holds each factor combination once. A copy that repeats some (a modified or
        # mock copy) is still usable: the first row of each combination is the one served.
        _, first = np.unique(self._row_index, return_index=True)
        first.sort()
        repeats = self._num_rows - first.size
        if repeats:
            warnings.warn(f"{where}: {repeats:,} of its {self._num_rows:,} rows repeat the factors of an "
                          "earlier row; the first row of each combination is used", stacklevel=3)
        self._set_rows(self._row_index[first])
        self._rows = first.astype(np.int64)[self._rows]

    def _read_rows(self, rows: np.ndarray, batch_size: int, progress: Callable[[int], None] | None) -> np.ndarray:
        """uint8 images of storage ``rows`` (sorted, distinct), in ONE pass over the copy (each row decoded
        once), ``batch_size`` decoded between calls of ``progress(rows done)``."""
        out = np.empty((rows.size, *self.image_shape), dtype=np.uint8)
        if self._file_format == "array_record":
            source = self._random_access()
            if source is not None:
                return self._read_rows_random(source, rows, out, progress, batch_size)
        return self._read_rows_scan(rows, out, progress, batch_size)

    def _check_batch(self, rows: np.ndarray, labels: np.ndarray) -> None:
        got = np.asarray(labels, dtype=np.int64).reshape(-1, self.num_factors) @ self.strides
        if not np.array_equal(got, self._row_index[rows]):
            raise DatasetFileError(self._version_dir, "its rows no longer carry the labels read when it was "
                                                      "opened: it changed on disk; open it again")

    def _read_rows_scan(self, rows, out, progress, batch_size) -> np.ndarray:
        tf, tfds = self._tf, self._tfds
        wanted = np.zeros(self._num_rows, dtype=bool)
        wanted[rows] = True
        wanted_t = tf.constant(wanted)
        image_feature = self._builder.info.features["image"]
        ds = self._dataset(image=tfds.decode.SkipDecoding())
        # Rows past the last wanted one are never read; the others are parsed but only wanted ones decoded.
        ds = ds.take(int(rows[-1]) + 1).enumerate()
        ds = ds.filter(lambda i, ex: tf.gather(wanted_t, i))
        ds = ds.map(lambda i, ex: (i, image_feature.decode_example(ex["image"]), self._labels_of(ex)),
                    num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(int(batch_size)).prefetch(2)
        done = 0
        for where, images, labels in self._iterate(ds):
            where = np.asarray(where, dtype=np.int64)
            self._check_batch(where, labels)
            out[np.searchsorted(rows, where)] = self._as_images(images)
            done += where.size
            if progress is not None:
                progress(done)
        if done != rows.size:
            raise DatasetFileError(self._version_dir, f"it ended after fewer rows than the {self._num_rows:,} "
                                                      "read when it was opened: it changed on disk")
        return out

    def _random_access(self):
        """The split as an array_record data source (random access), or None where tfds cannot give one."""
        if self._data_source is None:
            try:
                self._data_source = self._builder.as_data_source(split=SPLIT)
                if len(self._data_source) != self._num_rows:
                    self._data_source = False
            except Exception:  # noqa: BLE001 - the sequential pass still works
                self._data_source = False
        return self._data_source or None

    def _read_rows_random(self, source, rows, out, progress, batch_size) -> np.ndarray:
        done = 0
        for start in range(0, rows.size, int(batch_size)):
            chunk = rows[start:start + int(batch_size)]
            try:
                examples = source.__getitems__(chunk.tolist())
            except Exception as err:  # noqa: BLE001
                raise DatasetFileError(self._version_dir, f"reading the prepared copy failed: {_reason(err)}") from None
            labels = np.array([[ex[key] for key in self._spec.label_keys] for ex in examples], dtype=np.int64)
            self._check_batch(chunk, labels)
            out[start:start + chunk.size] = self._as_images(np.stack([ex["image"] for ex in examples]))
            done += chunk.size
            if progress is not None:
                progress(done)
        return out

    def _as_images(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.shape[1:] != tuple(self.image_shape) or images.dtype != np.uint8:
            raise DatasetFileError(self._version_dir, f"images are {images.dtype} {images.shape[1:]}, expected "
                                                      f"uint8 {tuple(self.image_shape)}")
        return images


# One constructor per dataset, as the file source has one class per file layout.
TfdsDSprites = functools.partial(TfdsDataset, "dsprites")
TfdsShapes3D = functools.partial(TfdsDataset, "shapes3d")


def open_tfds(name: str, data_dir: str | Path | None = None, progress: ProgressFn | None = None) -> TfdsDataset:
    """The prepared tfds copy of dataset ``name`` ("dsprites" or "shapes3d") in ``data_dir``."""
    return TfdsDataset(name, data_dir=data_dir, progress=progress)


# ---------------------------------------------------------------------------------------------- prepare
def check_official_file(name: str, manual_dir: str | Path, log: LogFn = print) -> Path:
    """The official file of ``name`` in ``manual_dir``, checked byte for byte (size, then sha256).

    Raises ``DatasetUnavailable`` naming the expected file when it is not there and ``DatasetFileError``
    when it is there but is not the published file."""
    spec = _spec(name)
    file = spec.file
    directory = Path(manual_dir).expanduser()
    if not directory.is_dir():
        raise DatasetUnavailable(f"{directory} is not a directory; put the official file {file.filename} "
                                 f"({file.size:,} bytes) in one and pass it as the manual directory")
    path = directory / file.filename
    if not path.is_file():
        raise DatasetUnavailable(f"{spec.grid.title}: expected the official file {file.filename} ({file.size:,} "
                                 f"bytes) in {directory}, which does not have it (tensorflow-datasets needs "
                                 "that exact name)")
    size = path.stat().st_size
    if size != file.size:
        raise DatasetFileError(path, f"{size:,} bytes, but the official {file.filename} has {file.size:,}: "
                                     "a different or incomplete file")
    sha = file_sha256(path, log)
    if sha != file.sha256:
        raise DatasetFileError(path, f"sha256 {sha} differs from the official file's {file.sha256}: "
                                     "a damaged or different file")
    return path


def prepare(name: str, manual_dir: str | Path, data_dir: str | Path | None = None, log: LogFn = print) -> Path:
    """Prepare the tfds copy of ``name`` in ``data_dir`` (None: tfds' default) from the official file in
    ``manual_dir``, without the network; returns the prepared version directory. A copy already prepared
    is returned as it is. The file is checked (size, sha256) before tfds sees it, so tfds never falls
    back to downloading."""
    spec = _spec(name)
    found = find_prepared(name, data_dir)
    if found is not None:
        log(f"{spec.grid.title} is already prepared in {found}")
        return found
    source = check_official_file(name, manual_dir, log)
    root = _data_root(data_dir)
    log(f"preparing {spec.grid.title} for tensorflow-datasets in {root} from {source} (this reads the whole file "
        f"into memory and writes every image once; it takes a while)")
    _, tfds = _import_tfds()
    try:
        builder = tfds.builder(f"{name}:{spec.versions[0]}", data_dir=str(root))
        config = tfds.download.DownloadConfig(manual_dir=str(source.parent), try_download_gcs=False)
        builder.download_and_prepare(download_dir=str(root / "downloads"), download_config=config)
    except (DatasetFileError, DatasetUnavailable):
        raise
    except Exception as err:  # noqa: BLE001 - a tfds traceback says nothing a user can act on
        raise DatasetFileError(source, f"tensorflow-datasets could not prepare {spec.grid.title} from it: "
                                       f"{_reason(err)}") from None
    found = find_prepared(name, data_dir)
    if found is None:
        raise DatasetFileError(root, f"tensorflow-datasets finished without writing {name}/"
                                     f"{spec.versions[0]}/{_INFO_FILE}")
    log(f"prepared {spec.grid.title} in {found}")
    return found
