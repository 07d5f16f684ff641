"""The published files of each dataset, in one table, and where to look for them.

Both sources that start from a published file use this table: the file source (``files``) to find a file
and to say whether it is the release itself, the tfds source (``tfds_source``) to check the file tfds
prepares its copy from before tfds sees it. Facts are from the official repositories
(deepmind/dsprites-dataset, deepmind/3d-shapes).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class OfficialFile:
    """One published file of a dataset."""

    #: The dataset it holds, as in ``grid.GRIDS``.
    dataset: str
    #: Its published name (tensorflow-datasets needs exactly this name too).
    filename: str
    #: Its size in bytes and sha256 (hex); None where the publisher gives none.
    size: int | None
    sha256: str | None
    #: The array holding the images.
    images_key: str
    #: The arrays holding the labels, in the order the readers expect them.
    label_keys: tuple[str, ...]

    def is_release(self, path: str | Path, sha256: str) -> bool:
        """Whether the file at ``path``, of checksum ``sha256``, is this published file byte for byte
        (under its published name)."""
        return self.sha256 is not None and Path(path).name == self.filename and sha256 == self.sha256


DSPRITES_HDF5 = OfficialFile(
    "dsprites", "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5",
    28_024_106, "729fa22e884c9c500e1f17415d580746b4c5894fbbb780a1319bbcfa39a745bb",
    images_key="imgs", label_keys=("latents/classes", "latents/values"))
# The npz also holds a pickled ``metadata`` member, which is never read.
DSPRITES_NPZ = OfficialFile(
    "dsprites", "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz", None, None,
    images_key="imgs", label_keys=("latents_classes", "latents_values"))
SHAPES3D_H5 = OfficialFile(
    "shapes3d", "3dshapes.h5",
    267_573_662, "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",
    images_key="images", label_keys=("labels",))

#: Dataset name -> its published files, in the order they are looked for.
OFFICIAL_FILES: dict[str, tuple[OfficialFile, ...]] = {
    "dsprites": (DSPRITES_HDF5, DSPRITES_NPZ),
    "shapes3d": (SHAPES3D_H5,),
}


def find_official(name: str, directories) -> Path | None:
    """The first official file of dataset ``name`` in ``directories`` (searched in order; in each, the
    files in the order of ``OFFICIAL_FILES``), or None."""
    for directory in directories:
        for official in OFFICIAL_FILES.get(name, ()):
            candidate = Path(directory).expanduser() / official.filename
            if candidate.is_file():
                return candidate
    return None


def directories_from_env(value: str | None = None) -> list[Path]:
    """The directories in ``$COLLAPSE_TUI_DATA`` (or ``value``), separated by os.pathsep."""
    value = os.environ.get("COLLAPSE_TUI_DATA", "") if value is None else value
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def file_sha256(path: str | Path, log: Callable[[str], None] | None = None) -> str:
    """The sha256 of a file, hex; remembered per (path, size, mtime) so a run reads the file once.
    ``log(text)`` hears how far the reading got, at each quarter of the file."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _sha_lock:
        if key in _sha_cache:
            return _sha_cache[key]
    digest = hashlib.sha256()
    done, next_report = 0, 0.25
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
            done += len(block)
            if log is not None and st.st_size and done / st.st_size >= next_report and done < st.st_size:
                log(f"checking {path.name}: {100 * done // st.st_size}%")
                next_report += 0.25
    with _sha_lock:
        _sha_cache[key] = digest.hexdigest()
    return _sha_cache[key]
