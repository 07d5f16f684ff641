"""Rendered images kept on disk, so a second run over the same images starts at once.

The cache of a procedural dataset is a directory named after its fingerprint (dataset, renderer
version), so a renderer change never serves old images. It holds segments: HDF5 files in the official
layout of the dataset (readable by ``files.open_official``), each holding the rows one run rendered that
no earlier segment had. A segment is written to a temporary name and renamed into place when complete,
so a run killed mid-write leaves at most a temporary file, never a half-written segment under a real
name; a segment that still fails to open or check (a disk error, a copy cut short) is deleted and its
rows rendered again. On opening, a few cached images are rendered afresh and compared, so a renderer
changed without a version bump is caught too.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from collapse_tui.data.base import DatasetFileError, GroundTruthDataset, ProceduralDataset, ProgressFn
from collapse_tui.data.files import H5DSprites, H5Shapes3D, _H5File

LogFn = Callable[[str], None]
_SEGMENT_READERS: dict[str, type[_H5File]] = {"dsprites": H5DSprites, "shapes3d": H5Shapes3D}
_SPOT_CHECKS = 2
_STALE_TMP_SECONDS = 24 * 3600


def default_cache_dir() -> Path:
    """``$COLLAPSE_TUI_CACHE``, else ``$XDG_CACHE_HOME/collapse-tui``, else ``~/.cache/collapse-tui``."""
    explicit = os.environ.get("COLLAPSE_TUI_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "collapse-tui"


def write_official_layout(path: Path, dataset: GroundTruthDataset, indices: np.ndarray, images: np.ndarray,
                          attrs: dict[str, str] | None = None) -> None:
    """Write ``images`` of grid ``indices`` as an HDF5 file in the official layout of ``dataset``'s name."""
    import h5py

    factors = dataset.index_to_factors(indices)
    values = dataset.factor_value(factors)
    # Chunks of 256 images keep a read of a few scattered rows cheap; gzip level 1 shrinks binary
    # sprites ~100x and smooth Shapes3D scenes several times at little cost in time.
    chunk = (min(256, max(1, len(indices))),)
    with h5py.File(path, "w") as h5:
        if dataset.name == "dsprites":
            classes = np.concatenate([np.zeros((len(indices), 1), np.int64), factors], axis=1)
            values = np.concatenate([np.ones((len(indices), 1)), values], axis=1)
            h5.create_dataset("imgs", data=images.reshape(len(indices), 64, 64), chunks=chunk + (64, 64),
                              compression="gzip", compression_opts=1)
            h5.create_dataset("latents/classes", data=classes)
            h5.create_dataset("latents/values", data=values)
        elif dataset.name == "shapes3d":
            h5.create_dataset("images", data=images, chunks=chunk + tuple(dataset.image_shape),
                              compression="gzip", compression_opts=1)
            h5.create_dataset("labels", data=values)
        else:
            raise ValueError(f"no official layout for dataset {dataset.name!r}")
        for key, value in (attrs or {}).items():
            h5.attrs[key] = value
        h5.attrs["complete"] = 1  # written last: a file without it was cut short


