"""The tracker of a bank's logs (:class:`~collapse_tui.nn.sae_bank.SAEBank`): per-member means over
training steps."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops


class MemberMeans(keras.metrics.Metric):
    """The means over training steps of several per-member values, kept in one variable: ``result()`` is a
    dict of vectors (one value per member) by name. One tracker rather than one per value: under torch
    every variable update is a few Python-dispatched ops, and six trackers took more of an eager step than
    its two matmuls (cProfile of a lone 256 -> 500 SAE at batch 16)."""

    def __init__(self, n_members: int, names: Sequence[str], **kwargs):
        super().__init__(name="member_means", **kwargs)
        self.names = list(names)
        self.total = self.add_variable(shape=(len(self.names), n_members), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, values):
        """``values``: one (n_members,) vector per name, in order."""
        self.total.assign(self.total + ops.cast(ops.stack(list(values)), self.total.dtype))
        self.count.assign(self.count + 1.0)

    def result(self):
        means = self.total / ops.maximum(self.count, 1.0)
        return {name: means[i] for i, name in enumerate(self.names)}
