"""A run in progress (:class:`ActiveRun`): where it writes, how it emits, what it has measured so far,
and how it ends, whatever way it ends, with its summary written and its :class:`RunResult` kept."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from collapse_tui.config import RunConfig
from collapse_tui.engine.checkpoint import remove_checkpoint
from collapse_tui.engine.sae_phase import remedy_names, result_flags
from collapse_tui.events import Event, RunFailed, RunFinished
from collapse_tui.interrupts import uninterrupted
from collapse_tui.metrics.specs import DEAD_CURVE
from collapse_tui.store import SAE_FILE, RunSummary, RunWriter, save_model


@dataclass
class RunResult:
    """How a run ended: its status, directory and summary."""

    status: str  # ok | stopped | failed
    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False  # Ctrl-C: a sweep should not start its next run


class ActiveRun:
    """The run in progress: where it writes, how it emits, and what it has measured so far; its
    ``summary`` is written whatever way the run ends (:meth:`end`)."""

    def __init__(self, config: RunConfig, run_dir: Path, emit: Callable[[Event], None], started: float,
                 writer: RunWriter | None = None):
        self.config = config
        self.run_dir = run_dir
        self.emit = emit
        self.started = started
        self.writer = writer
        self.result: RunResult | None = None
        self.durations: dict[str, float] = {}
        self.vae_metrics: dict[str, Any] = {}
        self.last_eval: dict[str, Any] | None = None
        self.last_eval_epoch = 0
        self.epochs_done = 0
        self.updates_by_sparsity: dict[str, int] = {}
        self.resampled = 0
        self.vae_source = ""
        self.data_source: dict[str, Any] = {}
        self.sae = None
        self.sae_saved = False
        self.checkpoint = None  # resuming: the SAE phase's checkpoint to go on from
        self.recorded_source: dict[str, Any] = {}  # resuming: the data source the run recorded when it began
        self.resumed: list[float] = []  # when the run was resumed, if it was

    def end(self, status: str, reason: str | None = None, trace: str = "", interrupted: bool = False) -> None:
        """End the run, once (later calls do nothing): ``ok``, ``stopped`` (the SAE trained so far is
        kept: saved if it was not) or ``failed``; the summary is written and the result kept."""
        if self.result is not None:
            return
        with uninterrupted():  # a second Ctrl-C waits: the run must not stay "running" with half a file
            if status == "stopped" and self.sae is not None and not self.sae_saved:
                try:  # keep the weights trained so far beside what was measured
                    save_model(self.sae, self.run_dir / SAE_FILE)
                except Exception:
                    pass
            summary = self.summary(status, reason=reason).to_dict()
            if status == "failed":
                self.emit(RunFailed(reason=reason or "", traceback=trace, summary=summary))
            else:
                self.emit(RunFinished(status=status, summary=summary))
            self.result = RunResult(status, self.run_dir, summary, interrupted=interrupted)
            if self.writer is not None:
                self.writer.close()
            if status == "ok":  # sae.keras is the final state; a stopped or failed run keeps its last one
                remove_checkpoint(self.run_dir)

    @contextlib.contextmanager
    def phase(self, name: str):
        """Adds the time spent in the block to the phase's duration."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.durations[name] = self.durations.get(name, 0.0) + time.perf_counter() - t0

    def summary(self, status: str, reason: str | None = None) -> RunSummary:
        cfg = self.config
        # The final metrics' numbers and the dead fraction's curve (the evaluation's per-neuron and
        # per-factor lists stay in events.jsonl and neurons.npz).
        final = {k: v for k, v in (self.last_eval or {}).items()
                 if isinstance(v, (int, float)) or v is None or k == DEAD_CURVE}
        vae = {k: v for k, v in self.vae_metrics.items() if isinstance(v, (int, float))}
        now = time.time()
        return RunSummary(
            status=status,
            run_id=self.run_dir.name,
            name=cfg.name,
            dataset=cfg.data.dataset,
            method=cfg.sae.method,
            sparsity=cfg.sparsity,
            n_neurons=cfg.sae.n_neurons,
            source=cfg.sae.source,
            remedies=remedy_names(cfg),
            resampled=self.resampled,
            started=self.started,
            finished=now,
            seconds=now - self.started,
            durations={k: round(v, 3) for k, v in self.durations.items()},
            sae_epochs=self.epochs_done,
            updates_by_sparsity=self.updates_by_sparsity,
            evaluated_at_epoch=self.last_eval_epoch if self.last_eval else None,
            final=final,
            vae=vae,
            vae_model=self.vae_source,
            data=self.data_source,
            reason=reason,
            flags=result_flags(final, cfg.eval.explained_variance_floor) if status == "ok" else [],
            resumed=self.resumed,
        )
