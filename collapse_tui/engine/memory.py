"""What an :class:`~collapse_tui.engine.runner.Engine` keeps in memory between the runs of one process.

A sweep that alternates datasets or seeds (dataset × seed × remedy grids) reuses what it computed for
each: up to :data:`KEEP` of each kind (opened datasets, sampled images, VAEs, codes), images only while
they fit in a budget (:data:`~collapse_tui.engine.data_phase.DATA_MEMORY_BYTES`), so a long sweep never
grows unbounded.
"""

from __future__ import annotations

from typing import Any, Callable

KEEP = 4


def keep(cache: dict, key: Any, value: Any, size: Callable[[Any], int] | None = None,
         budget: int | None = None) -> None:
    """Insert ``key`` as the newest entry of ``cache``, dropping the oldest beyond :data:`KEEP` entries or,
    with ``size``, while the entries' total size exceeds ``budget`` (the newest always stays)."""
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > KEEP or (size is not None and len(cache) > 1
                                and sum(size(v) for v in cache.values()) > budget):
        del cache[next(iter(cache))]
