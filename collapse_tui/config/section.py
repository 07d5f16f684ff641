"""The base of every section of the run configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # allow_inf_nan=False: every float field (list items included) must be a finite number; .nan or .inf
    # would pass every bound check below and poison a run later.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
