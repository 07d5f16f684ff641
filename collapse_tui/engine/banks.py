"""Which runs train together in one bank: decided from their configs alone, without Keras, so that a
dry run can say it and the runner, the sweep and Ray all group runs the same way."""

from __future__ import annotations

from typing import Any, Callable, Sequence


def bank_key(cfg) -> tuple:
    """The settings runs must share to train in one bank (besides what the SAEs' shapes must share,
    checked once they are built): how many codes, how they are batched and for how long, the optimiser,
    the method, the bank size itself and whether it trains data-parallel; and whether they use AuxK, ghost
    grads and the decoder-gradient projection (a bank computes these for every member when any uses them).

    Those two could share a step with runs without them, but the bank computes them for every member
    when any uses them, and they cost: on two CPU cores (TensorFlow, 44 members of 256 -> 500, batch 16)
    the projection on 4 members halved the bank's updates per second (1,131 -> 537), AuxK on 4 cost 19%
    (922), while standardising or tied initialisation cost nothing measurable (1,112, 1,098). The bias floor
    shares too: it adds an offset to the pre-activations and one elementwise update per step, and 4 of 16
    members with it (256 -> 500, k = 50, batch 16, two CPU cores, six interleaved rounds, medians) left the
    bank's updates per second unchanged within the noise (with / without: 48 / 47 on TensorFlow, 54 / 56 on
    JAX, 32.5 / 32.5 on torch)."""
    c = cfg.sae
    # The learning rate's whole course: its schedule, and the sparsity schedule's length when the decay
    # starts where that ends.
    follows_sparsity = c.lr_schedule.decay != "none" and c.lr_schedule.decay_start_epoch is None
    rate = (c.learning_rate, c.adam_beta1, tuple(c.lr_schedule.model_dump().items()),
            (c.schedule.kind, c.schedule.delay, c.schedule.epochs) if follows_sparsity else None)
    return (cfg.data.n_train, c.method, c.n_neurons, c.batch_size, rate, c.epochs,
            c.extended_epochs, cfg.bank_size, cfg.data_parallel, c.remedies.auxk,
            c.remedies.auxk_candidates if c.remedies.auxk else None, c.remedies.project_decoder_grads,
            c.remedies.ghost_grads)


def bank_groups(configs: Sequence, size_of: Callable[[Any], int] = lambda cfg: cfg.bank_size) -> list[list[int]]:
    """Indices of ``configs`` grouped into banks: runs with one :func:`bank_key`, in the order they come,
    at most ``bank_size`` per bank; banks ordered by their first run."""
    open_banks: dict[tuple, list[int]] = {}
    banks: list[list[int]] = []
    for i, cfg in enumerate(configs):
        key = bank_key(cfg)
        bank = open_banks.get(key)
        if bank is None or len(bank) >= max(1, size_of(cfg)):
            bank = []
            open_banks[key] = bank
            banks.append(bank)
        bank.append(i)
    return banks
