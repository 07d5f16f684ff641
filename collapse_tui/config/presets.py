"""The presets that ship inside the package (``collapse_tui/presets/*.yaml``), found by name.

They are package data, read through :mod:`importlib.resources`, so an installed wheel has them wherever
it is run from: ``collapse-tui --batch quick`` is the embedded default from any directory. A path to a
YAML file always wins over a preset of the same name.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_PRESET = "quick"
_SUFFIXES = (".yaml", ".yml")


def preset_dir() -> Path:
    """The directory of the shipped presets (a real directory in every pip install, wheel or editable)."""
    return Path(str(resources.files("collapse_tui").joinpath("presets")))


def presets() -> dict[str, Path]:
    """``name -> path`` of the shipped presets, sorted by name (``quick`` for ``quick.yaml``)."""
    found = sorted(p for p in preset_dir().iterdir() if p.suffix in _SUFFIXES)
    return {p.stem: p for p in found}


def resolve_config(name_or_path: str | Path) -> Path:
    """The config file ``name_or_path`` means: a path with a directory in it, or an existing file, as it
    is (reading it says what is wrong with it); else the preset of that name (``quick`` or
    ``quick.yaml``). Raises FileNotFoundError with one line naming the presets for a bare name that is
    neither."""
    path = Path(name_or_path)
    if path.parent != Path(".") or path.exists():
        return path
    shipped = presets()
    name = path.name[: -len(path.suffix)] if path.suffix in _SUFFIXES else path.name
    if name in shipped:
        return shipped[name]
    raise FileNotFoundError(f"{name_or_path}: no such file, nor a preset (presets: {', '.join(shipped)})")
