"""Which Keras backend a process will load, and whether it can: checked before anything imports Keras, so
that a misspelt ``KERAS_BACKEND`` or a backend whose framework is not installed is one line, not a traceback
from inside Keras (or a terminal UI waiting for ever on "loading Keras")."""

from __future__ import annotations

import json
import os
from importlib.util import find_spec
from pathlib import Path

from collapse_tui.config.vocabulary import FLOAT_TYPES

BACKENDS = ("tensorflow", "jax", "torch")  # the backends this tool runs and tests on
EXTRAS = {"jax": "jax", "torch": "torch"}  # the package extra that installs each one's framework
CONFIG_LIMIT = 1 << 20  # keras.json is a few lines
KERAS_JSON_FLOATX = FLOAT_TYPES  # what Keras loads with in keras.json (it raises on others)


def keras_json_path() -> Path:
    """Where Keras reads its settings: keras.json in ``$KERAS_HOME`` or ``~/.keras``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "keras.json"


def keras_json_setting(name: str) -> str | None:
    """The text setting ``name`` of keras.json (``backend``, ``floatx``), as Keras reads it; None when there
    is no such file or it names none."""
    path = keras_json_path()
    try:
        if not path.is_file() or path.stat().st_size > CONFIG_LIMIT:
            return None
        value = json.loads(path.read_text()).get(name)
    except (OSError, ValueError, AttributeError):
        return None  # Keras itself falls back to its default on a file it cannot read
    return value if isinstance(value, str) else None


def _keras_json_backend() -> str | None:
    """The backend keras.json names, as Keras reads it when ``KERAS_BACKEND`` is unset."""
    return keras_json_setting("backend")


def chosen_backend() -> tuple[str, str]:
    """(the backend Keras will load, where that choice comes from)."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"], "KERAS_BACKEND"
    backend = _keras_json_backend()
    if backend:
        return backend, "keras.json"
    return "tensorflow", "the default"


def backend_problem() -> str | None:
    """Why the chosen backend cannot run here, in one line; None when it can. Looks for the framework
    without importing it (an import is seconds, and TensorFlow's logs its start). A floatx in keras.json that
    Keras rejects as it loads is such a problem too (which precisions runs train in is
    :mod:`~collapse_tui.engine.precision`'s to say, once Keras is loaded)."""
    backend, source = chosen_backend()
    if backend not in BACKENDS:
        return (f"{source} names the backend {backend!r}, which collapse-tui does not run on: use one of "
                f"{', '.join(BACKENDS)} (--backend or KERAS_BACKEND)")
    if find_spec(backend) is None:
        extra = EXTRAS.get(backend)
        how = f"pip install 'collapse-tui[{extra}]'" if extra else f"pip install {backend}"
        return f"the {backend} backend ({source}) is not installed: {how}, or choose another with --backend"
    floatx = keras_json_setting("floatx")
    if floatx is not None and floatx not in KERAS_JSON_FLOATX:  # Keras would fail as it loads
        return (f"{keras_json_path()} sets floatx {floatx!r}, which Keras cannot load with: set \"floatx\": "
                f"\"float32\" there")
    return None
