"""Ground-truth datasets: the interface and the sources that provide it.

A dataset is a factor grid (``grid.FactorGrid``: ``DSPRITES``, ``SHAPES3D``) and a source of its images:
the procedural renderers (``dsprites``, ``shapes3d``, cached on disk by ``cache``), the official files
(``files``, listed in ``official``) or a prepared tensorflow-datasets copy (``tfds_source``).
``open_dataset`` finds a dataset the way a run asks for it: from the official file, a prepared
tensorflow-datasets copy, or the procedural renderer (``source="auto"`` tries them in that order).
``get_dataset`` builds one by name and source directly; a new source plugs in with ``register``, and so
does a new dataset, given its size: the config's schema (``data.dataset``) then accepts it too.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Callable

from collapse_tui.config import DATA_SOURCES, DATASET_NAMES, DATASET_SIZES, register_dataset
from collapse_tui.data.base import DatasetFileError, DatasetUnavailable, GroundTruthDataset
from collapse_tui.data.dsprites import ProceduralDSprites
from collapse_tui.data.grid import FactorGrid
from collapse_tui.data.shapes3d import ProceduralShapes3D

Factory = Callable[..., GroundTruthDataset]

# name -> source -> factory(**options)
_REGISTRY: dict[str, dict[str, Factory]] = {}


def register(name: str, source: str, factory: Factory, size: int | None = None) -> None:
    """Make ``get_dataset(name, source, **options)`` call ``factory(**options)``. A dataset the config
    does not know yet needs its ``size`` (images in its full grid): it is then registered there too
    (``config.register_dataset``), so that a run's ``data.dataset`` may name it."""
    if size is not None:
        register_dataset(name, size)
    elif name not in DATASET_SIZES:
        raise ValueError(f"dataset {name!r} is new: register it with its size (images in its full grid)")
    _REGISTRY.setdefault(name, {})[source] = factory


def sources(name: str) -> tuple[str, ...]:
    """The sources dataset ``name`` can come from (empty for an unknown name)."""
    return tuple(_REGISTRY.get(name, ()))


def get_dataset(name: str, source: str = "procedural", **options) -> GroundTruthDataset:
    """The dataset ``name`` from ``source`` (e.g. "dsprites", "procedural"), built with ``options``.

    Raises ValueError naming what is available for an unknown name, source or option.
    """
    available = _REGISTRY.get(name)
    if available is None:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASET_NAMES)}")
    factory = available.get(source)
    if factory is None:
        raise ValueError(f"dataset {name!r} has no source {source!r}; available: {', '.join(available)}")
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        allowed = [p for p, spec in params.items() if spec.kind in (spec.POSITIONAL_OR_KEYWORD, spec.KEYWORD_ONLY)]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for {name} from {source}; "
                             f"allowed: {', '.join(allowed) if allowed else 'none'}")
    return factory(**options)


def _official(name: str):
    def factory(path):
        from collapse_tui.data.files import open_official

        return open_official(name, path)

    return factory


def _tfds(name: str):
    def factory(data_dir=None):
        from collapse_tui.data import tfds_source

        return tfds_source.open_tfds(name, data_dir=data_dir)

    return factory


# The built-in datasets (their sizes are the config's, checked against their grids by the tests).
for _name, _procedural in (("dsprites", ProceduralDSprites), ("shapes3d", ProceduralShapes3D)):
    register(_name, "procedural", _procedural)
    register(_name, "official", _official(_name))
    register(_name, "tfds", _tfds(_name))

SOURCES = DATA_SOURCES  # where open_dataset looks ("auto": the others in order), as data.source names them


def search_directories(path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
                       ) -> list[Path]:
    """Where official files and prepared tfds datasets are looked for, in order: ``path`` (when it is a
    directory), ``data_dir``, then each directory in ``$COLLAPSE_TUI_DATA``."""
    from collapse_tui.data.official import directories_from_env

    dirs = [Path(p).expanduser() for p in (path, data_dir) if p and Path(p).expanduser().is_dir()]
    for extra in directories_from_env():
        if extra not in dirs:
            dirs.append(extra)
    return dirs


def open_dataset(name: str, source: str = "auto", path: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None, cache: bool = True,
                 cache_dir: str | os.PathLike | None = None, log=None, progress=None) -> GroundTruthDataset:
    """Dataset ``name`` from ``source``: "official" (the published file: ``path`` if it is a file, else
    found in the search directories), "tfds" (a prepared tensorflow-datasets copy in the search directories
    or tfds' own data dir), "procedural" (rendered here; with ``cache`` the renders are kept on disk) or
    "auto", which takes the first of these that exists. ``log(text)`` receives notes on what was skipped;
    ``progress(done, total)`` follows the one slow opening step, indexing a prepared tfds copy.

    Raises DatasetUnavailable (saying what was searched and how to provide the data) when the requested
    source has no data here, DatasetFileError for a file that is there but unusable, ValueError for an
    unknown name or source.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASET_NAMES)}")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; available: {', '.join(SOURCES)}")
    from collapse_tui.data import files, official

    dirs = search_directories(path, data_dir)
    explicit_file = Path(path).expanduser() if path and not Path(path).expanduser().is_dir() else None

    if source in ("official", "auto"):
        if explicit_file is not None:
            return files.open_official(name, explicit_file)  # a file the user named: its problems are errors
        found = official.find_official(name, dirs)
        if found is not None:
            return files.open_official(name, found)
        if source == "official":
            raise DatasetUnavailable(_not_found(name, dirs))
    if source in ("tfds", "auto"):
        from collapse_tui.data import tfds_source

        for directory in [*dirs, None]:  # None: tfds' own default data dir
            if tfds_source.find_prepared(name, directory) is not None:
                return tfds_source.open_tfds(name, data_dir=directory, progress=progress)
        if source == "tfds":
            return tfds_source.open_tfds(name, data_dir=dirs[0] if dirs else None)  # raises, saying how
    procedural = get_dataset(name, "procedural")
    if not cache:
        return procedural
    from collapse_tui.data.cache import CachedDataset

    return CachedDataset(procedural, cache_dir, log=log)


def _not_found(name: str, dirs: list[Path]) -> str:
    from collapse_tui.data.official import OFFICIAL_FILES

    where = ", ".join(str(d) for d in dirs) if dirs else "nowhere (no data.path, --data-dir or $COLLAPSE_TUI_DATA given)"
    return (f"no official {name} file found; searched {where}. Put "
            f"{' or '.join(f.filename for f in OFFICIAL_FILES[name])} in a directory and pass it as --data-dir, set "
            "$COLLAPSE_TUI_DATA to it, or set data.path to the file")


__all__ = ["DATASET_NAMES", "SOURCES", "DatasetFileError", "DatasetUnavailable", "FactorGrid",
           "GroundTruthDataset", "ProceduralDSprites", "ProceduralShapes3D", "get_dataset", "open_dataset",
           "register", "search_directories", "sources"]
