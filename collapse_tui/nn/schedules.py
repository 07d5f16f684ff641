"""Sparsity schedules (how k or the L1 coefficient moves over the epochs) and the callback applying them.

The paper's schedule keeps 500 neurons active at the first epoch and 50 at the last of 50 epochs::

    SparsitySchedule("linear", start=500, end=50, epochs=50, integer=True)
"""

from __future__ import annotations

import math
from typing import Any

import keras

from collapse_tui.config import K_METHODS, SCHEDULE_KINDS, SAEConfig
from collapse_tui.nn import checks


@keras.saving.register_keras_serializable(package="collapse_tui")
class SparsitySchedule:
    """A sparsity value per epoch, going from ``start`` (epoch 0) to ``end`` (epoch ``epochs - 1``).

    Kinds, with ``t = epoch / (epochs - 1)`` clipped to [0, 1]:

    - ``constant``: ``end`` at every epoch (``start`` is ignored);
    - ``linear``: ``start + (end - start) * t``;
    - ``cosine``: ``end + (start - end) * (1 + cos(pi * t)) / 2`` (slow at both ends);
    - ``exponential`` (geometric): ``start * (end / start) ** t``, the same ratio every epoch; needs
      ``start`` and ``end`` > 0.

    With ``epochs`` <= 1 every epoch has ``end``; epochs after ``epochs - 1`` keep ``end``. A ``delay``
    holds ``start`` for that many epochs first (a later schedule): epoch ``e`` takes the value of epoch
    ``max(0, e - delay)`` (a constant schedule ignores it).
    ``integer=True`` (for k) rounds each value half up to a whole number and returns ints.

    Args:
        kind: one of ``constant``, ``linear``, ``cosine``, ``exponential``.
        start: value at epoch 0 (>= 0; >= 1 when ``integer``; > 0 for ``exponential``).
        end: value from epoch ``epochs - 1`` on (same bounds as ``start``).
        epochs: number of epochs over which the value moves (whole number >= 0).
        integer: round values to whole numbers (Top-k's k).
        delay: epochs at ``start`` before the schedule moves (whole number >= 0).
    """

    def __init__(self, kind: str = "constant", start: float = 1.0, end: float = 1.0, epochs: int = 1,
                 integer: bool = False, delay: int = 0):
        kind = checks.one_of("kind", kind, SCHEDULE_KINDS)
        start = checks.number("start", start)
        end = checks.number("end", end)
        epochs = checks.whole_number("epochs", epochs, minimum=0)
        lowest = 1.0 if integer else 0.0
        for name, value in (("start", start), ("end", end)):
            if value < lowest:
                what = "a whole-number schedule (k) needs values >= 1" if integer else "values must be >= 0"
                raise ValueError(f"{name} must be >= {lowest:g} ({what}), got {value:g}")
            if kind == "exponential" and value <= 0:
                raise ValueError(f"{name} must be > 0 for an exponential schedule, got {value:g}")
        self.kind = kind
        self.start = start
        self.end = end
        self.epochs = epochs
        self.integer = bool(integer)
        self.delay = checks.whole_number("delay", delay, minimum=0)

    @classmethod
    def from_settings(cls, settings: SAEConfig) -> SparsitySchedule:
        """The schedule of the schema's SAE settings (``RunConfig.sae``): from ``settings.schedule.start``
        (empty: the final value, so a constant schedule) to the final ``k`` (Top-k, BatchTopK: whole
        numbers) or ``l1_coefficient`` (L1, JumpReLU) over ``settings.schedule.epochs`` epochs, after
        ``settings.schedule.delay`` epochs at the start. Under the target-L0 controller the coefficient
        starts at ``l1_coefficient`` and the schedule moves the target instead (:meth:`target_path`)."""
        by_k = settings.method in K_METHODS
        if settings.target_l0 and not by_k:  # the controller moves the coefficient; the schedule, its target
            return cls(end=settings.l1_coefficient)
        end = float(settings.k) if by_k else settings.l1_coefficient
        start = settings.schedule.start if settings.schedule.start is not None else end
        return cls(kind=settings.schedule.kind, start=start, end=end, epochs=settings.schedule.epochs,
                   integer=by_k, delay=settings.schedule.delay)

    @classmethod
    def target_path(cls, settings: SAEConfig) -> SparsitySchedule | None:
        """The target-L0 controller's target per epoch (L1, JumpReLU with ``settings.target_l0``): from
        ``settings.schedule.start`` (empty: the target itself) to ``target_l0`` as the schedule says, so a
        penalised SAE can follow the L0 path Top-k's k takes rather than jump to its final L0 at the
        first update. None without a target."""
        if not settings.target_l0 or settings.method in K_METHODS:
            return None
        end = float(settings.target_l0)
        start = settings.schedule.start if settings.schedule.start is not None else end
        return cls(kind=settings.schedule.kind, start=start, end=end, epochs=settings.schedule.epochs,
                   delay=settings.schedule.delay)

    def value(self, epoch: int) -> float | int:
        """The value at 0-based ``epoch`` (an int when ``integer``)."""
        epoch = max(0, checks.whole_number("epoch", epoch, minimum=0) - self.delay)
        if self.kind == "constant" or self.epochs <= 1:
            value = self.end
        else:
            t = min(epoch / (self.epochs - 1), 1.0)
            if t >= 1.0:
                value = self.end  # exact, whatever rounding the formulas below would leave
            elif self.kind == "linear":
                value = self.start + (self.end - self.start) * t
            elif self.kind == "cosine":
                value = self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * t))
            else:
                value = self.start * (self.end / self.start) ** t
        if self.integer:
            return int(math.floor(value + 0.5))
        return float(value)

    def values(self, n_epochs: int | None = None) -> list[float | int]:
        """The values of epochs 0 .. ``n_epochs - 1`` (default: the schedule's ``delay + epochs``)."""
        n = self.delay + self.epochs if n_epochs is None else checks.whole_number("n_epochs", n_epochs, minimum=0)
        return [self.value(e) for e in range(n)]

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "epochs": self.epochs,
                "integer": self.integer, "delay": self.delay}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SparsitySchedule":
        return cls(**config)

    def __repr__(self) -> str:
        return (f"SparsitySchedule(kind={self.kind!r}, start={self.start:g}, end={self.end:g}, "
                f"epochs={self.epochs}, integer={self.integer}, delay={self.delay})")


