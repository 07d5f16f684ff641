"""The batches of a streamed :class:`~collapse_tui.nn.sae_bank.SAEBank`: training rows that stay in their
file (``take(positions)``, see ``data.streamed_rows``) read a step at a time, each member's rows through
its order of the epoch, the same rows and order a bank holding its codes would pick.

A ``keras.utils.PyDataset`` that ``fit`` reads on every backend; it is read by one worker in order, so a
step's batch is read after the epoch's orders are set (``SAEBank.set_orders``, before each epoch).
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np


class StreamedBatches(keras.utils.PyDataset):
    """Step ``i`` of an epoch: a float32 array (batch, members, input_dim), member ``j``'s rows at positions
    ``i * batch_size ..`` of ``orders()[j]`` read from ``sources[j]``."""

    def __init__(self, sources: Sequence, orders: Callable[[], np.ndarray], batch_size: int):
        super().__init__(workers=1, use_multiprocessing=False)
        self.sources, self.orders, self.batch_size = list(sources), orders, int(batch_size)
        self.n_rows = len(self.sources[0])

    def __len__(self) -> int:
        return -(-self.n_rows // self.batch_size)

    def __getitem__(self, step: int) -> np.ndarray:
        lo = int(step) * self.batch_size
        hi = min(lo + self.batch_size, self.n_rows)
        orders = self.orders()
        # Batch first, as Keras takes a dataset's batches (the last may be shorter): (batch, members, input_dim).
        return np.stack([source.take(order[lo:hi]) for source, order in zip(self.sources, orders)], axis=1)
