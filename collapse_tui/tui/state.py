"""What the run panels show, folded from a run's events.

The same :class:`RunState` is fed by a live engine (events from the training thread) or by a run
directory's ``events.jsonl`` (another process may still be writing it), through the feeds of
:mod:`collapse_tui.tui.feeds`, so the live and the follow views are one view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from collapse_tui import events as ev
from collapse_tui.metrics.specs import DEAD_IN_TRAINING, DEAD_PREFIX, is_threshold_key, threshold_key

TERMINAL = ("ok", "stopped", "failed", "crashed")
# The loss and the terms it is the sum of, as the VAE and SAE log them each epoch (chart labels).
LOSS_TERMS = {"loss": "loss", "reconstruction": "reconstruction", "kl": "KL", "sparsity_loss": "sparsity",
              "auxk_loss": "AuxK (unweighted)"}


def dead_neurons(metrics: dict[str, Any]) -> list[bool]:
    """Per-neuron dead flags: the evaluation's ``dead_mask`` if it has one, else neurons whose
    normalised MI with every factor is exactly 0 (a neuron that never fires carries no information)."""
    mask = metrics.get("dead_mask")
    if isinstance(mask, list):
        return [bool(m) for m in mask]
    return [all(v == 0 for v in row) for row in metrics.get("nmi") or []]


@dataclass
class RunState:
    """One run as the panels see it. ``version`` grows with every applied event."""

    run_id: str = ""
    name: str = ""
    run_dir: str = ""  # as the run recorded it: where it was written, not necessarily where it is now
    # The directory its events were read from (empty for a live run): a copied or moved run is read here.
    source_dir: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    status: str = "waiting"
    reason: str = ""
    phase: str = ""
    phase_detail: str = ""
    phase_started: float | None = None
    # How long each phase that ended took, in seconds (what the next runs' ETAs are estimated from).
    phase_seconds: dict[str, float] = field(default_factory=dict)
    epoch: int = 0
    epochs: int = 0
    done: int = 0
    total: int = 0
    progress_started: tuple[float, int] | None = None
    last_time: float | None = None
    started: float | None = None  # when the run started (its RunStarted event)
    # Per phase, each logged term ("loss", "reconstruction", "kl", "sparsity_loss", ...) per epoch.
    vae_terms: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    sae_terms: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    # The same terms per few steps (the progress events' means since the last), at fractional epochs.
    vae_steps: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    sae_steps: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    sae_l0: list[tuple[int, float]] = field(default_factory=list)
    # Percent of neurons that fired on no training input of an epoch, after every SAE epoch.
    dead_in_training: list[tuple[int, float]] = field(default_factory=list)
    sparsity: float | None = None
    evaluations: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    vae_metrics: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    data_source: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    # Grows only with events that change what the panels draw (not progress ticks), so the charts are
    # redrawn when their data changed rather than with every progress report.
    panel_version: int = 0

    # ------------------------------------------------------------------ folding events
    def apply(self, event: ev.Event) -> None:
        self.version += 1
        if not isinstance(event, (ev.Progress, ev.PhaseStarted)) or getattr(event, "logs", None):
            self.panel_version += 1
        self.last_time = event.time
        if isinstance(event, ev.RunStarted):
            self.run_id, self.name, self.run_dir = event.run_id, event.name, event.run_dir
            self.config, self.environment = dict(event.config), dict(event.environment)
            self.status = "running"
            self.started = event.time
        elif isinstance(event, ev.RunResumed):
            self.run_id, self.name = event.run_id, event.name or self.name
            self.status, self.reason = "running", ""
            self.messages.append(f"resumed from SAE epoch {event.epoch}" if event.epoch else "resumed")
        elif isinstance(event, ev.PhaseStarted):
            self._end_phase(event.time)
            self.phase, self.phase_detail, self.phase_started = event.phase, event.detail, event.time
            self.epochs = event.epochs or 0
            self.epoch = 0
            self.done, self.total = 0, (event.epochs or 0) * (event.steps_per_epoch or 0)
            self.progress_started = None
        elif isinstance(event, ev.Progress):
            self.done, self.total = event.done, event.total
            if event.epoch is not None:
                self.epoch = max(self.epoch, event.epoch)
            if self.progress_started is None or event.done < self.progress_started[1]:
                self.progress_started = (event.time, event.done)
            if event.logs and event.phase in ("vae", "sae") and self.epochs and event.total:
                steps = self.vae_steps if event.phase == "vae" else self.sae_steps
                x = event.done * self.epochs / event.total
                for name, value in event.logs.items():
                    if name in LOSS_TERMS and value is not None:
                        steps.setdefault(name, []).append((x, float(value)))
        elif isinstance(event, ev.EpochEnd):
            self.epoch, self.epochs = event.epoch, event.epochs
            terms = self.vae_terms if event.phase == "vae" else self.sae_terms
            for name, value in event.logs.items():
                if name in LOSS_TERMS and value is not None:
                    terms.setdefault(name, []).append((event.epoch, float(value)))
            if event.phase == "sae":
                if event.sparsity is not None:
                    self.sparsity = event.sparsity
                if event.logs.get("l0") is not None:
                    self.sae_l0.append((event.epoch, float(event.logs["l0"])))
                if event.logs.get(DEAD_IN_TRAINING) is not None:
                    self.dead_in_training.append((event.epoch, 100.0 * float(event.logs[DEAD_IN_TRAINING])))
        elif isinstance(event, ev.Evaluation):
            if event.phase == "vae":
                self.vae_metrics = dict(event.metrics)
            else:
                self.evaluations.append((event.epoch, dict(event.metrics)))
                if event.metrics.get("sparsity") is not None:
                    self.sparsity = event.metrics["sparsity"]
        elif isinstance(event, ev.Message):
            self.messages.append(f"{event.level}: {event.text}" if event.level != "info" else event.text)
        elif event.kind == "data_source":
            self.data_source = dict(getattr(event, "provenance", {}) or {})
        elif isinstance(event, ev.RunFinished):
            self._end_phase(event.time)
            self.status, self.summary = event.status, dict(event.summary)
        elif isinstance(event, ev.RunFailed):
            self._end_phase(event.time)
            self.status, self.reason, self.summary = "failed", event.reason, dict(event.summary)

    def _end_phase(self, now: float | None) -> None:
        if self.phase and self.phase_started is not None and now is not None:
            self.phase_seconds[self.phase] = max(0.0, now - self.phase_started)

    # ------------------------------------------------------------------ views
    @property
    def vae_loss(self) -> list[tuple[int, float]]:
        return self.vae_terms.get("loss", [])

    @property
    def sae_loss(self) -> list[tuple[int, float]]:
        return self.sae_terms.get("loss", [])

    def loss_curves(self, phase: str) -> dict[str, list[tuple[float, float]]]:
        """Each loss term of ``phase`` (``vae`` or ``sae``) over epochs, per few steps where those are the
        finer curve (a run whose epochs take under the progress interval has about one step point per
        epoch, and a run written before step points existed has none), else per epoch."""
        epochs, steps = (self.vae_terms, self.vae_steps) if phase == "vae" else (self.sae_terms, self.sae_steps)
        return {name: steps[name] if len(steps.get(name, ())) > len(points) else points
                for name, points in epochs.items()} | {name: points for name, points in steps.items()
                                                        if name not in epochs}

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def thresholds(self) -> list[float]:
        found = self.config.get("eval", {}).get("thresholds")
        if found:
            return [float(t) for t in found]
        if self.evaluations:
            keys = [k for k in self.evaluations[-1][1] if is_threshold_key(k)]
            return [float(k[len(DEAD_PREFIX):]) for k in keys]
        return []

    @property
    def method(self) -> str:
        return str(self.config.get("sae", {}).get("method", ""))

    @property
    def latest(self) -> dict[str, Any]:
        return self.evaluations[-1][1] if self.evaluations else {}

    def dead_series(self, threshold: float) -> list[tuple[int, float]]:
        key = threshold_key(threshold)
        return [(e, m[key]) for e, m in self.evaluations if m.get(key) is not None]

    def dead_pct_series(self, threshold: float) -> list[tuple[int, float]]:
        """:meth:`dead_series` in percent, as every table shows dead neurons."""
        return [(e, 100.0 * f) for e, f in self.dead_series(threshold)]

    def metric_series(self, key: str) -> list[tuple[int, float]]:
        return [(e, m[key]) for e, m in self.evaluations if isinstance(m.get(key), (int, float))]

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left in the current phase, from the progress rate since the phase's first report."""
        if self.finished or self.progress_started is None or not self.total:
            return None
        t0, d0 = self.progress_started
        now = self.last_time if now is None else now
        if now is None or self.done <= d0 or now <= t0:
            return None
        rate = (self.done - d0) / (now - t0)
        return max(0.0, (self.total - self.done) / rate) if rate > 0 else None


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