@keras.saving.register_keras_serializable(package="collapse_tui")
class SparsityScheduler(keras.callbacks.Callback):
    """Applies a :class:`SparsitySchedule` to a model during ``fit``.

    On each epoch's start it calls ``model.set_sparsity(schedule.value(epoch))`` (k for Top-k, the
    coefficient for L1: see :class:`~collapse_tui.nn.SparseAutoencoder`); on each epoch's end it
    writes the model's current ``sparsity`` into the logs under ``"sparsity"``, so callbacks after it
    (and the ``History``) see the value that epoch trained with.
    """

    def __init__(self, schedule: SparsitySchedule):
        super().__init__()
        if not isinstance(schedule, SparsitySchedule):
            raise ValueError(f"schedule must be a SparsitySchedule, got {type(schedule).__name__}")
        self.schedule = schedule

    def _target(self):
        model = self.model
        if not callable(getattr(model, "set_sparsity", None)):
            raise ValueError(
                f"SparsityScheduler needs a model with set_sparsity() and sparsity (such as "
                f"SparseAutoencoder); got {type(model).__name__}"
            )
        return model

    def on_epoch_begin(self, epoch, logs=None):
        self._target().set_sparsity(self.schedule.value(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["sparsity"] = self._target().sparsity

    def get_config(self) -> dict[str, Any]:
        return {"schedule": self.schedule.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SparsityScheduler":
        return cls(SparsitySchedule.from_config(config["schedule"]))
