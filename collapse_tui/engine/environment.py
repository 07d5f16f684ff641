"""What a run ran on: backend, device, precision and package versions (recorded in every run's config.yaml)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

# At home in native_logs, beside the lock that makes it safe from any thread (and below distribution,
# which this module imports); the front ends import it from here.
from collapse_tui.engine.native_logs import quiet_native_logs

__all__ = ["device_name", "environment", "quiet_native_logs"]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def device_name() -> str:
    """The accelerator Keras will use under the active backend, or ``CPU``.

    Only the active backend's framework is asked (it is already imported by keras).
    """
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            dev = jax.devices()[0]
            return "CPU" if dev.platform == "cpu" else f"{dev.platform.upper()} {dev.device_kind}"
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"GPU {torch.cuda.get_device_name(0)}"
            return "CPU"
        if backend == "tensorflow":
            import tensorflow as tf

            with quiet_native_logs():  # probing CUDA logs an error on machines without a GPU
                gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"GPU {details.get('device_name', gpus[0].name)}"
            return "CPU"
    except Exception:  # a broken driver must not stop a run from starting
        return "unknown"
    return "CPU"


def _training_devices(data_parallel: bool) -> list[str]:
    from collapse_tui.engine.distribution import training_devices

    try:
        return training_devices(data_parallel)
    except Exception:  # a broken driver must not stop a run from starting
        return ["unknown"]


def environment(data_parallel: bool = False) -> dict[str, object]:
    """What a run runs on; ``devices``: those it trains on (every local device when ``data_parallel``,
    else the one Keras places everything on); ``precision``: what the models are built and computed in
    (:func:`~collapse_tui.engine.precision.precision`: Keras' floatx, as its dtype policy took it)."""
    import keras

    from collapse_tui import __version__
    from collapse_tui.engine.precision import precision

    backend = keras.backend.backend()
    return {
        "collapse_tui": __version__,
        "backend": backend,
        "device": device_name(),
        "devices": _training_devices(data_parallel),
        "data_parallel": data_parallel,
        "precision": precision(),
        "keras": keras.__version__,
        backend: _version(backend),  # the backend's package: tensorflow, jax or torch
        "numpy": _version("numpy"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
