"""A bank member's share of the optimiser's state: read out for a checkpoint, written back on resume.

A bank's weights are stacked along a leading member axis, and so are the optimiser's slots for them
(Adam's momentum and velocity have each weight's shape): member ``i``'s state is slice ``i`` of every
slot. The step count is the bank's, shared by all members.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from keras import ops

from collapse_tui.nn.resampling import optimizer_slots


def _np(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value))


def slots(bank) -> Iterator[tuple[str, object]]:
    """(key, slot) for each optimiser slot of each of ``bank``'s trainable weights; key ``"<weight>:<slot>"``."""
    for variable in bank.trainable_variables:
        prefix = variable.path.replace("/", "_") + "_"
        for slot in optimizer_slots(bank.optimizer, variable):
            yield f"{variable.name}:{slot.name.removeprefix(prefix)}", slot


def read_states(bank, members: Sequence[int]) -> dict[int, dict[str, np.ndarray]]:
    """What ``bank``'s optimiser remembers of each of ``members`` (each slot of each of its trainable
    weights, e.g. Adam's momentum and velocity, as ``"<weight>:<slot>"``) and ``"iterations"``, the step
    count the members share. Each slot is read from the device once."""
    iterations = np.asarray(_np(bank.optimizer.iterations))
    states = {i: {"iterations": iterations} for i in members}
    for key, slot in slots(bank):
        values = _np(slot.value)
        for i in members:
            states[i][key] = values[i].copy()
    return states


def write_states(bank, states: dict[int, dict[str, np.ndarray]]) -> None:
    """Restore what :func:`read_states` returned into those members of ``bank`` (its optimiser is built
    first if it is not yet); they must share one step count, which becomes the bank's."""
    if not states:
        return
    if not bank.optimizer.built:
        bank.optimizer.build(bank.trainable_variables)
    counts = {int(np.asarray(state["iterations"])) for state in states.values()}
    if len(counts) != 1:
        raise ValueError(f"members restored into one bank must share a step count, got {sorted(counts)}")
    bank.optimizer.iterations.assign(np.asarray(counts.pop(), _np(bank.optimizer.iterations).dtype))
    for key, slot in slots(bank):
        values = _np(slot.value).copy()
        for i, state in states.items():
            if key not in state:
                raise ValueError(f"the optimiser state of member {i} has no {key!r}")
            values[i] = state[key]
        slot.assign(values)
