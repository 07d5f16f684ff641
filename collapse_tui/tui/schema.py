"""The config schema seen as form fields: one :class:`FormField` per leaf of :class:`RunConfig`.

Nothing here names a config field: the form follows the pydantic model, so a new field appears in
the form with its description and bounds without UI code.
"""

from __future__ import annotations

import copy
import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from collapse_tui.config import RunConfig, field_choices, set_dotted


@dataclass(frozen=True)
class FormField:
    """One editable leaf of the config. ``kind``: choice, bool, int, float, str, list or yaml."""

    path: str
    kind: str
    default: Any
    description: str
    bounds: str
    choices: tuple = ()
    optional: bool = False

    @property
    def widget_id(self) -> str:
        return "field-" + self.path.replace(".", "-").replace("_", "-")

    @property
    def section(self) -> str:
        return self.path.rsplit(".", 1)[0] if "." in self.path else ""

    def to_text(self, value: Any) -> str:
        """The text an input shows for ``value``."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, tuple)):
            return ", ".join(self.to_text(v) for v in value)
        if self.kind == "yaml" and not isinstance(value, (int, float, str)):
            return yaml.safe_dump(value, default_flow_style=True).strip()
        return str(value)

    def from_text(self, text: str) -> Any:
        """The raw value for the schema: text stays text so that the schema itself judges it (and
        its message names the problem); only structure (empty, lists) is decided here."""
        text = text.strip()
        if self.optional and text == "":
            return None
        if self.kind == "list":
            return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
        if self.kind == "yaml":
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError:
                return text
        return text


def _bounds(info: FieldInfo) -> str:
    """The schema's limits in a few characters (they share the field's line in the form)."""
    parts = []
    min_len = max_len = None
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            parts.append(f"≥ {meta.ge:g}" if isinstance(meta.ge, float) else f"≥ {meta.ge}")
        elif isinstance(meta, annotated_types.Gt):
            parts.append(f"> {meta.gt:g}" if isinstance(meta.gt, float) else f"> {meta.gt}")
        elif isinstance(meta, annotated_types.Le):
            parts.append(f"≤ {meta.le:g}" if isinstance(meta.le, float) else f"≤ {meta.le}")
        elif isinstance(meta, annotated_types.Lt):
            parts.append(f"< {meta.lt:g}" if isinstance(meta.lt, float) else f"< {meta.lt}")
        elif isinstance(meta, annotated_types.MinLen):
            min_len = meta.min_length
        elif isinstance(meta, annotated_types.MaxLen):
            max_len = meta.max_length
        elif getattr(meta, "pattern", None):
            parts.append(f"pattern {meta.pattern}")
    if min_len is not None and max_len is not None:
        parts.insert(0, f"length {min_len}–{max_len}")
    elif min_len is not None:
        parts.insert(0, f"length ≥ {min_len}")
    elif max_len is not None:
        parts.insert(0, f"length ≤ {max_len}")
    return ", ".join(parts)


def _kind(ann: Any) -> tuple[str, tuple, bool]:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is Literal:
        return "choice", tuple(args), False
    if args and type(None) in args and origin is not list:
        inner = [a for a in args if a is not type(None)]
        kind, choices, _ = _kind(inner[0]) if len(inner) == 1 else ("yaml", (), False)
        return kind, choices, True
    if ann is bool:
        return "bool", (), False
    if ann is int:
        return "int", (), False
    if ann is float:
        return "float", (), False
    if ann is str:
        return "str", (), False
    if origin is list:
        return "list", (), False
    return "yaml", (), False


def form_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[FormField]:
    """Every leaf field of ``model`` in declaration order, sections flattened to dotted paths."""
    fields = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            fields.extend(form_fields(ann, f"{prefix}{name}."))
            continue
        kind, choices, optional = _kind(ann)
        named = field_choices(info)  # a vocabulary read when the form is built (the registered datasets)
        if named is not None and kind != "choice":
            kind, choices = "choice", named
        default = info.get_default(call_default_factory=True)
        fields.append(FormField(path=prefix + name, kind=kind, default=default,
                                description=info.description or "", bounds=_bounds(info),
                                choices=choices, optional=optional))
    return fields


def get_dotted(data: dict[str, Any], path: str, default: Any = None) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def errors_by_field(lines: list[str], paths: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Assign each ``"field.path: message"`` line to the longest field path it starts with; lines
    naming no field (or a whole section) are returned apart."""
    by_path: dict[str, list[str]] = {}
    rest = []
    ordered = sorted(paths, key=len, reverse=True)
    for line in lines:
        for path in ordered:
            if line.startswith(path + ":"):
                by_path.setdefault(path, []).append(line[len(path) + 1:].strip())
                break
        else:
            rest.append(line)
    return by_path, rest


def merged_with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Every field's value: ``data``'s where given, the schema default elsewhere (``sweep`` dropped)."""
    out: dict[str, Any] = {}
    for f in form_fields():
        set_dotted(out, f.path, copy.deepcopy(get_dotted(data, f.path, f.default)))
    return out
