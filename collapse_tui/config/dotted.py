"""Dotted keys (``sae.schedule.kind``) over nested settings: set one, or flatten a config into them."""

from __future__ import annotations

from typing import Any

from collapse_tui.config.schema import ConfigError


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` (``"sae.schedule.kind"``) of nested ``data`` to ``value``, making the
    sections on the way (an empty one: ``None``, as YAML reads ``sae:`` with nothing under it);
    :class:`ConfigError` where a part on the way holds a value, not a section."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError([f"{key}: {part} is not a section"])
        node = child
    node[parts[-1]] = value


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys of their leaves (``{"sae": {"k": 8}}`` -> ``{"sae.k": 8}``); lists
    stay values, and an empty section has no leaf, so it sets nothing."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


