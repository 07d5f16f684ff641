"""Write the documentation's reference pages from the code that defines what they describe:

- ``docs/reference/configs.md``: every config key, from the pydantic schema (collapse_tui/config/schema.py);
- ``docs/reference/metrics.md``: every metric of a run's results, from the metric specs
  (collapse_tui/metrics/specs.py).

The pages are committed, so the site and a reader on the repository see them without running anything;
a unit test (tests/unit/test_docs_reference.py) fails when one no longer matches the code.

    python docs/generate_reference.py           # rewrite both pages
    python docs/generate_reference.py --check   # exit 1 naming each stale page, writing nothing
"""

from __future__ import annotations

import argparse
import enum
import json
import math
import sys
from pathlib import Path
from typing import Iterator

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collapse_tui.config import EvalConfig, RunConfig, field_docs  # noqa: E402
from collapse_tui.metrics import specs  # noqa: E402

REFERENCE = ROOT / "docs" / "reference"
COMMAND = "python docs/generate_reference.py"


def _header(title: str, source: str) -> list[str]:
    return [
        f"# {title}",
        "",
        f"This page is generated from `{source}` by `{COMMAND}`: edit the code, then run the command.",
        "",
    ]


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: a pipe would split the cell, ``<name>`` would be read as
    an HTML tag and vanish, and ``&lt;`` written in prose must stay as written."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|")


def code(text: str) -> str:
    """Text as inline code in a table cell. Entities are not decoded inside code, so nothing is escaped;
    a pipe or a backtick would break the cell, and no key, column or pattern has one."""
    if "|" in text or "`" in text:
        raise ValueError(f"{text!r} cannot be shown as code in a table cell")
    return f"`{text}`"


def number(value: float | int) -> str:
    """A number as short as it stays exact: -1e+12 rather than -1000000000000.0, 1000 rather than 1000.0."""
    if isinstance(value, float) and math.isfinite(value):
        short = format(value, "g")
        return short if float(short) == value else repr(value)
    return str(value)


# --------------------------------------------------------------------------- the configs page

def sections(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, list[tuple[str, FieldInfo]]]]:
    """Each section of the schema, depth first in declaration order (the order a config file and the
    form list them): its dotted prefix and its own leaf fields, each with its dotted key."""
    leaves, nested = [], []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((f"{prefix}{name}.", ann))
        else:
            leaves.append((prefix + name, info))
    yield prefix.rstrip("."), leaves
    for sub_prefix, sub_model in nested:
        yield from sections(sub_model, sub_prefix)


def type_text(info: FieldInfo, named: str) -> str:
    """The type as the schema names it (``named``, from field_docs), with an Enum's values listed as a
    Literal's already are: a reader needs the words a config may hold, not a class name."""
    ann = info.annotation
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return "one of " + ", ".join(str(member.value) for member in ann)
    return named


def default_text(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True)
    if isinstance(value, enum.Enum):
        value = value.value
    # The schema's descriptions call a missing value "empty"; the rest is written as YAML reads it.
    return "empty" if value is None else code(json.dumps(value))


def bounds_text(info: FieldInfo) -> str:
    """The field's constraints as its metadata declares them (ge/gt/le/lt, lengths, a pattern)."""
    parts = []
    for item in info.metadata:
        for kind, attribute, words in BOUNDS:
            if isinstance(item, kind):
                value = getattr(item, attribute)
                parts.append(f"{words} {value if attribute.endswith('length') else number(value)}")
                break
        else:
            if getattr(item, "pattern", None):
                parts.append("matches " + code(item.pattern))
    return ", ".join(parts)


# annotated_types' constraint, the attribute holding its value, and how the page says it.
BOUNDS = ((annotated_types.Ge, "ge", "≥"), (annotated_types.Gt, "gt", "&gt;"), (annotated_types.Le, "le", "≤"),
          (annotated_types.Lt, "lt", "&lt;"), (annotated_types.MultipleOf, "multiple_of", "multiple of"),
          (annotated_types.MinLen, "min_length", "length ≥"), (annotated_types.MaxLen, "max_length", "length ≤"))


def configs_page() -> str:
    # field_docs() is how the schema names its types (choices listed, "or empty" for optional values),
    # the same words the terminal UI's form shows.
    types = {path: kind for path, kind, _default, _description in field_docs()}
    lines = _header("Configs reference", "collapse_tui/config/schema.py") + [
        "Every key a config file accepts, one table per section. A key is written nested in YAML "
        "(`sae: {k: 50}`) or dotted in a `sweep:` block (`sae.k: [50]`). Bounds are checked before "
        "anything runs; a value outside them is refused with a line naming the key.",
        "",
    ]
    for section, fields in sections(RunConfig):
        if not fields:
            continue
        lines += [f"## {f'`{section}`' if section else 'Top level'}", "",
                  "| key | type | default | bounds | description |", "|---|---|---|---|---|"]
        for key, info in fields:
            lines.append(f"| {code(key)} | {cell(type_text(info, types[key]))} | {default_text(info)} | {bounds_text(info)} | "
                         f"{cell(info.description or '')} |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the metrics page

def _spec_row(spec: specs.MetricSpec) -> str:
    methods = ", ".join(sorted(spec.methods)) or "all"
    scale = "" if spec.scale == 1 else f"× {number(spec.scale)}"
    where = ".".join(spec.summary_path)
    return (f"| {code(spec.key)} | {cell(spec.label)} | {code(spec.csv_name)} | {cell(spec.unit)} | "
            f"{scale} | {spec.digits} | {methods} | {code(where)} | {cell(spec.description)} |")


def metrics_page() -> str:
    head = ("| key | label | CSV column | unit | scale | digits | methods | in summary.json | description |\n"
            "|---|---|---|---|---|---|---|---|---|")
    # The families as dead_spec writes any member of them, the threshold t or frequency f left as a name.
    families = [specs.dead_spec(specs.DEAD_PREFIX + "t"), specs.dead_spec(specs.RARE_PREFIX + "f")]
    defaults = EvalConfig()
    reported = ([specs.threshold_key(t) for t in defaults.thresholds]
                + [specs.frequency_key(f) for f in defaults.density_thresholds])
    lines = _header("Metric glossary", "collapse_tui/metrics/specs.py") + [
        "Every final metric of a run, in the order the sweep tables and the compare screen show them. "
        "*key* names it in `summary.json`'s `final` section and in evaluation events; *label* is the column "
        "title of every table; a value is shown multiplied by *scale* to *digits* decimals; *methods* are "
        "the sparsity methods it means something for.",
        "",
        head,
        *(_spec_row(s) for s in specs.SPECS),
        "",
        "## The dead fraction at each threshold",
        "",
        "One metric per threshold t of `eval.thresholds` and per firing frequency f of "
        "`eval.density_thresholds`, each shown as the dead fraction is. With the default settings a run "
        "reports "
        + ", ".join(f"`{k}`" for k in reported) + ".",
        "",
        head,
        *(_spec_row(s) for s in families),
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing and checking

def pages() -> dict[Path, str]:
    """Every generated page, by its path, as it should read now."""
    return {REFERENCE / "configs.md": configs_page(), REFERENCE / "metrics.md": metrics_page()}


def stale(expected: dict[Path, str]) -> list[Path]:
    return [path for path, text in expected.items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming each page that differs from what the code gives")
    args = parser.parse_args(argv)
    expected = pages()
    if args.check:
        out_of_date = stale(expected)
        for path in out_of_date:
            print(f"{path.relative_to(ROOT)} is out of date: run {COMMAND}", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