class CachedDataset(GroundTruthDataset):
    """A procedural dataset whose renders are kept on disk under ``directory`` and reused."""

    def __init__(self, inner: ProceduralDataset, directory: str | Path | None = None, log: LogFn | None = None):
        if inner.name not in _SEGMENT_READERS:
            raise ValueError(f"no cache layout for dataset {inner.name!r}")
        self.inner = inner
        self.name, self.title = inner.name, getattr(inner, "title", inner.name)
        self.factor_names, self.factor_sizes = inner.factor_names, inner.factor_sizes
        self.factor_values, self.image_shape = inner.factor_values, inner.image_shape
        self.input_scale, self.source = inner.input_scale, inner.source
        self.directory = Path(directory if directory is not None else default_cache_dir()).expanduser() \
            / inner.fingerprint()
        self._log = log or (lambda text: None)
        self._segments: list[_H5File] | None = None

    @property
    def description(self) -> str:
        return f"{self.inner.description}; renders cached in {self.directory}"

    def provenance(self) -> dict:
        return dict(self.inner.provenance(), description=self.description, cache=str(self.directory))

    def fingerprint(self) -> str:
        return self.inner.fingerprint()  # the same images whether rendered now or read back

    def _images_batch(self, indices: np.ndarray) -> np.ndarray:
        return self.images(indices)

    # ------------------------------------------------------------------ segments
    def segments(self) -> list[_H5File]:
        """The readable segments, after deleting damaged ones (and all of them if renders went stale)."""
        if self._segments is not None:
            return self._segments
        reader = _SEGMENT_READERS[self.name]
        segments: list[_H5File] = []
        if self.directory.is_dir():
            self._sweep_temporaries()
            for path in sorted(self.directory.glob("*.h5")):
                try:
                    segment = reader(path)
                    if not self._complete(path):
                        raise DatasetFileError(path, "was not completely written")
                except DatasetFileError as err:
                    self._log(f"cache segment {path.name} is unusable ({err.problem}); its images will be "
                              "rendered again")
                    path.unlink(missing_ok=True)
                    continue
                segments.append(segment)
        if segments and not self._renders_match(segments):
            self._log(f"cached images in {self.directory} differ from what the renderer draws now; "
                      "clearing them")
            for segment in segments:
                segment.path.unlink(missing_ok=True)
            segments = []
        self._segments = segments
        return segments

    @staticmethod
    def _complete(path: Path) -> bool:
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                return int(h5.attrs.get("complete", 0)) == 1
        except (OSError, ValueError, TypeError):
            return False

    def _renders_match(self, segments: list[_H5File]) -> bool:
        rs = np.random.RandomState(len(segments))
        for segment in segments:
            picks = segment.available[rs.randint(0, segment.num_available, size=min(_SPOT_CHECKS,
                                                                                     segment.num_available))]
            try:
                cached = segment.images(picks)
            except DatasetFileError:
                return False
            if not np.array_equal(cached, self.inner.images(picks)):
                return False
        return True

    def _sweep_temporaries(self) -> None:
        # Left by a run killed mid-write; a young one may belong to a run writing right now.
        now = time.time()
        for tmp in self.directory.glob("*.h5.tmp*"):
            try:
                if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                    tmp.unlink()
            except OSError:
                pass

    # ------------------------------------------------------------------ images
    def images(self, indices, progress: ProgressFn | None = None, batch_size: int = 2048) -> np.ndarray:
        idx = self._check_indices(indices)
        out = np.empty((idx.size, *self.image_shape), dtype=np.uint8)
        filled = np.zeros(idx.size, dtype=bool)
        total, done = idx.size, 0
        for segment in self.segments():
            want = ~filled & np.isin(idx, segment.available)
            if want.any():
                try:
                    out[want] = segment.images(idx[want], batch_size=batch_size)
                except DatasetFileError as err:
                    self._log(f"cache segment {segment.path.name} could not be read ({err.problem}); "
                              "rendering its images again")
                    continue
                filled |= want
                done += int(want.sum())
                if progress is not None:
                    progress(done, total)
        missing = np.flatnonzero(~filled)
        if missing.size:
            new = np.unique(idx[missing])
            rendered = self.inner.images(new, batch_size=batch_size,
                                         progress=None if progress is None else
                                         (lambda d, _t: progress(done + int(d * missing.size / max(new.size, 1)),
                                                                 total)))
            out[missing] = rendered[np.searchsorted(new, idx[missing])]
            self._write_segment(new, rendered)
        if progress is not None and total == 0:
            progress(0, 0)
        return out

    def _write_segment(self, indices: np.ndarray, images: np.ndarray) -> None:
        digest = hashlib.sha256(indices.tobytes()).hexdigest()[:16]
        final = self.directory / f"{len(indices):07d}-{digest}.h5"
        tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_official_layout(tmp, self.inner, indices, images,
                                  attrs={"generator": "collapse-tui", "fingerprint": self.fingerprint()})
            os.replace(tmp, final)
        except OSError as err:
            # A full or read-only disk costs the next run a re-render, not this run its images.
            self._log(f"could not cache rendered images in {self.directory} ({err})")
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            return
        self._segments = None  # re-read on next use, with the new segment
