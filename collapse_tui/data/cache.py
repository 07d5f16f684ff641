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

from collapse_tui.data.base import DatasetFileError, GroundTruthDataset, ProceduralDataset
from collapse_tui.data.files import H5DSprites, H5File, H5Shapes3D

LogFn = Callable[[str], None]
_SEGMENT_LAYOUTS: dict[str, type[H5File]] = {"dsprites": H5DSprites, "shapes3d": H5Shapes3D}
_SPOT_CHECKS = 2
_STALE_TMP_SECONDS = 24 * 3600


def default_cache_dir() -> Path:
    """``$COLLAPSE_TUI_CACHE``, else ``$XDG_CACHE_HOME/collapse-tui``, else ``~/.cache/collapse-tui``."""
    explicit = os.environ.get("COLLAPSE_TUI_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "collapse-tui"


class CachedDataset(GroundTruthDataset):
    """A procedural dataset whose renders are kept on disk under ``directory`` and reused."""

    def __init__(self, inner: ProceduralDataset, directory: str | Path | None = None, log: LogFn | None = None):
        if inner.name not in _SEGMENT_LAYOUTS:
            raise ValueError(f"no cache layout for dataset {inner.name!r}")
        self.inner = inner
        self.grid, self.source = inner.grid, inner.source  # the images are the renderer's, made now or read back
        self._layout = _SEGMENT_LAYOUTS[inner.name]
        self.directory = Path(directory if directory is not None else default_cache_dir()).expanduser() \
            / inner.fingerprint()
        self._log = log or (lambda text: None)
        self._segments: list[H5File] | None = None

    @property
    def description(self) -> str:
        return f"{self.inner.description}; renders cached in {self.directory}"

    def provenance(self) -> dict:
        return dict(self.inner.provenance(), description=self.description, cache=str(self.directory))

    def fingerprint(self) -> str:
        return self.inner.fingerprint()  # the same images whether rendered now or read back

    # ------------------------------------------------------------------ segments
    def segments(self) -> list[H5File]:
        """The readable segments, after deleting damaged ones (and all of them if renders went stale)."""
        if self._segments is not None:
            return self._segments
        segments: list[H5File] = []
        if self.directory.is_dir():
            self._sweep_temporaries()
            for path in sorted(self.directory.glob("*.h5")):
                try:
                    segment = self._layout(path)
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

    def _renders_match(self, segments: list[H5File]) -> bool:
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
    def _read_rows(self, indices: np.ndarray, batch_size: int, report: Callable[[int], None] | None
                   ) -> np.ndarray:
        """Images of ``indices`` (in the order asked for), from the segments that hold them; the rest are
        rendered, once each, and kept as a new segment."""
        out = np.empty((indices.size, *self.image_shape), dtype=np.uint8)
        filled = np.zeros(indices.size, dtype=bool)
        done = 0
        for segment in self.segments():
            want = ~filled & np.isin(indices, segment.available)
            if want.any():
                try:
                    out[want] = segment.images(indices[want], batch_size=batch_size)
                except DatasetFileError as err:
                    self._log(f"cache segment {segment.path.name} could not be read ({err.problem}); "
                              "rendering its images again")
                    continue
                filled |= want
                done += int(want.sum())
                if report is not None:
                    report(done)
        missing = np.flatnonzero(~filled)
        if missing.size:
            new = np.unique(indices[missing])
            rendered = self.inner.images(new, batch_size=batch_size,
                                         progress=None if report is None else
                                         (lambda d, _t: report(done + int(d * missing.size / new.size))))
            out[missing] = rendered[np.searchsorted(new, indices[missing])]
            self._write_segment(new, rendered)
        return out

    def _write_segment(self, indices: np.ndarray, images: np.ndarray) -> None:
        digest = hashlib.sha256(indices.tobytes()).hexdigest()[:16]
        final = self.directory / f"{len(indices):07d}-{digest}.h5"
        tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._layout.write(tmp, indices, images,
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
