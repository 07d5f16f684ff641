"""Ground-truth datasets: the interface and the sources that provide it."""

from __future__ import annotations

from typing import Callable

from collapse_tui.data.base import GroundTruthDataset
from collapse_tui.data.dsprites import ProceduralDSprites

# name -> source -> factory(**options)
_REGISTRY: dict[str, dict[str, Callable[..., GroundTruthDataset]]] = {
    "dsprites": {"procedural": ProceduralDSprites},
}
DATASET_NAMES = tuple(_REGISTRY)


def get_dataset(name: str, source: str = "procedural", **options) -> GroundTruthDataset:
    """The dataset ``name`` from ``source``; a ValueError lists what is available otherwise."""
    sources = _REGISTRY.get(name)
    if sources is None:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASET_NAMES)}")
    factory = sources.get(source)
    if factory is None:
        raise ValueError(f"dataset {name!r} has no source {source!r}; available: {', '.join(sources)}")
    return factory(**options)


__all__ = ["DATASET_NAMES", "GroundTruthDataset", "ProceduralDSprites", "get_dataset"]
