"""What ``s`` on the live run screen offers to stop, named: the runs training now (a bank's runs train
in one model and stop together) or, in a sweep, the sweep once they have finished."""

from __future__ import annotations

from typing import Sequence

from collapse_tui.tui.state import RunState

KEEP, NOW, AFTER_BANK = "keep", "now", "after_bank"


def _names(states: Sequence[RunState], most: int = 3) -> str:
    names = [s.name or "…" for s in states]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def stop_choices(training: Sequence[RunState], planned: int, started: int,
                 can_finish_bank: bool = True) -> tuple[str, list[tuple[str, str]]]:
    """The dialog's title and its (key, text) choices: keep going (first, so that Enter by habit stops
    nothing), stop now, and, when runs of the sweep are still to start, finish these then stop."""
    left = max(0, planned - started)
    later = f"; the sweep's {left} runs not started stay for --resume" if left else ""
    if len(training) == 1:
        title = f"Stop {training[0].name or 'the run'}?"
        now = f"Stop it now: evaluated as it stands, kept as stopped{later}"
    else:
        title = f"Stop the {len(training)} runs training together ({_names(training)})?"
        now = f"Stop all {len(training)} now (one model: they stop together), each kept as stopped{later}"
    choices = [(KEEP, "Keep training"), (NOW, now)]
    if left and can_finish_bank:
        these = "it" if len(training) == 1 else f"these {len(training)}"
        choices.append((AFTER_BANK, f"Let {these} finish, then stop the sweep ({left} runs not started)"))
    return title, choices
