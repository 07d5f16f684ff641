"""Ground-truth datasets: the interface and the sources that provide it.

A dataset is reached by name and source through ``get_dataset``; a new dataset or source (an official
file loader, tensorflow-datasets) plugs in with ``register``.
"""

from __future__ import annotations

import inspect
from typing import Callable

from collapse_tui.data.base import GroundTruthDataset
from collapse_tui.data.dsprites import ProceduralDSprites
from collapse_tui.data.shapes3d import ProceduralShapes3D

Factory = Callable[..., GroundTruthDataset]

# name -> source -> factory(**options)
_REGISTRY: dict[str, dict[str, Factory]] = {}


def register(name: str, source: str, factory: Factory) -> None:
    """Make ``get_dataset(name, source, **options)`` call ``factory(**options)``."""
    _REGISTRY.setdefault(name, {})[source] = factory
    global DATASET_NAMES
    DATASET_NAMES = tuple(_REGISTRY)


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


DATASET_NAMES: tuple[str, ...] = ()
register("dsprites", "procedural", ProceduralDSprites)
register("shapes3d", "procedural", ProceduralShapes3D)

__all__ = ["DATASET_NAMES", "GroundTruthDataset", "ProceduralDSprites", "ProceduralShapes3D", "get_dataset", "register", "sources"]
