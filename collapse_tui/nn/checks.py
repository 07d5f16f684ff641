"""Argument checks shared by the layers and models of ``nn``.

A run's settings are validated by the schema (:mod:`collapse_tui.config`) before any model is built;
these checks are for the other callers (tests, benchmarks, notebooks, ``from_config``) that construct
a layer directly, so that an impossible value fails at once with its name instead of as an odd shape
or a NaN several steps later. One rule per kind of value, and one wording of it, for every class.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence


def _is_whole(value: Any, minimum: int) -> bool:
    # Whole-valued floats count: a float schedule may hand over k = 5.0.
    return (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
            and value == int(value) and value >= minimum)


def whole_number(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int, or a ValueError saying that ``name`` must be a whole number >= ``minimum``."""
    if not _is_whole(value, minimum):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def seed(value: Any) -> int | None:
    """A seed: None (Keras' global random state) or a whole number >= 0, as an int."""
    if value is None:
        return None
    if not _is_whole(value, 0):
        raise ValueError(f"seed must be None or a whole number >= 0, got {value!r}")
    return int(value)


def number(name: str, value: Any, low: float | None = None, *, above: bool = False,
           high: float | None = None) -> float:
    """``value`` as a float, or a ValueError: finite, >= ``low`` (> ``low`` when ``above``) and, when
    ``high`` is given (with a ``low``), <= ``high``."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if above else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        if high is not None:
            wanted = f"a number in {'(' if above else '['}{low:g}, {high:g}]"
        elif low is not None:
            wanted = f"a finite number {'>' if above else '>='} {low:g}"
        else:
            wanted = "a finite number"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return float(value)


def one_of(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices`` (the schema's names), else a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value
