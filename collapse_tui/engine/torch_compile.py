"""The user's say over torch.compile: ``COLLAPSE_TUI_TORCH_COMPILE`` (``auto``, ``on`` or ``off``).

Kept apart from the bank's training (``bank_phase``, which decides with it) because the pre-flight
checks it before any run starts, and a front end must be able to do that without loading Keras.
"""

from __future__ import annotations

import os

# Overrides the bank's rule (bank_phase.TORCH_COMPILE_MIN_UPDATES): "on" or "off" (default "auto").
TORCH_COMPILE_VARIABLE = "COLLAPSE_TUI_TORCH_COMPILE"


def torch_compile_setting() -> str:
    """:data:`TORCH_COMPILE_VARIABLE`'s value: ``auto`` (unset), ``on`` or ``off``; anything else is refused."""
    setting = os.environ.get(TORCH_COMPILE_VARIABLE, "auto").strip().lower()
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"{TORCH_COMPILE_VARIABLE} must be auto, on or off, got {setting!r}")
    return setting
