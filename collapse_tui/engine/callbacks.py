"""Keras callbacks that turn training into engine events and let a run be stopped between steps."""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

import keras
import numpy as np

from collapse_tui.events import EpochEnd, Progress
from collapse_tui.interrupts import stop_polled


# Seconds between two progress events of a training phase (each also a point of the per-step curves).
PROGRESS_INTERVAL = 0.5


class StopRequested(Exception):
    """Raised by the engine when a run was asked to stop (Stop in the TUI, or a stop event)."""


def running_metrics(model) -> dict[str, np.ndarray]:
    """The model's metric trackers as they stand mid-epoch (the epoch's running means so far), by name.

    Under JAX the trainer keeps the variables to itself during an epoch; they are handed back first
    (the trainer offers callbacks this, and takes them again at its next step). Reading them waits for
    the steps dispatched so far: call it now and then, not every step.
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()
    results = {}
    for metric in model.metrics:
        result = metric.result()  # a value, or (as Keras allows) a dict of them by name
        results.update(result if isinstance(result, dict) else {metric.name: result})
    return {name: np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64) for name, value in results.items()}


class IntervalMeans:
    """Each metric's mean over the steps between two reads within an epoch, from the epoch's running
    means: Keras keeps every metric's mean since the epoch began, so ``steps × mean`` is its sum, and
    the difference of two sums over the difference of their steps is the mean in between (exact while
    the batches are of one size, as all but an epoch's last are). Values may be arrays (a bank's
    metrics: one value per member)."""

    def __init__(self) -> None:
        self._epoch: int | None = None
        self._steps = 0
        self._sums: dict[str, np.ndarray] = {}

    def update(self, epoch: int, steps: int, means: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The means since the last update, given the running ``means`` after ``steps`` steps of
        ``epoch``; empty when no step ran since."""
        if epoch != self._epoch:
            self._epoch, self._steps, self._sums = epoch, 0, {}
        if steps <= self._steps:
            return {}
        sums = {key: np.asarray(mean, dtype=np.float64) * steps for key, mean in means.items()}
        out = {key: (total - self._sums.get(key, 0.0)) / (steps - self._steps) for key, total in sums.items()}
        self._steps, self._sums = steps, sums
        return out


class StoppableCallback(keras.callbacks.Callback):
    """Stops ``fit`` between steps once ``stop_event`` is set (``stopped`` then says so) and calls
    :meth:`progress` at most every ``interval`` seconds.

    Only ``on_train_batch_begin`` runs per step: it reads no losses, so Keras keeps dispatching steps
    without waiting for their results (a per-batch ``on_train_batch_end`` would force a device sync
    every step and cost throughput).
    """

    def __init__(self, stop_event: threading.Event | None = None, interval: float | None = None):
        super().__init__()
        self.stop_event = stop_event
        self.interval = PROGRESS_INTERVAL if interval is None else interval
        self.stopped = False
        self._epoch = 0
        self._epoch_start = 0.0
        self._last_emit = 0.0

    def progress(self, epoch: int, batch: int) -> None:
        """Report that ``batch`` (0-based) of ``epoch`` (0-based) is about to run."""

    def stop_requested(self) -> bool:
        """Whether a stop was asked for; if so, ``fit`` ends after the current step."""
        if self.stop_event is not None and self.stop_event.is_set():
            self.model.stop_training = True
            self.stopped = True
        return self.stopped

    def epoch_seconds(self) -> float:
        return time.perf_counter() - self._epoch_start

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        if self.stop_requested():
            return
        now = time.perf_counter()
        if now - self._last_emit >= self.interval:
            self._last_emit = now
            self.progress(self._epoch, batch)


class EventCallback(StoppableCallback):
    """Emits ``Progress`` (at most every ``interval`` seconds, with the metrics' means over the steps since
    the last) and ``EpochEnd`` events, and stops training
    between steps once ``stop_event`` is set, or as soon as its loss stops being finite (checked with
    each progress event and at the end of each epoch; ``diverged`` then says where). ``epochs_done``
    counts the epochs that ran whole: not one a stop cut short, nor one that diverged."""

    def __init__(
        self,
        phase: str,
        emit: Callable,
        epochs: int,
        steps_per_epoch: int,
        stop_event: threading.Event | None = None,
        sparsity: Callable[[], float] | None = None,
        interval: float | None = None,
    ):
        super().__init__(stop_event, interval)
        self.phase = phase
        self.emit = emit
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.sparsity = sparsity
        self.diverged: str | None = None
        self.epochs_done = 0  # the last epoch that ran whole (1-based), 0 before the first
        self._steps = IntervalMeans()  # the per-step curves' points, sent with the progress events

    def progress(self, epoch: int, batch: int) -> None:
        done = epoch * self.steps_per_epoch + batch
        logs = None
        if batch > 0:
            means = running_metrics(self.model)
            steps = self._steps.update(epoch, batch, {k: v for k, v in means.items() if v.ndim == 0})
            logs = {key: float(value) for key, value in steps.items()} or None
        self.emit(Progress(phase=self.phase, done=done, total=self.epochs * self.steps_per_epoch, epoch=epoch + 1,
                           logs=logs))
        if batch > 0:
            loss = means.get("loss")
            if loss is not None and not np.all(np.isfinite(loss)):
                self._diverge(f"the {self.phase.upper()}'s loss became {float(np.ravel(loss)[0])} in epoch "
                              f"{epoch + 1} (found at step {batch})")

    def _diverge(self, reason: str) -> None:
        self.diverged = reason
        self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if self.diverged is None and loss is not None and not np.isfinite(float(loss)):
            self._diverge(f"the {self.phase.upper()}'s loss became {float(loss)} in epoch {epoch + 1}")
        if self.diverged or self.stopped:
            # No epoch event: what it would report was computed from diverged weights, or over the part
            # of the epoch that ran before a stop (the epoch is not done: a resumed run trains it whole).
            return
        self.epochs_done = epoch + 1
        values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        # The epoch's last steps close its per-step curve: the epoch's means are the running means after
        # all its steps (the tail's mean is off only by a smaller last batch's weight).
        tail = self._steps.update(epoch, self.steps_per_epoch, values)
        if tail:
            self.emit(Progress(phase=self.phase, done=(epoch + 1) * self.steps_per_epoch,
                               total=self.epochs * self.steps_per_epoch, epoch=epoch + 1,
                               logs={key: float(value) for key, value in tail.items()}))
        sparsity = float(self.sparsity()) if self.sparsity is not None else None
        values.pop("sparsity", None)
        self.emit(EpochEnd(phase=self.phase, epoch=epoch + 1, epochs=self.epochs, logs=values,
                           seconds=self.epoch_seconds(), sparsity=sparsity))
        self.stop_requested()


def fit_with_events(model, x: np.ndarray, phase: str, emit: Callable, *, epochs: int, batch_size: int,
                    stop_event: threading.Event | None = None, sparsity: Callable[[], float] | None = None,
                    callbacks: Iterable = ()) -> EventCallback:
    """``model.fit`` as every run trains: progress and epoch events, stoppable between steps.

    Returns the event callback (its ``stopped`` says whether a stop was requested, its ``diverged``
    why training stopped on a non-finite loss).
    """
    steps = -(-len(x) // batch_size)
    callback = EventCallback(phase, emit, epochs, steps, stop_event, sparsity=sparsity)
    with stop_polled():  # the callback stops fit between steps; a signal inside only asks it to
        model.fit(x, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[callback, *callbacks])
    return callback
