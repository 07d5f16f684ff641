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
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from collapse_tui.config import K_METHODS, RunConfig
from collapse_tui.engine.events import (
    DataSource,
    Event,
    Evaluation,
    Listener,
    Message,
    PhaseStarted,
    Progress,
    RunFailed,
    RunFinished,
    RunStarted,
)
from collapse_tui.store import SAE_FILE, RunWriter, create_run_dir

# TensorFlow warns through Python logging each time Keras traces a new predict function (the
# evaluation uses several); harmless here, and noise in a terminal.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

# Bump when the VAE's training procedure changes, so cached models from older code are not reused.
VAE_CACHE_VERSION = 1


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
    factor_names: tuple[str, ...]
    input_scale: float
    fingerprint: str


def _derived_seed(seed: int, salt: str) -> int:
    """Independent seeds for data sampling and each model from the run's one seed."""
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _seed_globals(seed: int, phase: str) -> None:
    """Seed the generators fit shuffles with (Python, numpy, the backend's) at the start of a phase.

    Per phase, so that the SAE trains the same whether the VAE before it was trained or loaded.
    ``keras.utils.set_random_seed`` imports TensorFlow on every backend; it is installed anyway
    (datasets), and its start-up lines are held back.
    """
    import keras

    from collapse_tui.engine.environment import quiet_native_logs

    with quiet_native_logs():
        keras.utils.set_random_seed(_derived_seed(seed, f"global-{phase}"))


def vae_key(config: RunConfig, data_fingerprint: str) -> str:
    """The identity of a trained VAE: everything that changes its weights, nothing that does not."""
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


