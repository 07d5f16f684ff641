"""The SAE's learning rate over its updates: a linear warm-up from 0, then a constant rate, then a cosine or
linear decay to a fraction of it at the last update.

Why: a constant rate keeps pushing neurons out of the data's range for the whole run, so the dead fraction
grows with log(updates) and never settles; decaying the rate once the sparsity has reached its final value
lets training settle. The warm-up and the decay follow the SAE trainers of dictionary_learning
(``trainers/trainer.py``'s ``get_lr_schedule``: linear warm-up over ``warmup_steps``, linear decay to 0 from
``decay_start``) and the cosine decay of Gao et al. (2024); the decay's start defaults to the end of the
sparsity schedule here, because before it the target the SAE learns is still moving.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from collapse_tui.config import LR_DECAYS
from collapse_tui.nn import checks

__all__ = ["WarmupDecay", "decay_start_epoch"]


def decay_start_epoch(settings) -> int:
    """The epoch after which the decay starts, for the schema's SAE settings (``RunConfig.sae``): the one
    asked for, else the epoch the sparsity schedule reaches its final value (its delay plus its epochs; 0 for a
    constant one)."""
    asked = settings.lr_schedule.decay_start_epoch
    if asked is not None:
        return int(asked)
    schedule = settings.schedule
    return 0 if schedule.kind == "constant" else int(schedule.delay) + int(schedule.epochs)


@keras.saving.register_keras_serializable(package="collapse_tui")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``rate`` × warm-up × decay at update ``step`` (0 for the first update, Keras' ``iterations``).

    - warm-up: ``min(1, (step + 1) / warmup_steps)`` (no warm-up when 0), so the first update is not wasted;
    - decay: 1 before ``decay_start`` (an update count); from there to ``total_steps`` with
      ``t = (step - decay_start) / (total_steps - decay_start)`` clipped to [0, 1]: cosine
      ``f + (1 - f)(1 + cos πt) / 2``, linear ``1 - (1 - f) t``, where ``f = final_fraction``.

    The optimiser's step count is part of a checkpoint, so a resumed run continues on the same curve.
    """

    def __init__(self, rate: float, warmup_steps: int = 0, decay: str = "none", decay_start: int = 0,
                 total_steps: int = 1, final_fraction: float = 0.0):
        self.rate = checks.number("rate", rate, 0, above=True)
        self.warmup_steps = checks.whole_number("warmup_steps", warmup_steps, minimum=0)
        self.decay = checks.one_of("decay", decay, LR_DECAYS)
        self.total_steps = checks.whole_number("total_steps", total_steps)
        self.decay_start = checks.whole_number("decay_start", decay_start, minimum=0)
        self.final_fraction = checks.number("final_fraction", final_fraction, 0, high=1)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        factor = ops.ones_like(step)
        if self.warmup_steps:
            factor = ops.minimum(factor, (step + 1.0) / float(self.warmup_steps))
        if self.decay != "none" and self.decay_start < self.total_steps:
            t = ops.clip((step - float(self.decay_start)) / float(self.total_steps - self.decay_start), 0.0, 1.0)
            f = self.final_fraction
            if self.decay == "cosine":
                decayed = f + (1.0 - f) * 0.5 * (1.0 + ops.cos(math.pi * t))
            else:
                decayed = 1.0 - (1.0 - f) * t
            factor = factor * decayed
        return self.rate * factor

    @classmethod
    def from_settings(cls, settings, steps_per_epoch: int, total_epochs: int) -> "WarmupDecay":
        """The schedule of the schema's SAE settings, for a run of ``total_epochs`` of ``steps_per_epoch``."""
        s = settings.lr_schedule
        return cls(settings.learning_rate, warmup_steps=s.warmup_steps, decay=s.decay,
                   decay_start=min(decay_start_epoch(settings), total_epochs) * steps_per_epoch,
                   total_steps=max(1, total_epochs * steps_per_epoch), final_fraction=s.final_fraction)

    @property
    def is_constant(self) -> bool:
        return not self.warmup_steps and (self.decay == "none" or self.decay_start >= self.total_steps)

    def get_config(self):
        return {"rate": self.rate, "warmup_steps": self.warmup_steps, "decay": self.decay,
                "decay_start": self.decay_start, "total_steps": self.total_steps,
                "final_fraction": self.final_fraction}
