"""The model route of a run: a Keras model of the user's (``sae.model``, a ``.keras`` file) applied to the
run's images, the output of its layer ``sae.source`` the SAE's input, in place of a VAE trained here.

The model is loaded in Keras' safe mode (``safe_mode=True``: no Python code in the file is ever run, so a
``Lambda`` layer's function is refused) and without its training state (``compile=False``); every way a
file can fail to give a layer's activations (missing, damaged, unsafe, a subclassed model without known
inputs, an unknown layer, images of another shape, NaN outputs) is one line naming the file. The model
sees the images as floats in [0, 1] (each dataset's pixels times its ``input_scale``), a batch at a time;
a layer's output of more than one dimension per image (a convolution's feature map) is flattened.

The activations are computed once per process for a model file (by its sha256), layer and set of images,
and kept like the VAE's codes, so a sweep's runs on one model share them. A resumed run checks that the
model file is the one it began with.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from collapse_tui.config import RunConfig
from collapse_tui.data.activation_formats import one_line
from collapse_tui.engine.callbacks import StopRequested
from collapse_tui.engine.data_phase import Data
from collapse_tui.engine.memory import keep
from collapse_tui.engine.seeding import data_seed
from collapse_tui.events import DataSource, Message, PhaseStarted, Progress

BATCH = 256  # images through the model at a time
CODES_MEMORY_BYTES = 2 * 2**30  # the layers' activations kept for later runs while they fit


class ModelError(ValueError):
    """A model file that cannot give the SAE its inputs; the message is one line naming the file."""


def load_model(path: Path):
    """The model saved at ``path``, loaded in safe mode, without its optimiser; ModelError otherwise."""
    import keras

    if not path.exists():
        raise ModelError(f"sae.model: {path}: no such file")
    if not path.is_file():
        raise ModelError(f"sae.model: {path}: not a regular file")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # a damaged zip, an unsafe layer, an unknown class: one line, never a trace
        raise ModelError(f"sae.model: cannot load {path.name} in safe mode: {one_line(err)}") from None


def layer_model(model, layer_name: str, path: Path):
    """A model from ``model``'s input to the output of its layer ``layer_name``."""
    import keras

    names = [layer.name for layer in getattr(model, "layers", [])]
    if layer_name not in names:
        shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
        raise ModelError(f"sae.source: {path.name} has no layer {layer_name!r}; its layers: {shown or 'none'}")
    try:
        inputs = model.inputs
    except Exception:
        inputs = None
    if not inputs:
        raise ModelError(f"sae.model: {path.name} has no known inputs (a subclassed model); save a functional "
                         "or Sequential model, built on an input shape")
    if len(inputs) != 1:
        raise ModelError(f"sae.model: {path.name} takes {len(inputs)} inputs; the images are one")
    try:
        return keras.Model(inputs=inputs, outputs=model.get_layer(layer_name).output)
    except Exception as err:  # a layer used at several places of the graph has no single output
        raise ModelError(f"sae.source: cannot read layer {layer_name!r} of {path.name}: {one_line(err)}") from None


def apply(extractor, images: np.ndarray, input_scale: float, progress=None) -> np.ndarray:
    """The extractor's outputs on ``images`` (uint8, shown as floats times ``input_scale``), one float32
    row per image; ``progress(done, total)`` after each batch."""
    import keras

    n = len(images)
    out: np.ndarray | None = None
    for lo in range(0, n, BATCH):
        batch = images[lo:lo + BATCH].astype(np.float32) * np.float32(input_scale)
        values = keras.ops.convert_to_numpy(extractor([batch], training=False))  # its inputs are a list of one
        values = values.reshape(len(batch), -1).astype(np.float32, copy=False)
        if out is None:
            out = np.empty((n, values.shape[1]), dtype=np.float32)
        out[lo:lo + len(batch)] = values
        if progress is not None:
            progress(min(lo + BATCH, n), n)
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


class ModelPhase:
    """Each run's model activations (:meth:`codes`), keeping loaded models and computed activations for
    later runs of the process. ``s`` below is the run's :class:`~collapse_tui.engine.active_run.ActiveRun`."""

    def __init__(self, stop_event: threading.Event):
        self.stop_event = stop_event
        self._models: dict[str, object] = {}
        self._codes: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def codes(self, cfg: RunConfig, data: Data, s) -> tuple[np.ndarray, np.ndarray]:
        """(training activations, evaluation activations) of layer ``sae.source`` of model ``sae.model``."""
        from collapse_tui.data.official import file_sha256

        path, layer = Path(cfg.sae.model), cfg.sae.source
        if not path.is_file():
            raise ModelError(f"sae.model: {path}: {'no such file' if not path.exists() else 'not a regular file'}")
        sha = file_sha256(path)
        before = getattr(s, "recorded_source", {}).get("model_sha256")
        if isinstance(before, str) and before != sha:  # a resumed run must go on with the inputs it began with
            raise ModelError(f"sae.model: {path.name} has changed since the run began (sha256 {before[:12]}… then, "
                             f"{sha[:12]}… now): resuming would train on other activations; start a new run")
        s.data_source = dict(s.data_source, model=str(path), model_sha256=sha, layer=layer)
        s.emit(DataSource(provenance=s.data_source))
        s.vae_source = str(path)
        s.emit(Message(text=f"vae: not trained: the SAE reads layer {layer} of {path.name} (sha256 {sha[:12]}), "
                            "so the vae section is inert"))
        key = (sha, layer, data.fingerprint, data_seed(cfg), cfg.data.n_train, cfg.eval.n_samples)
        if key in self._codes:
            keep(self._codes, key, self._codes[key], size=_nbytes, budget=CODES_MEMORY_BYTES)
            return self._codes[key]
        if sha not in self._models:
            keep(self._models, sha, load_model(path))
        extractor = layer_model(self._models[sha], layer, path)
        expected = tuple(extractor.inputs[0].shape[1:])
        shape = tuple(data.train_images.shape[1:])
        if len(expected) != len(shape) or any(e is not None and e != d for e, d in zip(expected, shape)):
            raise ModelError(f"sae.model: {path.name} takes inputs of shape {expected}; the images are {shape}")
        total = len(data.train_images) + len(data.eval_images)
        s.emit(PhaseStarted(phase="codes", detail=f"computing layer {layer} of {path.name} on {total:,} images"))
        done = [0]

        def progress(part_done: int, part_total: int) -> None:
            s.emit(Progress(phase="codes", done=done[0] + part_done, total=total))
            if self.stop_event.is_set():
                raise StopRequested()

        train = apply(extractor, data.train_images, data.input_scale, progress)
        done[0] = len(data.train_images)
        evaluation = apply(extractor, data.eval_images, data.input_scale, progress)
        for part in (train, evaluation):
            bad = np.flatnonzero(~np.isfinite(part).all(axis=1))
            if bad.size:
                raise ModelError(f"sae.model: layer {layer} of {path.name} gives NaN or infinite values on "
                                 f"{bad.size:,} image(s)")
        if len(extractor.outputs[0].shape) > 2:
            s.emit(Message(text=f"codes: layer {layer}'s output {tuple(extractor.outputs[0].shape[1:])} per image "
                                f"is flattened to {train.shape[1]:,} features"))
        keep(self._codes, key, (train, evaluation), size=_nbytes, budget=CODES_MEMORY_BYTES)
        return train, evaluation


def _nbytes(pair: tuple[np.ndarray, np.ndarray]) -> int:
    return sum(a.nbytes for a in pair)
