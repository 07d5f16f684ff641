"""Keras callbacks that turn training into engine events and let a run be stopped between steps."""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

import keras
import numpy as np

from collapse_tui.events import EpochEnd, Progress


class StopRequested(Exception):
    """Raised by the engine when a run was asked to stop (Stop in the TUI, or a stop event)."""


class EventCallback(keras.callbacks.Callback):
    """Emits ``Progress`` (at most every ``interval`` seconds) and ``EpochEnd`` events, and stops training
    between steps once ``stop_event`` is set.

    Only ``on_train_batch_begin`` runs per step: it reads no losses, so Keras keeps dispatching steps
    without waiting for their results (a per-batch ``on_train_batch_end`` would force a device sync
    every step and cost throughput).
    """

    def __init__(
        self,
        phase: str,
        emit: Callable,
        epochs: int,
        steps_per_epoch: int,
        stop_event: threading.Event | None = None,
        sparsity: Callable[[], float] | None = None,
        interval: float = 0.5,
    ):
        super().__init__()
        self.phase = phase
        self.emit = emit
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.stop_event = stop_event
        self.sparsity = sparsity
        self.interval = interval
        self.stopped = False
        self._epoch = 0
        self._epoch_start = 0.0
        self._last_emit = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        if self.stop_event is not None and self.stop_event.is_set():
            self.model.stop_training = True
            self.stopped = True
            return
        now = time.perf_counter()
        if now - self._last_emit >= self.interval:
            self._last_emit = now
            done = self._epoch * self.steps_per_epoch + batch
            self.emit(Progress(phase=self.phase, done=done, total=self.epochs * self.steps_per_epoch,
                               epoch=self._epoch + 1))

    def on_epoch_end(self, epoch, logs=None):
        values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        sparsity = float(self.sparsity()) if self.sparsity is not None else None
        values.pop("sparsity", None)
        self.emit(EpochEnd(phase=self.phase, epoch=epoch + 1, epochs=self.epochs, logs=values,
                           seconds=time.perf_counter() - self._epoch_start, sparsity=sparsity))
        if self.stop_event is not None and self.stop_event.is_set():
            self.model.stop_training = True
            self.stopped = True


def fit_with_events(model, x: np.ndarray, phase: str, emit: Callable, *, epochs: int, batch_size: int,
                    stop_event: threading.Event | None = None, sparsity: Callable[[], float] | None = None,
                    callbacks: Iterable = ()) -> EventCallback:
    """``model.fit`` as every run trains: progress and epoch events, stoppable between steps.

    Returns the event callback (its ``stopped`` says whether a stop was requested).
    """
    steps = -(-len(x) // batch_size)
    callback = EventCallback(phase, emit, epochs, steps, stop_event, sparsity=sparsity)
    model.fit(x, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[callback, *callbacks])
    return callback
