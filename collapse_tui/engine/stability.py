"""Representational stability over a run: at every evaluation mark the SAE's decoder directions are kept
(``decoders.npz``) and compared with the run's first mark (after the first epoch: the dense stage when the
sparsity schedule starts wide), answering "how much does sparsification distort the features the network
uses?":

- ``survival``: the share of the first mark's live neurons whose decoder direction is matched one-to-one
  (Hungarian matching on cosines) by a live neuron of this mark at cosine >= 0.7
  (:func:`~collapse_tui.metrics.stability.feature_survival`); ``survival_cosine``: the mean over the first
  mark's live neurons of their best cosine with any live neuron now;
- ``cka_first``: linear CKA between this mark's codes and the first mark's, on the first
  ``REFERENCE_INPUTS`` evaluation inputs.

The first mark itself measures nothing (it is the reference). A resumed run reads its marks back from the
run directory; if they cannot be read, it says so and measures against its next mark instead. Survival is
not computed for dictionaries of more than :data:`~collapse_tui.metrics.stability.SURVIVAL_MAX_LIVE` live
neurons (its matrix and matching would take gigabytes and minutes): both survival metrics are then None
("–" in tables, never 0), and the run says why once.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from collapse_tui.metrics.stability import FEATURE_MATCH_COSINE, SurvivalTooLarge, feature_survival, linear_cka
from collapse_tui.store import DecoderMarks, read_decoders, write_decoders

__all__ = ["REFERENCE_INPUTS", "StabilityMarks"]

REFERENCE_INPUTS = 2000  # evaluation inputs whose codes at the first mark are kept for CKA (2 MB at 500 neurons)


class StabilityMarks:
    """The decoder marks of one run, written into ``run_dir`` as they are taken."""

    def __init__(self, run_dir, threshold: float = 0.0, say: Callable[[str], None] = lambda text: None):
        self.run_dir = run_dir
        self.threshold = threshold  # a neuron is alive at a mark when it exceeds this on some input
        self.marks: DecoderMarks | None = None
        self.say = say  # where the run tells why survival is not computed (once)
        self._said_too_large = False

    def restore(self, epoch: int, say: Callable[[str], None]) -> None:
        """The marks taken up to ``epoch`` (a checkpoint's), read back; on damage, say so and start over."""
        try:
            marks = read_decoders(self.run_dir)
        except ValueError as exc:
            say(f"sae: {exc}; representational stability is measured from the next mark on")
            return
        if marks is not None:
            kept = marks.upto(epoch)
            self.marks = kept if kept.epochs.size else None

    def measure(self, epoch: int, updates: int, decoder: np.ndarray, acts: np.ndarray) -> dict[str, Any]:
        """Record this mark and measure it against the first; {} at the first mark."""
        alive = (acts > self.threshold).any(axis=0)
        if self.marks is None:
            self.marks = DecoderMarks(np.array([epoch], np.int64), np.array([updates], np.int64),
                                      np.asarray(decoder, np.float16)[None], alive[None],
                                      np.asarray(acts[:REFERENCE_INPUTS], np.float16))
            write_decoders(self.run_dir, self.marks)
            return {}
        first = self.marks
        reference = first.reference_acts.astype(np.float32)
        metrics = {**self._survival(first, decoder, alive), "cka_first": linear_cka(reference, acts[:len(reference)]),
                   "stability_reference_epoch": int(first.epochs[0])}
        if epoch > int(first.epochs[-1]):  # a repeated mark (a run stopped just after it) is kept once
            self.marks = first.then(epoch, updates, decoder, alive)
            write_decoders(self.run_dir, self.marks)
        return metrics

    def _survival(self, first: DecoderMarks, decoder: np.ndarray, alive: np.ndarray) -> dict[str, float | None]:
        """Survival against the first mark; None for both metrics above the size survival is computed at."""
        try:
            survival = feature_survival(first.decoders[0].astype(np.float32), decoder, cosine=FEATURE_MATCH_COSINE,
                                        reference_alive=first.alive[0], later_alive=alive)
        except SurvivalTooLarge as exc:
            if not self._said_too_large:
                self._said_too_large = True
                self.say(f"sae: {exc}; survival and survival cos are left empty (not 0) in this run")
            return {"survival": None, "survival_cosine": None}
        return {"survival": survival.share_matched, "survival_cosine": survival.mean_max_cosine}