def extension_report(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What extended training changed, from the evaluations before and after it: dead fraction and
    specialized neurons before, and how many dead neurons revived or live ones died (at the first
    threshold)."""
    was, now = np.asarray(before["dead_mask"], bool), np.asarray(after["dead_mask"], bool)
    return {
        "dead_before_extension": before["dead_fraction"],
        "specialized_before_extension": before["specialized"],
        "revived": int(np.sum(was & ~now)),
        "newly_dead": int(np.sum(~was & now)),
    }


def remedy_names(cfg: RunConfig) -> list[str]:
    """The dead-neuron remedies a run uses, by name ("auxk", "tied_init", "resampling", input
    normalisation); the method itself (batchtopk, jumprelu) is reported as the method."""
    r = cfg.sae.remedies
    names = [name for name in ("auxk", "tied_init") if getattr(r, name)]
    if r.resample_epochs:
        names.append("resampling")
    if cfg.sae.normalization != "none":
        names.append(cfg.sae.normalization)
    return names


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
        run_dir = create_run_dir(config.runs_dir, config.name)
        writer = RunWriter(run_dir)
        others = list(listeners)

        def emit(event: Event) -> None:
            writer(event)
            for listener in list(others):
                try:
                    listener(event)
                except Exception as exc:  # a broken display must not lose the run
                    others.remove(listener)
                    writer(Message(text=f"a listener failed and was detached: {exc!r}", level="warning"))

        from collapse_tui.engine.environment import environment

        started = time.time()
        emit(RunStarted(run_id=run_dir.name, name=config.name, run_dir=str(run_dir),
                        config=config.to_dict(), environment=environment()))
        state = _RunState(config=config, run_dir=run_dir, emit=emit, started=started)
        try:
            self._execute(state)
            summary = state.summary("ok")
            emit(RunFinished(status="ok", summary=summary))
            return RunResult("ok", run_dir, summary)
        except (KeyboardInterrupt, _Stopped) as exc:
            if state.sae is not None and not state.sae_saved:
                try:  # keep the weights trained so far beside what was measured
                    state.sae.save(run_dir / SAE_FILE)
                except Exception:
                    pass
            summary = state.summary("stopped")
            emit(RunFinished(status="stopped", summary=summary))
            return RunResult("stopped", run_dir, summary, interrupted=isinstance(exc, KeyboardInterrupt))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            summary = state.summary("failed")
            summary["reason"] = reason
            emit(RunFailed(reason=reason, traceback=traceback.format_exc(), summary=summary))
            return RunResult("failed", run_dir, summary)
        finally:
            writer.close()

    # ------------------------------------------------------------------ phases
    def _execute(self, s: "_RunState") -> None:
        cfg = s.config
        with s.phase("data"):
            data = self._load_data(cfg, s)
        with s.phase("vae"):
            vae, key = self._vae(cfg, data, s)
            s.vae_metrics = self._evaluate_vae(key, vae, data, cfg, s)
        with s.phase("codes"):
            train_codes, eval_codes = self._representation(key, vae, data, cfg, s)
        with s.phase("sae"):
            self._train_sae(cfg, data, vae, train_codes, eval_codes, s)

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise _Stopped()

    def _load_data(self, cfg: RunConfig, s: "_RunState") -> _Data:
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
        rng = np.random.RandomState(_derived_seed(cfg.seed, "data"))
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
            factor_names=tuple(dataset.factor_names),
            input_scale=float(dataset.input_scale),
            fingerprint=dataset.fingerprint(),
        )
        _keep(self._data, key, data, size=_data_bytes, budget=DATA_MEMORY_BYTES)
        return data

    def _vae(self, cfg: RunConfig, data: _Data, s: "_RunState"):
        import keras

        from collapse_tui.nn import ConvVAE

        key = vae_key(cfg, data.fingerprint)
        if key in self._vaes:
            s.emit(Message(text=f"vae: reusing the VAE trained earlier in this process ({key})"))
            s.vae_source = "memory"
            return self._vaes[key], key
        path = Path(cfg.models_dir) / f"vae-{key}.keras"
        if path.exists():
            try:
                vae = keras.saving.load_model(path, compile=False)
            except Exception as exc:  # a damaged cache file is retrained, not fatal
                s.emit(Message(text=f"vae: cannot load {path} ({exc}); training a new one", level="warning"))
            else:
                s.emit(Message(text=f"vae: loaded {path} (same config, data and seed)"))
                s.vae_source = str(path)
                _keep(self._vaes, key, vae)
                return vae, key
        v = cfg.vae
        vae = ConvVAE(image_shape=data.train_images.shape[1:], latent_dim=v.latent_dim,
                      hidden_units=v.hidden_units, beta=v.beta, input_scale=data.input_scale,
                      seed=_derived_seed(cfg.seed, "vae"))
        vae.compile(optimizer=keras.optimizers.Adam(v.learning_rate))
        _seed_globals(cfg.seed, "vae")
        steps = -(-len(data.train_images) // v.batch_size)
        s.emit(PhaseStarted(phase="vae", detail=f"training the VAE (beta={v.beta:g})", epochs=v.epochs,
                            steps_per_epoch=steps))
        callback = fit_with_events(vae, data.train_images, "vae", s.emit, epochs=v.epochs,
                                   batch_size=v.batch_size, stop_event=self.stop_event)
        if callback.stopped:
            raise _Stopped()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.keras")
        vae.save(tmp)
        os.replace(tmp, path)
        s.emit(Message(text=f"vae: saved {path}"))
        s.vae_source = str(path)
        _keep(self._vaes, key, vae)
        return vae, key

    def _evaluate_vae(self, key: str, vae, data: _Data, cfg: RunConfig, s: "_RunState") -> dict[str, Any]:
        if key not in self._vae_metrics:
            from collapse_tui.engine.evaluation import evaluate_vae

            self._vae_metrics[key] = evaluate_vae(vae, data.eval_images, data.eval_factors, cfg.eval.n_bins)
        metrics = dict(self._vae_metrics[key], factors=list(data.factor_names))  # labels of the nmi columns
        s.emit(Evaluation(phase="vae", epoch=0, metrics=metrics))
        return metrics

    def _representation(self, key: str, vae, data: _Data, cfg: RunConfig, s: "_RunState"):
        ckey = (key, cfg.sae.source)
        if ckey not in self._codes:
            s.emit(PhaseStarted(phase="codes", detail=f"computing the VAE's {cfg.sae.source} codes"))
            train = vae.representation(data.train_images, source=cfg.sae.source)
            self._check_stop()
            evaluation = vae.representation(data.eval_images, source=cfg.sae.source)
            _keep(self._codes, ckey, (train, evaluation))
        return self._codes[ckey]

    def _train_sae(self, cfg: RunConfig, data: _Data, vae, train_codes, eval_codes, s: "_RunState") -> None:
        import keras

        from collapse_tui.engine.callbacks import PeriodicCallback
        from collapse_tui.engine.evaluation import evaluate_sae
        from collapse_tui.nn import SparseAutoencoder, SparsitySchedule, SparsityScheduler

        c = cfg.sae
        by_k = c.method in K_METHODS
        final = float(c.k) if by_k else c.l1_coefficient
        start = c.schedule.start if c.schedule.start is not None else final
        schedule = SparsitySchedule(kind=c.schedule.kind, start=start, end=final, epochs=c.schedule.epochs,
                                    integer=by_k)
        first = schedule.value(0)
        r = c.remedies
        sae = SparseAutoencoder(input_dim=train_codes.shape[1], n_neurons=c.n_neurons, method=c.method,
                                k=int(first) if by_k else c.k,
                                l1_coefficient=c.l1_coefficient if by_k else float(first),
                                normalization=c.normalization, seed=_derived_seed(cfg.seed, "sae"),
                                auxk=r.auxk, auxk_k=r.auxk_k, auxk_coefficient=r.auxk_coefficient,
                                dead_steps=r.dead_steps, tied_init=r.tied_init,
                                jumprelu_threshold=c.jumprelu_threshold, jumprelu_bandwidth=c.jumprelu_bandwidth)
        sae.adapt(train_codes)
        s.sae = sae
        sae.compile(optimizer=keras.optimizers.Adam(c.learning_rate))
        _seed_globals(cfg.seed, "sae")
        steps = -(-len(train_codes) // c.batch_size)
        label = f"k={c.k}" if by_k else f"λ={c.l1_coefficient:g}"
        remedies = remedy_names(cfg)
        if remedies:
            label += ", " + " + ".join(remedies)
        # Extended training: further epochs at the final sparsity, to see whether dead neurons revive.
        total_epochs = c.epochs + c.extended_epochs
        if c.extended_epochs:
            label += f", then {c.extended_epochs} extended epochs"
        s.emit(PhaseStarted(phase="sae", detail=f"training the SAE ({c.method}, {label}, {c.n_neurons} neurons)",
                            epochs=total_epochs, steps_per_epoch=steps))
        before_extension: dict[str, Any] = {}
        # With a schedule, the first epoch is (nearly) dense: measured there, it is the "before
        # sparsification" the final evaluation is set against.
        sparsifies = c.schedule.kind != "constant" and c.schedule.start is not None and start != final
        before_sparsification: dict[str, Any] = {}

        def evaluate(epoch: int, final: bool = False) -> None:
            if not final and epoch == s.last_eval_epoch:
                return  # already measured at this epoch
            # Decoding every evaluation image through the VAE is the costly part: only the final one does.
            metrics = evaluate_sae(sae, eval_codes, data.eval_factors, cfg.eval, vae=vae, source=c.source,
                                   eval_images=data.eval_images if final else None)
            metrics["sparsity"] = float(sae.sparsity)
            metrics["mig_vae"] = s.vae_metrics.get("mig")
            if sparsifies and epoch == 1 and not final:
                before_sparsification.update(metrics)
            if c.extended_epochs and epoch == c.epochs:
                before_extension.update(metrics)
            elif final and before_extension:
                metrics.update(extension_report(before_extension, metrics))
            if final and before_sparsification:
                metrics["dead_before_sparsification"] = before_sparsification["dead_fraction"]
                metrics["specialized_before_sparsification"] = before_sparsification["specialized"]
            s.last_eval = metrics
            s.last_eval_epoch = epoch
            s.emit(Evaluation(phase="sae", epoch=epoch, metrics=metrics))

        periodic = PeriodicCallback(cfg.eval.every, evaluate, skip_epoch=total_epochs)  # the last: final=True
        callbacks = [SparsityScheduler(schedule), periodic]
        if c.extended_epochs:
            callbacks.append(PeriodicCallback(c.epochs, evaluate, skip_epoch=total_epochs, only_first=True))
        if sparsifies:
            callbacks.append(PeriodicCallback(1, evaluate, skip_epoch=total_epochs, only_first=True))
        if r.resample_epochs:
            from collapse_tui.nn.resampling import DeadNeuronResampler

            def resampled(epoch: int, indices) -> None:
                s.resampled += len(indices)
                s.emit(Message(text=f"sae: resampled {len(indices)} dead neurons after epoch {epoch}"))

            # Before the periodic evaluation of the same epoch, so that it measures the resampled model.
            callbacks.insert(1, DeadNeuronResampler(train_codes, r.resample_epochs,
                                                    seed=_derived_seed(cfg.seed, "resample"), on_resample=resampled))
        callback = fit_with_events(sae, train_codes, "sae", s.emit, epochs=total_epochs, batch_size=c.batch_size,
                                   stop_event=self.stop_event, sparsity=lambda: sae.sparsity,
                                   callbacks=callbacks)
        s.epochs_done = len(sae.history.history.get("loss", [])) if sae.history else 0
        # What was measured stays, even when stopped: evaluate the model as it is and keep it.
        if s.epochs_done > 0:
            with s.phase("evaluate"):
                s.emit(PhaseStarted(phase="evaluate", detail="final evaluation"))
                evaluate(s.epochs_done, final=True)
        sae.save(s.run_dir / SAE_FILE)
        s.sae_saved = True
        if callback.stopped:
            raise _Stopped()


def fit_with_events(model, x: np.ndarray, phase: str, emit: Callable[[Event], None], *, epochs: int,
                    batch_size: int, stop_event: threading.Event | None = None,
                    sparsity: Callable[[], float] | None = None, callbacks: Iterable = ()):
    """``model.fit`` as every run trains: progress and epoch events, stoppable between steps.

    Returns the event callback (its ``stopped`` says whether a stop was requested).
    """
    from collapse_tui.engine.callbacks import EventCallback

    steps = -(-len(x) // batch_size)
    callback = EventCallback(phase, emit, epochs, steps, stop_event, sparsity=sparsity)
    model.fit(x, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[callback, *callbacks])
    return callback


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


class _Stopped(Exception):
    pass


class _RunState:
    """What one run has measured so far; its ``summary`` is written whatever way the run ends."""

    def __init__(self, config: RunConfig, run_dir: Path, emit: Callable[[Event], None], started: float):
        self.config = config
        self.run_dir = run_dir
        self.emit = emit
        self.started = started
        self.durations: dict[str, float] = {}
        self.vae_metrics: dict[str, Any] = {}
        self.last_eval: dict[str, Any] | None = None
        self.last_eval_epoch = 0
        self.epochs_done = 0
        self.resampled = 0
        self.vae_source = ""
        self.data_source: dict[str, Any] = {}
        self.sae = None
        self.sae_saved = False

    @contextlib.contextmanager
    def phase(self, name: str):
        """Adds the time spent in the block to the phase's duration."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.durations[name] = self.durations.get(name, 0.0) + time.perf_counter() - t0

    def summary(self, status: str) -> dict[str, Any]:
        cfg = self.config
        final = {k: v for k, v in (self.last_eval or {}).items() if isinstance(v, (int, float)) or v is None}
        vae = {k: v for k, v in self.vae_metrics.items() if isinstance(v, (int, float))}
        return {
            "status": status,
            "run_id": self.run_dir.name,
            "name": cfg.name,
            "dataset": cfg.data.dataset,
            "method": cfg.sae.method,
            "sparsity": cfg.sparsity,
            "n_neurons": cfg.sae.n_neurons,
            "source": cfg.sae.source,
            "remedies": remedy_names(cfg),
            "resampled": self.resampled,
            "started": self.started,
            "finished": time.time(),
            "seconds": time.time() - self.started,
            "durations": {k: round(v, 3) for k, v in self.durations.items()},
            "sae_epochs": self.epochs_done,
            "evaluated_at_epoch": self.last_eval_epoch if self.last_eval else None,
            "final": final,
            "vae": vae,
            "vae_model": self.vae_source,
            "data": self.data_source,
        }


def run(config: RunConfig, listeners: Iterable[Listener] = (), stop_event: threading.Event | None = None
        ) -> RunResult:
    """Run one config with a fresh :class:`Engine`."""
    return Engine(stop_event).run(config, listeners)
