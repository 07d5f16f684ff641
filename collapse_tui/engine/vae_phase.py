"""The VAE and codes phases of a run: its VAE loaded or trained (:meth:`VAEPhase.model`), evaluated
(:meth:`VAEPhase.evaluate`), and the representation its SAE trains on (:meth:`VAEPhase.codes`).

A VAE identical in config, data and seed (:func:`vae_key`) is trained once: reused from memory within a
process, loaded from ``models/`` across processes; one process at a time trains a given VAE (a file lock),
the others wait and load what it saved. Training itself, epoch by epoch with a checkpoint, is
:mod:`~collapse_tui.engine.vae_training`; what a cached VAE must be to be reused,
:mod:`~collapse_tui.engine.vae_cache`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from collapse_tui.config import RunConfig
from collapse_tui.engine.callbacks import StopRequested
from collapse_tui.engine.data_phase import Data
from collapse_tui.engine.memory import keep
from collapse_tui.engine.precision import DEFAULT_PRECISION, precision, precision_problem
from collapse_tui.engine.seeding import data_seed, derived_seed, seed_globals
from collapse_tui.engine.vae_cache import ExpectedVAE, finite_weights, load_checked, set_aside
from collapse_tui.engine.vae_training import train_vae, vae_checkpoint_path
from collapse_tui.events import Evaluation, Message, PhaseStarted
from collapse_tui.store import file_lock, layout, remove_stale_temporaries, save_model

# Bump when the VAE's training procedure changes, so cached models from older code are not reused.
VAE_CACHE_VERSION = 2  # 2: its own data order, epoch by epoch (engine.vae_training)


def vae_key(config: RunConfig, data_fingerprint: str, dtype: str | None = None) -> str:
    """The identity of a trained VAE: everything that changes its weights, nothing that does not.
    ``dtype``: the precision it is trained in (default: the process's, :func:`precision`)."""
    # Not data_parallel: it is how the VAE is trained, not what. Each step still computes the gradient of
    # the whole batch, in the same data order, with the same sampling noise (JAX's random numbers do not
    # depend on how an array is split); only the order of a sum's terms differs, as between backends,
    # which are not in the key either. A VAE trained either way serves both.
    ident = {
        # vae.seed is the "seed" below (as the run's seed when unset): the keys of VAEs trained before the
        # setting existed stay what they were.
        "vae": config.vae.model_dump(mode="json", exclude={"seed"}),
        "dataset": data_fingerprint,
        "n_train": config.data.n_train,
        # The training images are the first n_train of one draw of n_train + n_eval indices.
        "n_eval": config.eval.n_samples,
        "seed": data_seed(config),
        "version": VAE_CACHE_VERSION,
    }
    dtype = precision() if dtype is None else dtype
    if dtype != DEFAULT_PRECISION:  # absent for float32: the keys of VAEs cached before it was keyed stay
        ident["precision"] = dtype
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


class VAEPhase:
    """Each run's VAE, its evaluation and its codes, keeping all three for later runs of the process.
    ``s`` below is the run's :class:`~collapse_tui.engine.active_run.ActiveRun`."""

    def __init__(self, stop_event: threading.Event):
        self.stop_event = stop_event
        self._vaes: dict[str, Any] = {}
        self._metrics: dict[str, dict[str, Any]] = {}
        self._codes: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise StopRequested()

    # ------------------------------------------------------------------ the model
    def model(self, cfg: RunConfig, data: Data, s):
        """(the run's VAE, its key): from memory, from ``models_dir``, or trained and saved there."""
        problem = precision_problem()  # refused up front by the preflight; here for runs started otherwise
        if problem:
            raise ValueError(problem)
        key = vae_key(cfg, data.fingerprint)
        path = layout.vae_model(cfg.models_dir, key)
        if key in self._vaes:
            s.emit(Message(text=f"vae: reusing the VAE trained earlier in this process ({key})"))
            s.vae_source = str(path)  # the file it was saved to or loaded from: which VAE, for the results
            return self._vaes[key], key
        waited = []

        def waiting() -> None:  # another process (a sweep's other task, another --batch) trains it now
            if not waited:
                s.emit(Message(text=f"vae: waiting for another process that is training it ({path.name})"))
                waited.append(True)
            self._check_stop()

        # One process at a time loads or trains a given VAE: the others wait, then load what it saved.
        with file_lock(layout.vae_lock(cfg.models_dir, key), waiting=waiting):
            return self._load_or_train(cfg, data, s, key, path)

    def _load_or_train(self, cfg: RunConfig, data: Data, s, key: str, path: Path):
        if path.exists() or path.is_symlink():
            # Loading takes seconds (Keras builds the model): named as the phase under way, as training is.
            s.emit(PhaseStarted(phase="vae", detail=f"loading the VAE trained earlier ({path.name})"))
            expected = ExpectedVAE.of(cfg.vae, data.train_images.shape[1:], data.input_scale, precision())
            vae, problem = load_checked(path, expected)
            if problem:  # a damaged or foreign file is kept aside and the VAE retrained, never fatal
                moved = set_aside(path)
                where = f"set aside as {moved.name}" if moved else "gone"
                s.emit(Message(text=f"vae: cannot use {path}: {problem}; {where}, training a new one",
                               level="warning"))
            else:
                s.emit(Message(text=f"vae: loaded {path} (same config, data and seed)"))
                s.vae_source = str(path)
                keep(self._vaes, key, vae)
                return vae, key
        vae = self._train(cfg, data, s, key, path)
        save_model(vae, path)
        vae_checkpoint_path(path.parent, key).unlink(missing_ok=True)  # the saved VAE is its final state
        s.emit(Message(text=f"vae: saved {path}"))
        s.vae_source = str(path)
        keep(self._vaes, key, vae)
        return vae, key

    def _train(self, cfg: RunConfig, data: Data, s, key: str, path: Path):
        """A new VAE trained on the run's images (continuing its checkpoint, if a process left one)."""
        import keras

        from collapse_tui.engine.distribution import data_parallel_scope
        from collapse_tui.nn import ConvVAE

        v = cfg.vae
        # Its variables are laid out on the devices as they are created: construction, compile and fit all
        # run under the distribution. Evaluation and the codes, later, run outside it (see distribution).
        with data_parallel_scope(cfg.data_parallel):
            vae = ConvVAE.from_settings(v, data.train_images.shape[1:], data.input_scale,
                                        seed=derived_seed(data_seed(cfg), "vae"))
            vae.compile(optimizer=keras.optimizers.Adam(v.learning_rate))
            seed_globals(data_seed(cfg), "vae")
            steps = -(-len(data.train_images) // v.batch_size)
            s.emit(PhaseStarted(phase="vae", detail=f"training the VAE (beta={v.beta:g})", epochs=v.epochs,
                                steps_per_epoch=steps))
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(path.parent)  # half-saved VAEs and checkpoints of processes that died
            callback = train_vae(vae, data.train_images, s.emit, key=key, seed=data_seed(cfg), epochs=v.epochs,
                                 batch_size=v.batch_size, checkpoint_path=vae_checkpoint_path(path.parent, key),
                                 stop_event=self.stop_event)
        if callback.diverged:
            raise FloatingPointError(f"training diverged: {callback.diverged}")
        if callback.stopped:
            raise StopRequested()
        if not finite_weights(vae):
            raise FloatingPointError("training diverged: the VAE's weights are not finite")
        return vae

    # ------------------------------------------------------------------ its evaluation and codes
    def evaluate(self, key: str, vae, data: Data, cfg: RunConfig, s) -> dict[str, Any]:
        """The VAE's metrics on the evaluation set (computed once per VAE), emitted for the run."""
        if key not in self._metrics:
            from collapse_tui.engine.evaluation import evaluate_vae

            self._metrics[key] = evaluate_vae(vae, data.eval_images, data.eval_factors, cfg.eval.n_bins)
        metrics = dict(self._metrics[key], factors=list(data.factor_names))  # labels of the nmi columns
        s.emit(Evaluation(phase="vae", epoch=0, metrics=metrics))
        return metrics

    def codes(self, key: str, vae, data: Data, cfg: RunConfig, s) -> tuple[np.ndarray, np.ndarray]:
        """(training codes, evaluation codes): the VAE's representation the run's SAE trains on."""
        ckey = (key, cfg.sae.source)
        if ckey not in self._codes:
            s.emit(PhaseStarted(phase="codes", detail=f"computing the VAE's {cfg.sae.source} codes"))
            train = vae.representation(data.train_images, source=cfg.sae.source)
            self._check_stop()
            evaluation = vae.representation(data.eval_images, source=cfg.sae.source)
            keep(self._codes, ckey, (train, evaluation))
        return self._codes[ckey]
