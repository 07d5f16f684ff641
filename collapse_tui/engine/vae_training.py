"""How a VAE trains: epoch by epoch, in a data order of its own, with a checkpoint after every epoch.

``fit(shuffle=True)`` draws its order from the backend's own global generator (``tf.random``, numpy or
torch, depending on the backend's data adapter), whose state backend-neutral code cannot save: a VAE
trained in one ``fit`` could not go on after a crash to the weights it would have reached. Here each
epoch is one ``fit`` call over the images in an order drawn from a numpy generator seeded from the run's
seed, and after each epoch what the next one depends on is written to ``<models_dir>/vae-<key>.
checkpoint.npz`` (:mod:`~collapse_tui.engine.checkpoint`): the model's variables (its sampling noise's
seed state included), the optimiser's variables (Adam's moments, its step count), the order generator's
state and the epoch. A VAE whose training was cut short (a stop, a crash, a full disk) is continued from
there by the next run that needs it, a resumed run or any other with the same VAE key; the checkpoint
is deleted once the VAE is saved.

Cost: one permuted copy of the training images per epoch (the images are uint8; 2.5 GB for the
full-size protocol's 200,000 Shapes3D images) and one checkpoint write per epoch (a few MB).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np

from collapse_tui.engine.callbacks import EventCallback
from collapse_tui.engine.checkpoint import Checkpoint, read_checkpoint_file, write_checkpoint_file
from collapse_tui.engine.seeding import derived_seed
from collapse_tui.engine.vae_cache import set_aside
from collapse_tui.events import Message
from collapse_tui.interrupts import stop_polled
from collapse_tui.store.layout import vae_checkpoint


def vae_checkpoint_path(models_dir: str | Path, key: str) -> Path:
    return vae_checkpoint(models_dir, key)


def train_vae(vae, images: np.ndarray, emit: Callable, *, key: str, seed: int, epochs: int, batch_size: int,
              checkpoint_path: Path | None, stop_event: threading.Event | None = None) -> EventCallback:
    """Train the compiled ``vae`` on ``images`` for ``epochs`` (continuing from ``checkpoint_path`` when it
    holds this VAE's checkpoint), emitting the phase's progress and epoch events; after every whole
    epoch the checkpoint is replaced (no checkpoint with ``checkpoint_path=None``). Returns the event
    callback: its ``stopped`` and ``diverged`` say why training ended early, ``epochs_done`` how far it
    got."""
    order = np.random.RandomState(derived_seed(seed, "vae-order"))
    if not vae.optimizer.built:
        vae.optimizer.build(vae.trainable_variables)  # its variables exist before the first step, to restore
    start = _restore(vae, order, key, checkpoint_path, emit) if checkpoint_path is not None else 0
    steps = -(-len(images) // batch_size)
    callback = EventCallback("vae", emit, epochs, steps, stop_event)
    callback.epochs_done = start
    for epoch in range(start, epochs):
        # The order is drawn before the epoch, so a checkpoint after it holds the next epoch's generator.
        shuffled = images[order.permutation(len(images))]
        with stop_polled():  # the callback stops fit between steps; a signal inside only asks it to
            vae.fit(shuffled, initial_epoch=epoch, epochs=epoch + 1, batch_size=batch_size, shuffle=False,
                    verbose=0, callbacks=[callback])
        del shuffled
        if callback.epochs_done != epoch + 1:  # stopped within the epoch, or diverged
            break
        checkpoint = _checkpoint(vae, order, key, epoch + 1)
        if not all(np.isfinite(w).all() for w in checkpoint.weights if w.dtype.kind == "f"):
            # A finite loss with non-finite weights (the last step overflowed): never a checkpoint.
            callback.diverged = f"the VAE's weights became non-finite in epoch {epoch + 1}"
            callback.epochs_done = epoch
            break
        if checkpoint_path is not None:
            write_checkpoint_file(checkpoint_path, checkpoint)
        if callback.stop_requested():
            break
    return callback


def _checkpoint(vae, order: np.random.RandomState, key: str, epochs_done: int) -> Checkpoint:
    return Checkpoint(epoch=epochs_done, weights=[np.asarray(v.numpy()) for v in vae.variables],
                      optimizer={str(i): np.asarray(v.numpy()) for i, v in enumerate(vae.optimizer.variables)},
                      rng={"order": order.get_state()}, state={"vae_key": key})


def _restore(vae, order: np.random.RandomState, key: str, path: Path, emit: Callable) -> int:
    """Load the checkpoint at ``path`` into ``vae``, its optimiser and ``order``; the epochs it holds (0
    when there is none, or one that does not fit this VAE: then it is set aside and the VAE trains from its
    start)."""
    try:
        checkpoint = read_checkpoint_file(path)
        if checkpoint is None:
            return 0
        variables, slots = vae.variables, vae.optimizer.variables
        if checkpoint.state.get("vae_key") != key or len(checkpoint.weights) != len(variables) \
                or len(checkpoint.optimizer) != len(slots) or "order" not in checkpoint.rng:
            raise ValueError("it was written for another VAE")
        for variable, value in zip(variables, checkpoint.weights):
            if tuple(variable.shape) != value.shape:
                raise ValueError(f"{variable.path} has shape {value.shape}, the VAE {tuple(variable.shape)}")
        for i, slot in enumerate(slots):
            if tuple(slot.shape) != checkpoint.optimizer[str(i)].shape:
                raise ValueError(f"optimiser variable {slot.path} does not match")
    except ValueError as exc:  # damaged, or another VAE's: kept aside, never read again or overwritten
        problem = str(exc).removeprefix(f"{path}: ")  # read_checkpoint_file's errors start with the file
        moved = set_aside(path)
        where = f"set aside as {moved.name}" if moved else "gone"
        emit(Message(text=f"vae: ignoring the checkpoint {path} ({problem}); {where}, training from the start",
                     level="warning"))
        return 0
    for variable, value in zip(variables, checkpoint.weights):
        variable.assign(value)
    for i, slot in enumerate(slots):
        slot.assign(checkpoint.optimizer[str(i)])
    order.set_state(checkpoint.rng["order"])
    emit(Message(text=f"vae: continuing from its checkpoint after epoch {checkpoint.epoch} ({path})"))
    return checkpoint.epoch
