"""The engine: one run goes data → VAE → codes → SAE → evaluation, emitting typed events.

Each phase is a room of its own: :mod:`~collapse_tui.engine.data_phase`,
:mod:`~collapse_tui.engine.vae_phase` (the VAE and its codes), :mod:`~collapse_tui.engine.sae_phase` and
:mod:`~collapse_tui.engine.bank_phase` (the SAEs, trained in banks); a run in progress is an
:class:`~collapse_tui.engine.active_run.ActiveRun`. :class:`Engine` orders them. It keeps the rendered
images, trained VAEs and their codes in memory between runs of one process, so the runs of a sweep share
them; on disk, a VAE identical in config, data and seed to one in ``models/`` is loaded instead of
retrained.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable, Sequence

from collapse_tui.config import RunConfig
from collapse_tui.engine import faults
from collapse_tui.engine.active_run import ActiveRun, RunResult
from collapse_tui.engine.bank_phase import BankPhase
from collapse_tui.engine.banks import bank_key
from collapse_tui.engine.callbacks import StopRequested
from collapse_tui.engine.data_phase import DataPhase
from collapse_tui.engine.model_phase import ModelPhase
from collapse_tui.engine.sae_phase import SAEPhase
from collapse_tui.engine.vae_phase import VAEPhase
from collapse_tui.events import Event, Listener, Message, RunResumed, RunStarted
from collapse_tui.interrupts import uninterrupted
from collapse_tui.store import RunWriter, create_run_dir, layout, load_run, remove_stale_temporaries, stored_settings

__all__ = ["RESUMABLE", "Engine", "resume_plan", "run"]

# What a run may be resumed from: it ended without finishing (stopped), or its process died.
RESUMABLE = ("stopped", "crashed")


class Engine:
    """Runs configs one after another, sharing data, VAEs and codes between them.

    ``stop_event``, when set, ends the current run between training steps with status ``stopped``.
    """

    def __init__(self, stop_event: threading.Event | None = None):
        self.stop_event = stop_event or threading.Event()
        self.data = DataPhase(self.stop_event)
        self.vae = VAEPhase(self.stop_event)
        self.model = ModelPhase(self.stop_event)
        # TensorFlow warns through Python logging each time Keras traces a new predict function (the
        # evaluation uses several); harmless here, and noise in a terminal.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)

    # ------------------------------------------------------------------ public
    def run(self, config: RunConfig, listeners: Iterable[Listener] = ()) -> RunResult:
        """Run one config: its SAE trains alone (a bank of one)."""
        return self.run_bank([config], listeners)[0]

    def run_bank(self, configs: Sequence[RunConfig], listeners: Iterable[Listener] = ()) -> list[RunResult]:
        """Run ``configs`` with their SAEs trained together, one bank per SAE shape
        (:class:`~collapse_tui.engine.bank_phase.BankPhase`); each is still a run of its own, with its
        directory, events, summary and ``sae.keras``. Their data, VAE and codes come first, run by run
        (shared where identical). A run that fails fails alone; a stop stops them all. Returns one
        result per config, in their order."""
        listeners = list(listeners)
        return self._train([self._start(config, listeners) for config in configs])

    def resume(self, run_dirs: Sequence, listeners: Iterable[Listener] = ()) -> list[RunResult]:
        """Continue interrupted runs (stopped, or whose process died) in their own directories: each from
        its checkpoint (:mod:`~collapse_tui.engine.checkpoint`) when it has one, its SAE phase from the
        start when it has none; the data, VAE and codes come again from their seeds (the VAE from
        ``models/`` once it was trained). Runs at one checkpoint epoch share a bank. ``run_dirs``: run
        directories, or what :func:`resume_plan` made of them. Raises ValueError for a directory that is
        not a run, holds a finished one, or whose config or checkpoint is unreadable (before any run
        starts)."""
        listeners = list(listeners)
        plans = [d if isinstance(d, tuple) else resume_plan(Path(d)) for d in run_dirs]
        # Banks as a sweep would make them, and of one checkpoint epoch each; results in the given order.
        groups: dict[tuple, list[int]] = {}
        for i, (_, config, checkpoint) in enumerate(plans):
            groups.setdefault((bank_key(config), checkpoint.epoch if checkpoint else 0), []).append(i)
        results: dict[int, RunResult] = {}
        banks = [group[start:start + max(1, plans[group[0]][1].bank_size)]
                 for group in groups.values() for start in range(0, len(group), max(1, plans[group[0]][1].bank_size))]
        for indices in banks:
            states = [self._reopen(plans[i][0], plans[i][1], plans[i][2], listeners) for i in indices]
            results.update(zip(indices, self._train(states)))
            if any(r.status == "stopped" for r in results.values()):
                break
        return [results[i] for i in sorted(results)]

    def evaluate_imported(self, config: RunConfig, sae, source: str, listeners: Iterable[Listener] = ()) -> RunResult:
        """A run that trains nothing: ``sae``, an SAE read from another tool (``source`` says from where),
        measured on the config's data as a trained run's final evaluation is (dead, density, L0, EV and,
        with factors, every interpretability metric), in a run directory of its own. The config's SAE
        section is made the SAE's own (method, dictionary size, k, no normalisation), so the run says
        what was measured; its data must have the SAE's input size."""
        from collapse_tui.engine.imported import imported_config, measure_imported

        config = imported_config(config, sae)
        s = self._start(config, list(listeners))
        try:
            phase = self._prepare(s)
            measure_imported(phase, sae, source)
            s.end("ok")
        except (KeyboardInterrupt, StopRequested) as exc:
            s.end("stopped", interrupted=isinstance(exc, KeyboardInterrupt))
        except Exception as exc:
            s.end("failed", reason=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
        return s.result

    # ------------------------------------------------------------------ orchestration
    def _train(self, states: list[ActiveRun]) -> list[RunResult]:
        """Prepare each run (data, VAE, codes), then train their SAEs bank by bank; every run ends."""
        phases: list[SAEPhase] = []
        bank = None
        try:
            for s in states:
                try:
                    phases.append(self._prepare(s))
                except (KeyboardInterrupt, StopRequested):
                    raise
                except Exception as exc:
                    if self.stop_event.is_set():
                        # A stop signal that landed inside a framework's own code comes back wrapped as
                        # its error (TensorFlow's from a callback): the run was stopped, not broken.
                        raise StopRequested() from exc
                    s.end("failed", reason=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
            for group in _by_shape(phases):
                bank = BankPhase(group, self.stop_event,
                                 on_failed=lambda m, reason, trace: m.state.end("failed", reason, trace))
                with contextlib.ExitStack() as timers:
                    for m in group:
                        timers.enter_context(m.state.phase("sae"))
                    bank.run()
                for m in group:
                    m.state.end("ok")
                bank = None
        except (KeyboardInterrupt, StopRequested) as exc:
            self._stopped(states, bank, interrupted=isinstance(exc, KeyboardInterrupt))
        except Exception as exc:  # the bank itself failed: every run still open fails with it...
            if self.stop_event.is_set():  # ...unless it is a stop signal the framework wrapped (above)
                self._stopped(states, bank, interrupted=False)
            else:
                reason, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
                for s in states:
                    s.end("failed", reason=reason, trace=trace)
        return [s.result for s in states]

    @staticmethod
    def _stopped(states: list[ActiveRun], bank: BankPhase | None, interrupted: bool) -> None:
        with uninterrupted():  # every run of the bank ends, whatever signal comes next
            if bank is not None:
                bank.write_back()  # keep the weights trained so far beside what was measured
            for s in states:
                s.end("stopped", interrupted=interrupted)

    def _prepare(self, s: ActiveRun) -> SAEPhase:
        """The run's data, VAE and codes; its SAE phase, ready to train."""
        from collapse_tui.engine.distribution import check_data_parallel

        cfg = s.config
        check_data_parallel([cfg])  # before any data is read: a setting that cannot run fails the run now
        with s.phase("data"):
            data = self.data.load(cfg, s)
        if data.from_file:  # the file's rows are the SAE's inputs: no VAE, no codes to compute
            return SAEPhase(s, data, None, (data.train_codes, data.eval_codes), checkpoint=s.checkpoint)
        if cfg.sae.model is not None:  # a model of the user's gives the SAE's inputs: no VAE
            with s.phase("codes"):
                codes = self.model.codes(cfg, data, s)
            return SAEPhase(s, data, None, codes, checkpoint=s.checkpoint)
        with s.phase("vae"):
            vae, key = self.vae.model(cfg, data, s)
            s.vae_metrics = self.vae.evaluate(key, vae, data, cfg, s)
        with s.phase("codes"):
            codes = self.vae.codes(key, vae, data, cfg, s)
        return SAEPhase(s, data, vae, codes, checkpoint=s.checkpoint)

    # ------------------------------------------------------------------ a run's directory and events
    @staticmethod
    def _emitter(run_dir: Path, writer: RunWriter, listeners: list[Listener]) -> Callable[[Event], None]:
        """How a run emits: into its directory, then to ``listeners`` (one that raises is detached)."""
        others = list(listeners)

        def emit(event: Event) -> None:
            event.run_id = run_dir.name
            writer(event)
            faults.crash_if_asked(event)  # the crash tests' fault, right where they ask (else nothing)
            for listener in list(others):
                try:
                    listener(event)
                except Exception as exc:  # a broken display must not lose the run
                    others.remove(listener)
                    writer(Message(text=f"a listener failed and was detached: {exc!r}", level="warning"))

        return emit

    def _start(self, config: RunConfig, listeners: list[Listener]) -> ActiveRun:
        """Create the run's directory and announce it; its events go to its writer and to ``listeners``."""
        from collapse_tui.engine.environment import environment

        run_dir = create_run_dir(config.runs_dir, config.name)
        writer = RunWriter(run_dir)
        emit = self._emitter(run_dir, writer, listeners)
        started = time.time()
        emit(RunStarted(run_id=run_dir.name, name=config.name, run_dir=str(run_dir),
                        config=config.to_dict(), environment=environment(config.data_parallel)))
        return ActiveRun(config=config, run_dir=run_dir, emit=emit, started=started, writer=writer)

    def _reopen(self, run_dir: Path, config: RunConfig, checkpoint, listeners: list[Listener]) -> ActiveRun:
        """An interrupted run's directory, written on again: events appended, summary running (and what
        the crash left half-written removed)."""
        from collapse_tui.engine.environment import environment

        remove_stale_temporaries(run_dir, everything=True)
        writer = RunWriter(run_dir)
        emit = self._emitter(run_dir, writer, listeners)
        now = environment(config.data_parallel)
        emit(RunResumed(name=config.name, epoch=checkpoint.epoch if checkpoint else 0, environment=now))
        record = load_run(run_dir)
        if (change := backend_change(record.config, now)) is not None:
            emit(Message(text=change, level="warning"))
        previous = record.summary
        started = previous.get("started") if isinstance(previous.get("started"), (int, float)) else time.time()
        s = ActiveRun(config=config, run_dir=run_dir, emit=emit, started=started, writer=writer)
        s.checkpoint = checkpoint
        recorded = record.config.get("data_source")
        s.recorded_source = recorded if isinstance(recorded, dict) else {}
        s.resumed = [t for t in previous.get("resumed") or [] if isinstance(t, (int, float))]  # this one included
        return s


def backend_change(config: dict, now: dict) -> str | None:
    """The line a run resumed under another Keras backend than it started on gets (None: the same one, or
    the first one unknown). Both backends compute the same models, but not in the same order of float
    operations, so the resumed run's numbers can differ in their last digits from a run never moved; its
    config.yaml keeps the backend it started on, its events the one of each resume."""
    recorded = config.get("environment") if isinstance(config, dict) else None
    first = recorded.get("backend") if isinstance(recorded, dict) else None
    current = now.get("backend")
    if not isinstance(first, str) or not first or first == current:
        return None
    return (f"resumed under {current}; the run started under {first}, so its numbers can differ in the last "
            "digits from a run that never changed backend")


def resume_plan(run_dir: Path, writer_gone: bool = False):
    """(run_dir, its config, its checkpoint or None) for :meth:`Engine.resume`; ValueError if it cannot be
    resumed. A checkpoint that cannot be read does not stop it: it comes as an
    :class:`~collapse_tui.engine.checkpoint.UnreadableCheckpoint`, and the SAE phase starts over. ``writer_gone``: the caller knows that the process which wrote the run died (a cluster task
    being retried, whose first attempt may have run on another machine, where its death cannot be seen
    from here): a run still marked running is resumed as crashed."""
    from collapse_tui.config import ConfigError, validate
    from collapse_tui.engine.checkpoint import UnreadableCheckpoint, read_checkpoint

    record = load_run(run_dir)
    # A failed run that kept a checkpoint (a full disk, an evaluation that failed) goes on from it.
    kept = record.status == "failed" and layout.run_file(run_dir, layout.CHECKPOINT_FILE).exists()
    if record.status not in RESUMABLE and not kept and not (writer_gone and record.status == "running"):
        what = "is still running" if record.status == "running" else f"ended {record.status}"
        if record.status == "failed":
            what += " and kept no checkpoint"
        raise ValueError(f"{run_dir}: the run {what}; only a stopped or crashed run, or a failed one that kept its "
                         "checkpoint, can be resumed")
    try:
        config = validate(stored_settings(record.config), source=str(layout.run_file(run_dir, layout.CONFIG_FILE)))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    try:
        checkpoint = read_checkpoint(run_dir)
    except ValueError as exc:  # damaged: the run goes on from its SAE phase's start (the SAE phase says so)
        checkpoint = UnreadableCheckpoint(str(exc))
    return run_dir, config, checkpoint


def _by_shape(phases: list[SAEPhase]) -> list[list[SAEPhase]]:
    """The SAE phases grouped by what their SAEs must share to train in one bank, in order."""
    from collapse_tui.nn.sae_bank import bank_signature

    groups: dict[tuple, list[SAEPhase]] = {}
    for phase in phases:  # resumed runs go on from their checkpoint's epoch: only equal ones share a bank
        # A bank trains on one device or data-parallel, never both.
        groups.setdefault((bank_signature(phase.sae), phase.start_epoch, phase.cfg.data_parallel), []).append(phase)
    return list(groups.values())


def run(config: RunConfig, listeners: Iterable[Listener] = (), stop_event: threading.Event | None = None
        ) -> RunResult:
    """Run one config with a fresh :class:`Engine`."""
    return Engine(stop_event).run(config, listeners)
