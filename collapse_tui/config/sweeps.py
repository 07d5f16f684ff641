"""A config's ``sweep:`` block expanded into its runs (a grid per block, the union of the blocks)."""

from __future__ import annotations

import copy
import itertools
import math
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from collapse_tui.config.dotted import set_dotted
from collapse_tui.config.schema import (
    ConfigError,
    RunConfig,
    _format_errors,
    shorten,
    validate,
)

MAX_RUNS = 100_000  # runs one sweep may expand to
LARGE_SWEEP = 1_000  # from here the front ends ask first (--batch wants --yes, the TUI a confirmation)
# A character a run name may not hold (see RunConfig.name): a swept value's space, slash or colon becomes "_"
# in the run's name, one for one, so that a name that was valid stays as it was.
NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9._-]")


# Settings every run of a sweep shares (where and under which name it writes): never swept, never what
# tells its runs apart.
UNSWEPT = ("runs_dir", "models_dir", "name")

def _check_sweep_key(key: str) -> str | None:
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            allowed = ", ".join(model.model_fields)
            where = ".".join(parts[:i]) or "the top level"
            return f"sweep.{key}: unknown key {part!r} in {where}; allowed: {allowed}"
        ann = field.annotation
        last = i == len(parts) - 1
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if last:
                return f"sweep.{key}: is a section; sweep one of its fields ({', '.join(ann.model_fields)})"
            model = ann
        elif not last:
            return f"sweep.{key}: {part} is not a section"
    if parts[0] in UNSWEPT:
        return f"sweep.{key}: cannot be swept (all runs of a sweep share it)"
    return None


def _grids(sweep: Any) -> list[dict[str, list]]:
    blocks = sweep if isinstance(sweep, list) else [sweep]
    if not blocks:
        raise ConfigError(["sweep: is an empty list; give at least one block of dotted keys and values, "
                           "or leave sweep out for a single run"])
    grids = []
    for i, block in enumerate(blocks):
        where = f"sweep[{i}]" if isinstance(sweep, list) else "sweep"
        if not isinstance(block, dict) or not block:
            raise ConfigError([f"{where}: must be a non-empty mapping of dotted keys to lists of values"])
        errors = []
        for key, values in block.items():
            problem = _check_sweep_key(str(key))
            if problem:
                errors.append(problem)
            elif not isinstance(values, list) or not values:
                errors.append(f"sweep.{key}: must be a non-empty list of values, got {shorten(repr(values))}")
        if errors:
            raise ConfigError(errors)
        grids.append(block)
    return grids


def _label(overrides: dict[str, Any]) -> str:
    short = {"sae.method": "", "data.dataset": "", "sae.k": "k", "sae.l1_coefficient": "lam", "seed": "s",
             "sae.schedule.kind": "", "sae.schedule.start": "from", "sae.normalization": ""}
    parts = []
    for key, value in overrides.items():
        tag = short.get(key, key.split(".")[-1].replace("_", ""))
        if isinstance(value, bool):  # a switch: "auxk" when on, "noauxk" when off
            parts.append(tag if value else f"no{tag}")
            continue
        if isinstance(value, (list, tuple)):  # e.g. resample_epochs [4, 8] -> "4_8"
            text = "_".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        else:
            text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{tag}{text}")
    return "-".join(NOT_IN_A_NAME.sub("_", p) for p in parts)


def expand(data: dict[str, Any] | None, source: str | None = None) -> list[tuple[RunConfig, dict[str, Any]]]:
    """Validate a config file's dict and expand its sweep: ``[(config, overrides), ...]`` in grid order.

    Every expanded run is validated on its own, so an error names the sweep values that caused it.
    """
    data = copy.deepcopy(data) if data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([f"the top level must be a mapping of keys to values, got {type(data).__name__}"], source)
    sweep = data.pop("sweep", None)
    base = validate(data, source)
    if sweep is None:
        return [(base, {})]
    runs = []
    try:
        grids = _grids(sweep)
    except ConfigError as exc:
        raise ConfigError(exc.errors, source) from None
    count = grid_size(grids)
    if count > MAX_RUNS:
        raise ConfigError([f"sweep: expands to {count:,} runs, more than the {MAX_RUNS:,} one sweep may hold; "
                           "split it into several configs"], source)
    for grid in grids:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            overrides = dict(zip(keys, values))
            run = copy.deepcopy(data)
            for key, value in overrides.items():
                try:
                    set_dotted(run, key, value)
                except ConfigError as exc:
                    raise ConfigError([f"sweep.{line}" for line in exc.errors], source) from None
            run["name"] = f"{base.name}-{_label(overrides)}"[:80]
            try:
                cfg = RunConfig.model_validate(run)
            except ValidationError as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
                raise ConfigError([f"{line} (sweep run {where})" for line in _format_errors(exc)], source) from None
            runs.append((cfg, overrides))
    return runs


def grid_size(grids: list[dict[str, list]]) -> int:
    """How many runs ``grids`` expand to, counted without expanding them."""
    return sum(math.prod(len(values) for values in grid.values()) for grid in grids)


