"""The engine: one run goes data → VAE → codes → SAE → evaluation, emitting typed events.

:class:`Engine` keeps the rendered images, trained VAEs and their codes in memory between runs of one
process, so the runs of a sweep share them; on disk, a VAE identical in config, data and seed to one
in ``models/`` is loaded instead of retrained.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from collapse_tui.config import RunConfig
from collapse_tui.engine.callbacks import StopRequested
from collapse_tui.engine.bank_phase import BankPhase, bank_key
from collapse_tui.engine.sae_phase import SAEPhase, remedy_names, result_flags
from collapse_tui.engine.seeding import derived_seed, seed_globals
from collapse_tui.engine.vae_training import train_vae, vae_checkpoint_path
from collapse_tui.events import (
    DataSource,
    EpochEnd,
    Event,
    Evaluation,
    Listener,
    Message,
    PhaseStarted,
    Progress,
    RunFailed,
    RunFinished,
    RunResumed,
    RunStarted,
)
from collapse_tui.engine.checkpoint import remove_checkpoint
from collapse_tui.store import (SAE_FILE, RunSummary, RunWriter, create_run_dir, file_lock, load_run,
                                remove_stale_temporaries, save_model, stored_settings, uninterrupted)

# TensorFlow warns through Python logging each time Keras traces a new predict function (the
# evaluation uses several); harmless here, and noise in a terminal.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

# Bump when the VAE's training procedure changes, so cached models from older code are not reused.
VAE_CACHE_VERSION = 2  # 2: its own data order, epoch by epoch (engine.vae_training)


@dataclass
class RunResult:
    status: str  # ok | stopped | failed
    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False  # Ctrl-C: a sweep should not start its next run


@dataclass
class _Data:
    train_images: np.ndarray
    eval_images: np.ndarray
    eval_factors: np.ndarray
    eval_indices: np.ndarray  # each evaluation image's index in its dataset (it can be rendered again)
    factor_names: tuple[str, ...]
    input_scale: float
    fingerprint: str


def vae_key(config: RunConfig, data_fingerprint: str) -> str:
    """The identity of a trained VAE: everything that changes its weights, nothing that does not."""
    # Not data_parallel: it is how the VAE is trained, not what. Each step still computes the gradient of
    # the whole batch, in the same data order, with the same sampling noise (JAX's random numbers do not
    # depend on how an array is split); only the order of a sum's terms differs, as between backends,
    # which are not in the key either. A VAE trained either way serves both.
    ident = {
        "vae": config.vae.model_dump(mode="json"),
        "dataset": data_fingerprint,
        "n_train": config.data.n_train,
        # The training images are the first n_train of one draw of n_train + n_eval indices.
        "n_eval": config.eval.n_samples,
        "seed": config.seed,
        "version": VAE_CACHE_VERSION,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


class Engine:
    """Runs configs one after another, sharing data, VAEs and codes between them.

    ``stop_event``, when set, ends the current run between training steps with status ``stopped``.
    """

    def __init__(self, stop_event: threading.Event | None = None):
        self.stop_event = stop_event or threading.Event()
        self._data: dict[tuple, _Data] = {}
        self._opened: dict[tuple, object] = {}
        self._vaes: dict[str, Any] = {}
        self._codes: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._vae_metrics: dict[str, dict[str, Any]] = {}

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

    def _train(self, states: list["ActiveRun"]) -> list[RunResult]:
        phases: list[SAEPhase] = []
        bank = None
        try:
            for s in states:
                try:
                    phases.append(self._prepare(s))
                except (KeyboardInterrupt, StopRequested):
                    raise
                except Exception as exc:
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
            with uninterrupted():  # every run of the bank ends, whatever signal comes next
                if bank is not None:
                    bank.write_back()  # keep the weights trained so far beside what was measured
                for s in states:
                    s.end("stopped", interrupted=isinstance(exc, KeyboardInterrupt))
        except Exception as exc:  # the bank itself failed: every run still open fails with it
            reason, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
            for s in states:
                s.end("failed", reason=reason, trace=trace)
        return [s.result for s in states]

    # ------------------------------------------------------------------ phases
    @staticmethod
    def _emitter(run_dir: Path, writer: RunWriter, listeners: list[Listener]) -> Callable[[Event], None]:
        """How a run emits: into its directory, then to ``listeners`` (one that raises is detached)."""
        others = list(listeners)
        fault = os.environ.get(FAULT_PHASE_ENV)

        def emit(event: Event) -> None:
            event.run_id = run_dir.name
            writer(event)
            if fault and fault in _fault_points(event) and _fault_armed():
                os.kill(os.getpid(), signal.SIGKILL)  # the fault tests' crash, right where they ask
            for listener in list(others):
                try:
                    listener(event)
                except Exception as exc:  # a broken display must not lose the run
                    others.remove(listener)
                    writer(Message(text=f"a listener failed and was detached: {exc!r}", level="warning"))

        return emit

    def _start(self, config: RunConfig, listeners: list[Listener]) -> "ActiveRun":
        """Create the run's directory and announce it; its events go to its writer and to ``listeners``."""
        run_dir = create_run_dir(config.runs_dir, config.name)
        writer = RunWriter(run_dir)
        emit = self._emitter(run_dir, writer, listeners)
        from collapse_tui.engine.environment import environment

        started = time.time()
        emit(RunStarted(run_id=run_dir.name, name=config.name, run_dir=str(run_dir),
                        config=config.to_dict(), environment=environment(config.data_parallel)))
        return ActiveRun(config=config, run_dir=run_dir, emit=emit, started=started, writer=writer)

    def _reopen(self, run_dir: Path, config: RunConfig, checkpoint, listeners: list[Listener]) -> "ActiveRun":
        """An interrupted run's directory, written on again: events appended, summary running (and what
        the crash left half-written removed)."""
        remove_stale_temporaries(run_dir, everything=True)
        writer = RunWriter(run_dir)
        emit = self._emitter(run_dir, writer, listeners)
        from collapse_tui.engine.environment import environment

        emit(RunResumed(name=config.name, epoch=checkpoint.epoch if checkpoint else 0,
                        environment=environment(config.data_parallel)))
        previous = load_run(run_dir).summary
        started = previous.get("started") if isinstance(previous.get("started"), (int, float)) else time.time()
        s = ActiveRun(config=config, run_dir=run_dir, emit=emit, started=started, writer=writer)
        s.checkpoint = checkpoint
        s.resumed = [t for t in previous.get("resumed") or [] if isinstance(t, (int, float))]  # this one included
        return s

    def _prepare(self, s: "ActiveRun") -> SAEPhase:
        """The run's data, VAE and codes; its SAE phase, ready to train."""
        from collapse_tui.engine.distribution import check_data_parallel

        cfg = s.config
        check_data_parallel([cfg])  # before any data is read: a setting that cannot run fails the run now
        with s.phase("data"):
            data = self._load_data(cfg, s)
        with s.phase("vae"):
            vae, key = self._vae(cfg, data, s)
            s.vae_metrics = self._evaluate_vae(key, vae, data, cfg, s)
        with s.phase("codes"):
            train_codes, eval_codes = self._representation(key, vae, data, cfg, s)
        return SAEPhase(s, data, vae, (train_codes, eval_codes), checkpoint=s.checkpoint)

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise StopRequested()

    def _load_data(self, cfg: RunConfig, s: "ActiveRun") -> _Data:
        from collapse_tui.data import open_dataset

        s.emit(PhaseStarted(phase="data", detail=f"{cfg.data.n_train} training + {cfg.eval.n_samples} "
                            f"evaluation images of {cfg.data.dataset}"))

        def progress(done: int, total: int) -> None:  # opening (tfds indexing), then reading or rendering
            s.emit(Progress(phase="data", done=done, total=total))
            self._check_stop()

        # A kept dataset (below) notes cache repairs to whichever run is reading it now.
        self._note = lambda text: s.emit(Message(text=text, level="warning"))
        # Opening a prepared tfds copy indexes all its labels (tens of seconds): once per sweep, not per run.
        where = (cfg.data.dataset, cfg.data.source, cfg.data.path, cfg.data.cache)
        dataset = self._opened.get(where)
        if dataset is None:
            dataset = open_dataset(cfg.data.dataset, source=cfg.data.source, path=cfg.data.path,
                                   cache=cfg.data.cache, progress=progress,
                                   log=lambda text: self._note(text))
            _keep(self._opened, where, dataset)
        s.data_source = dataset.provenance()
        s.emit(DataSource(provenance=s.data_source))
        s.emit(Message(text=f"data: {dataset.description}"))
        key = (dataset.fingerprint(), cfg.seed, cfg.data.n_train, cfg.eval.n_samples)
        if key in self._data:
            _keep(self._data, key, self._data[key], size=_data_bytes, budget=DATA_MEMORY_BYTES)
            return self._data[key]
        rng = np.random.RandomState(derived_seed(cfg.seed, "data"))
        n_train, n_eval = cfg.data.n_train, cfg.eval.n_samples
        if n_train + n_eval > dataset.num_available:
            raise ValueError(f"data.n_train + eval.n_samples = {n_train + n_eval} exceeds the "
                             f"{dataset.num_available} images of {dataset.description}")
        indices = dataset.sample_indices(n_train + n_eval, rng)

        # One call for both sets: a source that streams its storage or writes a cache does so once.
        images = dataset.images(indices, progress=progress)
        train_images, eval_images = images[:n_train], images[n_train:]
        data = _Data(
            train_images=train_images,
            eval_images=eval_images,
            eval_factors=dataset.index_to_factors(indices[n_train:]),
            eval_indices=np.asarray(indices[n_train:], dtype=np.int32),
            factor_names=tuple(dataset.factor_names),
            input_scale=float(dataset.input_scale),
            fingerprint=dataset.fingerprint(),
        )
        _keep(self._data, key, data, size=_data_bytes, budget=DATA_MEMORY_BYTES)
        return data

    def _vae(self, cfg: RunConfig, data: _Data, s: "ActiveRun"):
        key = vae_key(cfg, data.fingerprint)
        if key in self._vaes:
            s.emit(Message(text=f"vae: reusing the VAE trained earlier in this process ({key})"))
            s.vae_source = "memory"
            return self._vaes[key], key
        path = Path(cfg.models_dir) / f"vae-{key}.keras"
        waited = []

        def waiting() -> None:  # another process (a sweep's other task, another --batch) trains it now
            if not waited:
                s.emit(Message(text=f"vae: waiting for another process that is training it ({path.name})"))
                waited.append(True)
            self._check_stop()

        # One process at a time loads or trains a given VAE: the others wait, then load what it saved.
        with file_lock(path.with_suffix(".lock"), waiting=waiting):
            return self._load_or_train_vae(cfg, data, s, key, path)

    def _load_or_train_vae(self, cfg: RunConfig, data: _Data, s: "ActiveRun", key: str, path: Path):
        import keras

        from collapse_tui.engine.distribution import data_parallel_scope
        from collapse_tui.nn import ConvVAE

        if path.exists():
            try:
                vae = keras.saving.load_model(path, compile=False)
                if not _finite_weights(vae):  # a diverged VAE that an older version cached
                    raise ValueError("its weights are not finite")
            except Exception as exc:  # a damaged cache file is retrained, not fatal
                s.emit(Message(text=f"vae: cannot load {path} ({exc}); training a new one", level="warning"))
            else:
                s.emit(Message(text=f"vae: loaded {path} (same config, data and seed)"))
                s.vae_source = str(path)
                _keep(self._vaes, key, vae)
                return vae, key
        v = cfg.vae
        # Its variables are laid out on the devices as they are created: construction, compile and fit all
        # run under the distribution. Evaluation and the codes, later, run outside it (see distribution).
        with data_parallel_scope(cfg.data_parallel):
            vae = ConvVAE.from_settings(v, data.train_images.shape[1:], data.input_scale,
                                        seed=derived_seed(cfg.seed, "vae"))
            vae.compile(optimizer=keras.optimizers.Adam(v.learning_rate))
            seed_globals(cfg.seed, "vae")
            steps = -(-len(data.train_images) // v.batch_size)
            s.emit(PhaseStarted(phase="vae", detail=f"training the VAE (beta={v.beta:g})", epochs=v.epochs,
                                steps_per_epoch=steps))
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(path.parent)  # half-saved VAEs and checkpoints of processes that died
            checkpoint = vae_checkpoint_path(path.parent, key)
            callback = train_vae(vae, data.train_images, s.emit, key=key, seed=cfg.seed, epochs=v.epochs,
                                 batch_size=v.batch_size, checkpoint_path=checkpoint, stop_event=self.stop_event)
        if callback.diverged:
            raise FloatingPointError(f"training diverged: {callback.diverged}")
        if callback.stopped:
            raise StopRequested()
        if not _finite_weights(vae):
            raise FloatingPointError("training diverged: the VAE's weights are not finite")
        save_model(vae, path)
        checkpoint.unlink(missing_ok=True)  # the saved VAE is its final state
        s.emit(Message(text=f"vae: saved {path}"))
        s.vae_source = str(path)
        _keep(self._vaes, key, vae)
        return vae, key

    def _evaluate_vae(self, key: str, vae, data: _Data, cfg: RunConfig, s: "ActiveRun") -> dict[str, Any]:
        if key not in self._vae_metrics:
            from collapse_tui.engine.evaluation import evaluate_vae

            self._vae_metrics[key] = evaluate_vae(vae, data.eval_images, data.eval_factors, cfg.eval.n_bins)
        metrics = dict(self._vae_metrics[key], factors=list(data.factor_names))  # labels of the nmi columns
        s.emit(Evaluation(phase="vae", epoch=0, metrics=metrics))
        return metrics

    def _representation(self, key: str, vae, data: _Data, cfg: RunConfig, s: "ActiveRun"):
        ckey = (key, cfg.sae.source)
        if ckey not in self._codes:
            s.emit(PhaseStarted(phase="codes", detail=f"computing the VAE's {cfg.sae.source} codes"))
            train = vae.representation(data.train_images, source=cfg.sae.source)
            self._check_stop()
            evaluation = vae.representation(data.eval_images, source=cfg.sae.source)
            _keep(self._codes, ckey, (train, evaluation))
        return self._codes[ckey]


# For fault tests: the process kills itself (SIGKILL, nothing cleaned up) once it has written the event
# this names: a phase's start ("vae"), the end of one of a phase's epochs ("sae:3"), or the SAE's
# evaluation after an epoch ("evaluation:6": the final one, just before sae.keras is saved).
FAULT_PHASE_ENV = "COLLAPSE_TUI_FAULT_AT"
# With this naming a file as well, the crash happens once: in the process that creates the file (a task
# that is retried after it must not die again at the same point).
FAULT_ONCE_ENV = "COLLAPSE_TUI_FAULT_ONCE"


def _fault_armed() -> bool:
    once = os.environ.get(FAULT_ONCE_ENV)
    if not once:
        return True
    try:
        os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _fault_points(event: Event) -> tuple[str, ...]:
    if isinstance(event, PhaseStarted):
        return (event.phase,)
    if isinstance(event, EpochEnd):
        return (f"{event.phase}:{event.epoch}",)
    if isinstance(event, Evaluation) and event.phase == "sae":
        return (f"evaluation:{event.epoch}",)
    return ()

# What a run may be resumed from: it ended without finishing (stopped), or its process died.
RESUMABLE = ("stopped", "crashed")


def resume_plan(run_dir: Path, writer_gone: bool = False):
    """(run_dir, its config, its checkpoint or None) for :meth:`Engine.resume`; ValueError if it cannot be
    resumed. ``writer_gone``: the caller knows that the process which wrote the run died (a cluster task
    being retried, whose first attempt may have run on another machine, where its death cannot be seen
    from here): a run still marked running is resumed as crashed."""
    from collapse_tui.config import ConfigError, validate
    from collapse_tui.engine.checkpoint import read_checkpoint

    record = load_run(run_dir)
    if record.status not in RESUMABLE and not (writer_gone and record.status == "running"):
        what = "is still running" if record.status == "running" else f"ended {record.status}"
        raise ValueError(f"{run_dir}: the run {what}; only a stopped or crashed run can be resumed")
    try:
        config = validate(stored_settings(record.config), source=str(run_dir / "config.yaml"))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return run_dir, config, read_checkpoint(run_dir)


# A sweep that alternates datasets or seeds (dataset × seed × remedy grids) reuses what it computed for
# each: up to four of each kind in memory, images only while they fit in DATA_MEMORY_BYTES (the
# full-size protocol's 200,000 Shapes3D images alone take 2.5 GB), so a long sweep never grows unbounded.
_KEEP = 4
DATA_MEMORY_BYTES = 3 * 2**30


def _keep(cache: dict, key: Any, value: Any, size: Callable[[Any], int] | None = None,
          budget: int | None = None) -> None:
    """Insert ``key`` as the newest entry of ``cache``, dropping the oldest beyond ``_KEEP`` entries or,
    with ``size``, while the entries' total size exceeds ``budget`` (the newest always stays)."""
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > _KEEP or (size is not None and len(cache) > 1
                                 and sum(size(v) for v in cache.values()) > budget):
        del cache[next(iter(cache))]


def _data_bytes(data: "_Data") -> int:
    return data.train_images.nbytes + data.eval_images.nbytes


def _finite_weights(model) -> bool:
    """Whether every weight of ``model`` is a finite number: a diverged model is never cached or reused."""
    return all(np.isfinite(np.asarray(w)).all() for w in model.get_weights())


def _by_shape(phases: list[SAEPhase]) -> list[list[SAEPhase]]:
    """The SAE phases grouped by what their SAEs must share to train in one bank, in order."""
    from collapse_tui.nn.sae_bank import bank_signature

    groups: dict[tuple, list[SAEPhase]] = {}
    for phase in phases:  # resumed runs go on from their checkpoint's epoch: only equal ones share a bank
        # A bank trains on one device or data-parallel, never both.
        groups.setdefault((bank_signature(phase.sae), phase.start_epoch, phase.cfg.data_parallel), []).append(phase)
    return list(groups.values())


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
        final = {k: v for k, v in (self.last_eval or {}).items() if isinstance(v, (int, float)) or v is None}
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


def run(config: RunConfig, listeners: Iterable[Listener] = (), stop_event: threading.Event | None = None
        ) -> RunResult:
    """Run one config with a fresh :class:`Engine`."""
    return Engine(stop_event).run(config, listeners)
