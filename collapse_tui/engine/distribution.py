"""Data-parallel training (``data_parallel: true``): which devices a run trains on, whether its settings
allow it, and the distribution its training runs under.

Under JAX, ``keras.distribution.DataParallel`` over every local device: variables created inside
:func:`data_parallel_scope` are replicated on each device, each batch is split across them, and XLA
computes the step over the whole batch as one program (the same arithmetic as on one device, only its
sums are reduced in another order). Every batch is split, an epoch's last one too, and JAX refuses a
batch that does not split evenly; hence :func:`check_data_parallel`'s rules.

Evaluation runs outside the distribution, unsplit, so predictions of any size work: a model trained under
it predicts outside it as any other (its inputs go where its replicated weights are), and the standalone
single-device SAEs that evaluation uses could not run inside it at all (:func:`outside_distribution`).

Not on TensorFlow: ``tf.distribute.MirroredStrategy`` trains the VAE, but the SAE bank's XLA-compiled
step fails under it (a replica's variable read from another device) and so do its 32 steps per call; with
neither, the bank trains another loss curve (each replica's loss is its own half-batch's, and the
replicas' gradients are summed). Not on torch: Keras has no distribution for it.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

from collapse_tui.config import RunConfig

# The backends whose Keras trainer supports keras.distribution.DataParallel.
DATA_PARALLEL_BACKENDS = ("jax",)

_UNSUPPORTED = {
    "tensorflow": "on TensorFlow, MirroredStrategy cannot train the SAE bank as one device does (its XLA step "
                  "fails, and without XLA its loss curve differs)",
    "torch": "Keras has no data-parallel distribution for torch",
}


def local_devices() -> list[str]:
    """The devices Keras trains on under the active backend, as ``"<platform>:<id>"`` (accelerators if
    there are any, else the CPU)."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return ["cpu:0"]
    if backend == "tensorflow":
        import tensorflow as tf

        from collapse_tui.engine.native_logs import quiet_native_logs

        # The physical devices: listing the logical ones would start TensorFlow's runtime here, before
        # the run has settled how it uses the GPU.
        with quiet_native_logs():  # probing CUDA logs an error on machines without a GPU
            found = tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("CPU")
        return [f"{d.device_type.lower()}:{d.name.rsplit(':', 1)[-1]}" for d in found]
    return list(keras.distribution.list_devices())


def training_devices(data_parallel: bool) -> list[str]:
    """The devices a run trains on: every local device with ``data_parallel`` (where the backend
    supports it), else the first, where Keras places everything."""
    import keras

    devices = local_devices()
    return devices if data_parallel and keras.backend.backend() in DATA_PARALLEL_BACKENDS else devices[:1]


def _backend_problem() -> str | None:
    import keras

    backend = keras.backend.backend()
    if backend in DATA_PARALLEL_BACKENDS:
        return None
    reason = _UNSUPPORTED.get(backend, f"Keras' {backend} backend has no data-parallel distribution")
    return f"data_parallel needs the JAX backend (KERAS_BACKEND=jax): {reason}"


def _setting_problems(cfg: RunConfig, devices: list[str]) -> list[str]:
    count = len(devices)
    where = f"the {count} devices ({', '.join(devices)})"
    problems = [f"{name} {value} is not a multiple of {where} that each batch is split across"
                for name, value in (("vae.batch_size", cfg.vae.batch_size), ("sae.batch_size", cfg.sae.batch_size))
                if value % count]
    if cfg.data.n_train % count:
        # With batch sizes that split, the epoch's last, shorter batch splits exactly when n_train does.
        problems.append(f"data.n_train {cfg.data.n_train} is not a multiple of {where}: an epoch's last batch "
                        "would not split evenly")
    return problems


def check_data_parallel(configs: Iterable[RunConfig]) -> None:
    """Raise ValueError, in one line, if any of ``configs`` asks for ``data_parallel`` where it cannot
    run: a backend other than JAX, or a batch size or ``data.n_train`` that is not a multiple of the
    number of local devices. Nothing is imported or asked of the backend when none asks for it."""
    configs = [cfg for cfg in configs if cfg.data_parallel]
    if not configs:
        return
    problem = _backend_problem()
    if problem:
        raise ValueError(problem)
    devices = local_devices()
    for cfg in configs:
        problems = _setting_problems(cfg, devices)
        if problems:
            run = f" (run {cfg.name})" if len(configs) > 1 else ""
            raise ValueError(f"data_parallel: {'; '.join(problems)}{run}")


@contextlib.contextmanager
def data_parallel_scope(enabled: bool) -> Iterator[list[str]]:
    """The block runs under ``keras.distribution.DataParallel`` over every local device when ``enabled``
    (one device included: a mesh of one, the same program); else it runs as it would without this, and
    nothing is imported. Model construction, compile and ``fit`` must all be inside: a variable is laid
    out when it is created. Yields the devices training runs on. ValueError (one line) on a backend
    without it."""
    if not enabled:
        yield []
        return
    problem = _backend_problem()
    if problem:
        raise ValueError(problem)
    import keras

    devices = local_devices()
    with keras.distribution.DataParallel(devices=devices).scope():
        yield devices


@contextlib.contextmanager
def outside_distribution() -> Iterator[None]:
    """The block runs with no distribution, whatever encloses it: for work on single-device models in the
    middle of a distributed ``fit`` (a callback evaluating the SAEs), which the distribution would try to
    split across devices the models are not on. Nothing changes where none is set."""
    import keras

    current = keras.distribution.distribution()
    if current is None:
        yield
        return
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)
