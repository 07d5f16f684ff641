"""Why a neuron is dead: it never has a positive pre-activation on any input (*ReLU-dead*: its encoder
row and bias point away from all the data, so no gradient reaches it through the ReLU), or it sometimes
does but never passes the method's gate (*gated-dead*: never among Top-k's k largest, never above
BatchTopK's or JumpReLU's threshold).

The difference decides which remedy can help: AuxK picks its candidates among the dead neurons' positive
pre-activations (its top-k of ReLU(pre)), so it can reach gated-dead neurons but never ReLU-dead ones; a
bias raised from outside, or a reinitialisation, reaches both. Under L1 (a plain ReLU) every dead neuron
is ReLU-dead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collapse_tui.metrics.disentanglement import _as_2d

__all__ = ["DeadCauses", "dead_causes"]


@dataclass(frozen=True)
class DeadCauses:
    """Masks over neurons (bool arrays): ``relu_dead`` | ``gated_dead`` = the dead neurons, disjoint."""

    relu_dead: np.ndarray
    gated_dead: np.ndarray

    @property
    def relu_fraction(self) -> float:
        return float(self.relu_dead.mean()) if self.relu_dead.size else 0.0

    @property
    def gated_fraction(self) -> float:
        return float(self.gated_dead.mean()) if self.gated_dead.size else 0.0


def dead_causes(acts, pre, threshold: float = 0.0) -> DeadCauses:
    """Split the dead neurons of ``acts`` (samples x neurons: never above ``threshold``) by their
    pre-activations ``pre`` (same shape, the encoder's output before any activation): ReLU-dead where the
    largest pre-activation is <= 0, gated-dead where it is positive on some input."""
    acts = _as_2d("acts", acts, allow_1d=False)
    pre = _as_2d("pre", pre, allow_1d=False)
    if acts.shape != pre.shape:
        raise ValueError(f"acts and pre must have the same shape, got {acts.shape} and {pre.shape}")
    if acts.shape[0] == 0:
        raise ValueError("dead neurons need at least one input")
    dead = ~(acts > threshold).any(axis=0)
    positive = (pre > 0).any(axis=0)
    return DeadCauses(relu_dead=dead & ~positive, gated_dead=dead & positive)
