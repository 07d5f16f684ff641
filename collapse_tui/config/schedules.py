"""The schedules of an SAE's training: how its sparsity moves over the epochs, and its learning rate over
the updates."""

from __future__ import annotations

from pydantic import Field

from collapse_tui.config.section import Section
from collapse_tui.config.vocabulary import LRDecay, ScheduleKind


class ScheduleConfig(Section):
    kind: ScheduleKind = Field(
        "constant", description="How the sparsity (k or L1 coefficient) moves from start to its final value."
    )
    start: float | None = Field(
        None, ge=0.0,
        description="Sparsity at the first epoch (k for topk / batchtopk, the target L0 under sae.target_l0, else the "
                    "coefficient); empty = the final value.",
    )
    epochs: int = Field(
        1, ge=1, le=100_000,
        description="Epochs over which the schedule reaches the final value (sae.k or sae.l1_coefficient).",
    )
    delay: int = Field(
        0, ge=0, le=100_000,
        description="Epochs at the start value before the schedule moves (a later schedule; 0 = it moves from "
                    "the first epoch).",
    )


class LRScheduleConfig(Section):
    warmup_steps: int = Field(
        0, ge=0, le=10_000_000,
        description="Updates over which the SAE's learning rate rises linearly from 0 to sae.learning_rate (0 = none).",
    )
    decay: LRDecay = Field(
        "none", description="Decay of the learning rate after decay_start_epoch to final_fraction of it at the last "
                            "update: none, cosine or linear.",
    )
    decay_start_epoch: int | None = Field(
        None, ge=0, le=100_000,
        description="SAE epochs before the decay starts; empty = when the sparsity schedule has reached its final "
                    "value (sae.schedule.epochs, 0 for a constant schedule).",
    )
    final_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="The learning rate at the last update, as a fraction of sae.learning_rate.",
    )
