"""The order of the configure form: the settings a study changes most first, then every other field
folded into one section per part of the config.

The lead block is the one place that names fields; everything else follows the schema, so a field added
to the config appears in its section without UI code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collapse_tui.tui.schema import FormField

# What a dead-neuron study varies run to run: the run's identity, the data, the SAE's sparsity and its
# schedule, and how long and in what batches it trains. The sweep block follows them in the form.
LEAD_FIELDS = (
    "name", "seed", "data.dataset", "data.n_train",
    "sae.method", "sae.n_neurons", "sae.k", "sae.l1_coefficient",
    "sae.schedule.kind", "sae.schedule.start", "sae.schedule.epochs", "sae.schedule.delay",
    "sae.epochs", "sae.batch_size", "vae.epochs",
)
RUN_SECTION = "run"  # the title of the top-level fields' section (runs_dir, bank_size, …)


@dataclass(frozen=True)
class Section:
    """A folded part of the form: the fields of one config section not already in the lead block."""

    name: str
    fields: tuple[FormField, ...]

    @property
    def dom_id(self) -> str:
        return "section-" + self.name.replace(".", "-").replace("_", "-")


def lead_fields(fields: list[FormField]) -> list[FormField]:
    """The lead block's fields, in :data:`LEAD_FIELDS` order (a name the schema lacks is skipped)."""
    by_path = {f.path: f for f in fields}
    return [by_path[path] for path in LEAD_FIELDS if path in by_path]


def sections(fields: list[FormField]) -> list[Section]:
    """The fields outside the lead block, one section per config section, in schema order."""
    grouped: dict[str, list[FormField]] = {}
    for f in fields:
        if f.path not in LEAD_FIELDS:
            grouped.setdefault(f.section or RUN_SECTION, []).append(f)
    return [Section(name, tuple(group)) for name, group in grouped.items()]


def short_label(f: FormField, section: str | None) -> str:
    """The field's key inside ``section`` (the dotted path in the lead block): a folded section's title
    already names the part of the config, and the full key is in the tooltip and the help line."""
    if section and section != RUN_SECTION and f.path.startswith(section + "."):
        return f.path[len(section) + 1:]
    return f.path


def section_title(name: str, n_fields: int, n_modified: int, n_edited: int = 0, n_errors: int = 0) -> str:
    """``sae.remedies · 16 fields · 2 modified`` (modified: not the schema default), then how many were
    edited since the preset was loaded and how many the schema refuses, when any: a folded section
    still tells what it hides."""
    title = f"{name} · {n_fields} field{'s' if n_fields != 1 else ''} · {n_modified} modified"
    title += f" · {n_edited} edited" if n_edited else ""
    return title + (f" · {n_errors} error{'s' if n_errors != 1 else ''}" if n_errors else "")


def normalised(value: Any) -> Any:
    """A field's value comparable with its default however it was typed: ``"1e-3"`` equals ``0.001``,
    ``"10"`` equals ``10``, a list compares item by item; anything else as it is."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [normalised(v) for v in value]
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value.strip()
    return value
