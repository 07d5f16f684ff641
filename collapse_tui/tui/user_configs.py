"""Where the user's own configs live: ``$XDG_CONFIG_HOME/collapse-tui`` (``~/.config/collapse-tui`` when
the variable is unset or empty, as the XDG base directory specification says).

The form saves there by default, and the preset list reads it, so a config saved from the form is a
preset the next time the TUI starts, from any directory.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_DIR_NAME = "collapse-tui"


def user_config_dir() -> Path:
    """The directory of the user's saved configs (it may not exist yet: saving creates it)."""
    base = os.environ.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".config"
    return root / APP_DIR_NAME
