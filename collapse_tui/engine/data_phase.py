"""The data phase of a run: open its dataset, draw its training images and its held-out evaluation set
(images, factors, indices) from the run's seed, reporting progress as they are read or rendered.

One :class:`DataPhase` serves every run of an :class:`~collapse_tui.engine.runner.Engine`: opened datasets
and drawn images are kept (:mod:`~collapse_tui.engine.memory`), so a sweep's runs share them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from collapse_tui.config import ACTIVATIONS, IMAGES, RunConfig
from collapse_tui.engine.callbacks import StopRequested
from collapse_tui.engine.memory import keep
from collapse_tui.engine.seeding import data_seed, derived_seed
from collapse_tui.events import DataSource, Message, PhaseStarted, Progress

# Drawn images are kept only while they fit: the full-size protocol's 200,000 Shapes3D images alone
# take 2.5 GB.
DATA_MEMORY_BYTES = 3 * 2**30


@dataclass
class Data:
    """A run's images: what its VAE and SAE train on, and the held-out set they are evaluated on. From an
    activations file there are no images: the SAE's inputs are ``train_codes`` and ``eval_codes`` (rows of
    the file), and ``eval_factors`` is None when the file has no factors."""

    train_images: np.ndarray | None
    eval_images: np.ndarray | None
    eval_factors: np.ndarray | None
    eval_indices: np.ndarray  # each evaluation image's index in its dataset (it can be rendered again)
    factor_names: tuple[str, ...]
    input_scale: float
    fingerprint: str
    train_codes: np.ndarray | None = None
    eval_codes: np.ndarray | None = None

    @property
    def from_file(self) -> bool:
        """Whether the SAE reads activations from a file (no VAE)."""
        return self.train_codes is not None

    @property
    def nbytes(self) -> int:
        arrays = (self.train_images, self.eval_images, self.train_codes, self.eval_codes)
        return sum(a.nbytes for a in arrays if a is not None)


class DataPhase:
    """Loads each run's data (:meth:`load`), keeping opened datasets and drawn images for later runs."""

    def __init__(self, stop_event: threading.Event):
        self.stop_event = stop_event
        self._opened: dict[tuple, object] = {}
        self._data: dict[tuple, Data] = {}
        self._note = lambda text: None  # where a kept dataset's cache repairs are reported

    def load(self, cfg: RunConfig, s) -> Data:
        """The data of ``s`` (an :class:`~collapse_tui.engine.active_run.ActiveRun` of config ``cfg``);
        ValueError if the dataset has too few images; StopRequested once the engine is asked to stop."""
        from collapse_tui.data import open_dataset

        s.emit(PhaseStarted(phase="data", detail=f"{cfg.data.n_train} training + {cfg.eval.n_samples} "
                            f"evaluation images of {cfg.data.dataset}"))

        def progress(done: int, total: int) -> None:  # opening (tfds indexing), then reading or rendering
            s.emit(Progress(phase="data", done=done, total=total))
            if self.stop_event.is_set():
                raise StopRequested()

        if cfg.data.dataset == ACTIVATIONS:
            return self._activations(cfg, s, progress)
        if cfg.data.dataset == IMAGES:
            return self._image_file(cfg, s)
        # A kept dataset (below) notes cache repairs to whichever run is reading it now.
        self._note = lambda text: s.emit(Message(text=text, level="warning"))
        # Opening a prepared tfds copy indexes all its labels (tens of seconds): once per sweep, not per run.
        where = (cfg.data.dataset, cfg.data.source, cfg.data.path, cfg.data.cache)
        dataset = self._opened.get(where)
        if dataset is None:
            dataset = open_dataset(cfg.data.dataset, source=cfg.data.source, path=cfg.data.path,
                                   cache=cfg.data.cache, progress=progress,
                                   log=lambda text: self._note(text))
            keep(self._opened, where, dataset)
        s.data_source = dataset.provenance()
        s.emit(DataSource(provenance=s.data_source))
        s.emit(Message(text=f"data: {dataset.description}"))
        key = (dataset.fingerprint(), data_seed(cfg), cfg.data.n_train, cfg.eval.n_samples)
        if key in self._data:
            keep(self._data, key, self._data[key], size=_nbytes, budget=DATA_MEMORY_BYTES)
            return self._data[key]
        rng = np.random.RandomState(derived_seed(data_seed(cfg), "data"))
        n_train, n_eval = cfg.data.n_train, cfg.eval.n_samples
        if n_train + n_eval > dataset.num_available:
            raise ValueError(f"data.n_train + eval.n_samples = {n_train + n_eval} exceeds the "
                             f"{dataset.num_available} images of {dataset.description}")
        indices = dataset.sample_indices(n_train + n_eval, rng)

        # One call for both sets: a source that streams its storage or writes a cache does so once.
        images = dataset.images(indices, progress=progress)
        data = Data(
            train_images=images[:n_train],
            eval_images=images[n_train:],
            eval_factors=dataset.index_to_factors(indices[n_train:]),
            eval_indices=np.asarray(indices[n_train:], dtype=np.int32),
            factor_names=tuple(dataset.factor_names),
            input_scale=float(dataset.input_scale),
            fingerprint=dataset.fingerprint(),
        )
        keep(self._data, key, data, size=_nbytes, budget=DATA_MEMORY_BYTES)
        return data


    def _activations(self, cfg: RunConfig, s, progress) -> Data:
        """The rows of an activations file: ``data.n_train`` to train on and ``eval.n_samples`` held out,
        drawn without replacement from the run's data seed (the same split on a resume); the file is
        opened and checked once per engine."""
        from collapse_tui.data.activations import open_activations

        where = (ACTIVATIONS, cfg.data.path)
        file = self._opened.get(where)
        if file is None:
            file = open_activations(cfg.data.path)
            keep(self._opened, where, file)
        sha = file.fingerprint()
        before = getattr(s, "recorded_source", {}).get("sha256")
        if isinstance(before, str) and before != sha:  # a resumed run must go on with the rows it began with
            raise ValueError(f"{file.path.name} has changed since the run began (sha256 {before[:12]}… then, "
                             f"{sha[:12]}… now): resuming would train on other rows; start a new run")
        s.data_source = {"dataset": ACTIVATIONS, "source": "file", "fingerprint": f"{ACTIVATIONS}-{sha[:16]}",
                         "description": file.description, "rows": file.n, "path": str(file.path), "sha256": sha}
        s.emit(DataSource(provenance=s.data_source))
        s.emit(Message(text=f"data: {file.description}"))
        s.emit(Message(text="vae: not trained: the SAE reads the file's activations, so the vae section is inert"))
        streams = _streams(cfg, file)
        key = (sha, data_seed(cfg), cfg.data.n_train, cfg.eval.n_samples, streams)
        if key in self._data:
            keep(self._data, key, self._data[key], size=_nbytes, budget=DATA_MEMORY_BYTES)
            return self._data[key]
        n_train, n_eval = cfg.data.n_train, cfg.eval.n_samples
        if n_train + n_eval > file.n:
            raise ValueError(f"data.n_train + eval.n_samples = {n_train + n_eval} exceeds the {file.n} rows of "
                             f"{file.path.name}")
        rng = np.random.RandomState(derived_seed(data_seed(cfg), "data"))
        indices = rng.choice(file.n, n_train + n_eval, replace=False)
        eval_rows = indices[n_train:]
        if streams:
            from collapse_tui.data.streamed_rows import TrainingRows

            s.emit(Message(text=f"data: the {n_train:,} training rows stay in {file.path.name}, read a batch at a "
                                "time as training uses them (data.streaming)"))
            train, evaluation = TrainingRows(file, indices[:n_train]), file.rows(eval_rows, progress=progress)
        else:
            rows = file.rows(indices, progress=progress)
            train, evaluation = rows[:n_train], rows[n_train:]
        data = Data(train_images=None, eval_images=None,
                    eval_factors=None if file.factors is None else file.factors[eval_rows],
                    eval_indices=np.asarray(eval_rows, dtype=np.int64), factor_names=tuple(file.factor_names),
                    input_scale=1.0, fingerprint=s.data_source["fingerprint"],
                    train_codes=train, eval_codes=evaluation)
        keep(self._data, key, data, size=_nbytes, budget=DATA_MEMORY_BYTES)
        return data


    def _image_file(self, cfg: RunConfig, s) -> Data:
        """A labelled image set of the user's (for their model): ``data.n_train`` images to train on and
        ``eval.n_samples`` held out, drawn without replacement from the run's data seed."""
        from collapse_tui.data.image_file import open_images

        where = (IMAGES, cfg.data.path)
        file = self._opened.get(where)
        if file is None:
            file = open_images(cfg.data.path)
            keep(self._opened, where, file)
        before = getattr(s, "recorded_source", {}).get("sha256")
        if isinstance(before, str) and before != file.sha256:
            raise ValueError(f"{file.path.name} has changed since the run began (sha256 {before[:12]}… then, "
                             f"{file.sha256[:12]}… now): resuming would train on other images; start a new run")
        s.data_source = {"dataset": IMAGES, "source": "file", "fingerprint": file.fingerprint(),
                         "description": file.description, "rows": file.n, "path": str(file.path),
                         "sha256": file.sha256}
        s.emit(DataSource(provenance=s.data_source))
        s.emit(Message(text=f"data: {file.description}"))
        n_train, n_eval = cfg.data.n_train, cfg.eval.n_samples
        if n_train + n_eval > file.n:
            raise ValueError(f"data.n_train + eval.n_samples = {n_train + n_eval} exceeds the {file.n} images of "
                             f"{file.path.name}")
        rng = np.random.RandomState(derived_seed(data_seed(cfg), "data"))
        indices = rng.choice(file.n, n_train + n_eval, replace=False)
        images = file.images(indices)
        return Data(train_images=images[:n_train], eval_images=images[n_train:],
                    eval_factors=file.factors[indices[n_train:]],
                    eval_indices=np.asarray(indices[n_train:], dtype=np.int64),
                    factor_names=tuple(file.factor_names), input_scale=file.input_scale,
                    fingerprint=file.fingerprint())


def _streams(cfg: RunConfig, file) -> bool:
    """Whether the run's training rows stay in the file, read as training uses them (``data.streaming``)."""
    from collapse_tui.config import STREAMING_AUTO_BYTES, STREAMING_SUFFIXES

    setting, remedies = cfg.data.streaming, cfg.sae.remedies
    if setting != "auto":
        return setting == "always"
    # What cannot run on streamed rows (each refused in one line under "always") keeps them in memory.
    needs_memory = cfg.data_parallel or remedies.resample_epochs or remedies.data_init
    if needs_memory or not str(file.path).lower().endswith(STREAMING_SUFFIXES):
        return False
    return cfg.data.n_train * file.dim * 4 > STREAMING_AUTO_BYTES


def _nbytes(data: Data) -> int:
    return data.nbytes
