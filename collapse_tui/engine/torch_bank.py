"""What a bank's training needs under torch beyond keras.ops (the bank itself, in ``nn``, uses those only).

- A leaner training step. Under torch a step's time is mostly Python's, and Keras' step does more than
  a bank needs: this one calls the bank's ``call`` directly (``Layer.__call__``'s checks and scopes are
  for arbitrary layers), takes the gradients with ``torch.autograd.grad`` (no ``.grad`` to zero and
  fill), skips Keras' own loss tracker (the bank's logs are its ``MemberMeans``) and returns no values:
  Keras reads the metrics themselves at the epoch's end (the returned keys match them), so nothing
  converts them to Python numbers after every step. The update is Keras' own (the same optimiser call,
  constraints included).
- A clean compile cache for a compiled bank. torch.compile keeps what it compiled by the function's code,
  which every bank shares, and after a few versions (8) runs that code eagerly with its guards' overhead
  on top: a sweep's ninth bank would train slower than uncompiled. Banks train one at a time, so each
  starts from a clean cache (its kernels come from inductor's cache on disk when they match).
"""

from __future__ import annotations

import types

import keras


def lean_train_step(bank, data):
    """One training step of ``bank`` (an :class:`~collapse_tui.nn.sae_bank.SAEBank`) under torch."""
    import torch

    x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    z_hat = bank.call(x, training=True)
    loss = bank.compute_loss(x=x, y_pred=z_hat, sample_weight=sample_weight, training=True)
    weights = bank.trainable_variables
    gradients = torch.autograd.grad(loss, [w.value for w in weights])
    with torch.no_grad():
        bank.optimizer.apply(list(gradients), weights)
    return dict.fromkeys(bank.member_means.names)


def prepare_bank(bank) -> None:
    """After ``bank.compile``, before its ``fit``: under torch, its lean step and, if it is compiled, a
    clean compile cache; nothing under the other backends (their trainers' steps have their own
    signatures: JAX's is stateless)."""
    if keras.backend.backend() != "torch":
        return
    bank.train_step = types.MethodType(lean_train_step, bank)
    if bank.jit_compile:
        import torch._dynamo

        torch._dynamo.reset()
