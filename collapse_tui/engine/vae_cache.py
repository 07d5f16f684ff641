"""A trained VAE read back from the models directory, and checked before a run uses it.

The file under a VAE's key (:func:`~collapse_tui.engine.vae_phase.vae_key`) serves only if it loads
(``safe_mode``: nothing in the file runs as code), is a :class:`~collapse_tui.nn.ConvVAE`, has the
architecture the run's config and data ask for (input shape and scale, beta, the encoder's and decoder's
widths, the latent size), holds its weights in the precision the run computes in, and they are all finite.
Anything else there (a file cut short by a full disk, another model copied over it, one trained in another
precision or by another version) is set aside (:func:`set_aside`), kept to look at, and the VAE trained
again; the run says so in one warning.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from collapse_tui.store import layout

PROBLEM_LIMIT = 240  # characters of an error's text quoted in a warning: Keras' can run to pages


@dataclass(frozen=True)
class ExpectedVAE:
    """What the VAE under a key must be: its settings, input and precision."""

    image_shape: tuple[int, ...]
    latent_dim: int
    hidden_units: int
    beta: float
    input_scale: float
    precision: str

    @classmethod
    def of(cls, settings, image_shape: Sequence[int], input_scale: float, precision: str) -> ExpectedVAE:
        """The VAE of the config's VAE settings (``RunConfig.vae``) for the data's images and scale."""
        return cls(image_shape=tuple(int(d) for d in image_shape), latent_dim=settings.latent_dim,
                   hidden_units=settings.hidden_units, beta=float(settings.beta), input_scale=float(input_scale),
                   precision=precision)


def load_checked(path: str | Path, expected: ExpectedVAE) -> tuple[Any, str | None]:
    """(the VAE at ``path``, None) when it is the one ``expected`` describes; (None, what is wrong, one line)
    when it cannot serve. Never raises for what the file holds."""
    import keras

    import collapse_tui.nn  # noqa: F401  (registers ConvVAE, which load_model looks up by name)

    path = Path(path)
    if not path.is_file():
        return None, "it is not a regular file"
    if not zipfile.is_zipfile(path):  # Keras would say "file not found" of it
        return None, "it is not a Keras model archive (cut short, or another kind of file)"
    try:
        vae = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - whatever the damage, the file cannot serve
        return None, f"it cannot be loaded ({one_line(exc).replace(str(path), 'the file')})"
    try:
        problem = architecture_problem(vae, expected)
    except Exception as exc:  # noqa: BLE001 - a ConvVAE whose layers are not what the class builds
        problem = f"its layers cannot be read ({one_line(exc)})"
    return (None, problem) if problem else (vae, None)


def architecture_problem(vae, expected: ExpectedVAE) -> str | None:
    """What makes ``vae`` another VAE than ``expected`` (class, architecture, precision, non-finite
    weights); None when it is that VAE."""
    from collapse_tui.nn import ConvVAE

    if not isinstance(vae, ConvVAE):
        return f"it holds a {type(vae).__name__}, not a ConvVAE"
    # The widths are read from the weights themselves: what the codes an SAE trains on will be.
    found = {
        "input shape": tuple(vae.image_shape),
        "encoder hidden width": int(vae.encoder_hidden.kernel.shape[-1]),
        "latent size": int(vae.mean_layer.kernel.shape[-1]),
        "latent log-variance size": int(vae.log_var_layer.kernel.shape[-1]),
        "decoder input width": int(vae.decoder_dense[0].kernel.shape[0]),
        "decoder hidden width": int(vae.decoder_dense[0].kernel.shape[-1]),
        "output channels": int(vae.decoder_deconvs[-1].kernel.shape[2]),  # (h, w, filters, inputs)
        "hidden_units": vae.hidden_units,
        "latent_dim": vae.latent_dim,
    }
    wanted = {
        "input shape": expected.image_shape, "encoder hidden width": expected.hidden_units,
        "latent size": expected.latent_dim, "latent log-variance size": expected.latent_dim,
        "decoder input width": expected.latent_dim, "decoder hidden width": expected.hidden_units,
        "output channels": expected.image_shape[-1], "hidden_units": expected.hidden_units,
        "latent_dim": expected.latent_dim,
    }
    for name, want in wanted.items():
        if found[name] != want:
            return f"its {name} is {found[name]}, the config's {want}"
    for name, have, want in (("beta", vae.beta, expected.beta), ("input scale", vae.input_scale, expected.input_scale)):
        if not math.isclose(have, want, rel_tol=1e-9):
            return f"its {name} is {have:g}, the config's {want:g}"
    # Keras builds a loaded model's layers in the process's precision, casting the saved weights: the
    # precision it was trained in is the one its file records for the model itself.
    trained_in = vae.dtype_policy.name
    precisions = sorted({str(v.dtype) for v in vae.weights if "float" in str(v.dtype)})
    for found_precision in (trained_in, *precisions):
        if found_precision != expected.precision:
            return (f"it was trained in {found_precision}, and runs here compute in {expected.precision} "
                    "(Keras' floatx)")
    if not finite_weights(vae):  # a diverged VAE that an older version cached
        return "its weights are not finite"
    return None


def finite_weights(model) -> bool:
    """Whether every weight of ``model`` is a finite number: a diverged model is never cached or reused."""
    return all(np.isfinite(np.asarray(w)).all() for w in model.get_weights())


def set_aside(path: str | Path) -> Path | None:
    """Move a file of the models directory that cannot serve out of the way, kept to look at (replacing one
    set aside before it), so that what replaces it is trained afresh; the new place, or None when there
    was nothing to move."""
    target = layout.set_aside(path)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    return target


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its text."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= PROBLEM_LIMIT else text[:PROBLEM_LIMIT - 1] + "…"
