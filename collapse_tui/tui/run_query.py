"""The runs table's filter: free words and predicates on settings and metrics (no widgets here).

A filter is whitespace-separated words, all of which must hold for a run to be listed:

- ``key<op>value`` with ``op`` one of ``= != < <= > >=`` is a predicate. ``key`` is a row column (run,
  status, method, k/λ, dataset, sweep, date, remedy), a flattened config key (``sae.k``, ``seed``, or the
  unique dotted tail of one: ``k`` for ``sae.k``), or a metric by its spec key, its label or a short alias
  (``dead``, ``l0``, ``ev``, ``mig``, ``mse``). Metrics compare as the table shows them (``dead>30``: more
  than 30 %). Numbers compare as numbers, text case-insensitively; a run without the value fails every
  predicate but ``!=``.
- any other word must be a part of some cell's text (case-insensitive).

A malformed predicate (no value, text against a number, an unknown key) filters nothing and is reported in
:attr:`Query.problems`, one line each; parsing never raises.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from collapse_tui.config import flatten
from collapse_tui.metrics.specs import SPECS, MetricSpec, spec

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "!=": operator.ne, "<=": operator.le, ">=": operator.ge, "=": operator.eq, "<": operator.lt, ">": operator.gt}
_PREDICATE = re.compile(r"^(?P<key>[^=!<>]+)(?P<op>!=|<=|>=|=|<|>)(?P<value>.*)$")
# Short names researchers type for the headline metrics.
METRIC_ALIASES = {"dead": "dead_fraction", "ev": "explained_variance"}
# What a row knows beside its config: the runs table's own columns, and what a run changed against the
# plain method (as the results tables name it).
# How a value that is not there is typed: ``remedy!=none``, ``mig=n/a``.
NONE_WORDS = ("none", "–", "n/a")
ROW_FIELDS = ("run", "status", "method", "k/λ", "dataset", "sweep", "date", "remedy")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    """A value as text is compared: ``True`` as ``true``, None as ``none``."""
    return str(value).lower()


def shown_number(metric: MetricSpec, value: Any) -> float | None:
    """A metric's raw value as the table shows it, as a number (a fraction of neurons in percent, rounded
    to the spec's digits); None where the run has none."""
    scaled = metric.scaled(value)
    if scaled is None:
        return None
    try:
        return float(metric.text(scaled))
    except ValueError:  # a spec whose text is not a plain number: compare the scaled value
        return scaled


class QueryRow:
    """What the filter reads of one run: its cells' text (lowercase), its row values, its config (flattened
    once, on first use) and its summary."""

    __slots__ = ("text", "fields", "config", "summary", "_flat")

    def __init__(self, text: str, fields: Mapping[str, Any], config: Mapping[str, Any] | None = None,
                 summary: Mapping[str, Any] | None = None) -> None:
        self.text = text.lower()
        self.fields = fields
        self.config = config or {}
        self.summary = summary or {}
        self._flat: dict[str, Any] | None = None

    @property
    def flat(self) -> dict[str, Any]:
        if self._flat is None:
            self._flat = flatten(self.config) if isinstance(self.config, dict) else {}
        return self._flat


@dataclass(frozen=True)
class Predicate:
    """One ``key<op>value`` word, its key resolved: a row field, a config key or a metric."""

    word: str
    kind: str  # "field", "config" or "metric"
    name: str  # the row field or config key
    op: str
    value: str
    number: float | None  # the value as a number, when it is one
    metric: MetricSpec | None = None

    def _actual(self, row: QueryRow) -> Any:
        if self.kind == "metric":
            return shown_number(self.metric, self.metric.value(row.summary))
        source = row.fields if self.kind == "field" else row.flat
        return source.get(self.name)

    def holds(self, row: QueryRow) -> bool:
        actual = self._actual(row)
        if actual is None:  # only "= none" and "!= <a value>" hold for a run without the value
            return (self.op == "=") == (self.value.lower() in NONE_WORDS) and self.op in ("=", "!=")
        compare = OPERATORS[self.op]
        try:
            if self.number is not None and _is_number(actual):
                return compare(float(actual), self.number)
            return compare(_text(actual), self.value.lower())
        except TypeError:
            return False


@dataclass
class Query:
    """A parsed filter: the predicates and free words that must all hold, and what could not be read."""

    predicates: list[Predicate] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def matches(self, row: QueryRow) -> bool:
        return all(w in row.text for w in self.words) and all(p.holds(row) for p in self.predicates)

    @property
    def empty(self) -> bool:
        return not self.predicates and not self.words


def _metric(name: str) -> MetricSpec | None:
    """The metric a typed name means: an alias, a spec key (``dead@1e-06`` included) or a label."""
    lowered = name.lower()
    key = METRIC_ALIASES.get(lowered, name)
    try:
        return spec(key)
    except KeyError:
        pass
    for candidate in SPECS:
        if candidate.key.lower() == lowered or candidate.label.lower() == lowered:
            return candidate
    return None


class QueryIndex:
    """The keys the filter knows for a listing of runs: computed once per listing, then each filter text
    parses against it."""

    def __init__(self, rows: Iterable[QueryRow]) -> None:
        self.rows = list(rows)
        self._config_keys: list[str] | None = None
        self._numeric: dict[tuple[str, str], bool] = {}

    @property
    def config_keys(self) -> list[str]:
        """Every flattened config key of the runs; their configs are flattened on first use, once."""
        if self._config_keys is None:
            keys: dict[str, None] = {}
            for row in self.rows:
                keys.update(dict.fromkeys(row.flat))
            self._config_keys = list(keys)
        return self._config_keys

    def _holds_numbers(self, kind: str, name: str) -> bool:
        """Whether a field or config key holds numbers: its first value that is there decides."""
        if (kind, name) not in self._numeric:
            values = (row.fields.get(name) if kind == "field" else row.flat.get(name) for row in self.rows)
            first = next((v for v in values if v is not None), None)
            self._numeric[(kind, name)] = _is_number(first)
        return self._numeric[(kind, name)]

    def resolve(self, key: str) -> tuple[str, str, MetricSpec | None] | str:
        """``(kind, name, metric)`` of a typed key, or a one-line problem."""
        lowered = key.lower()
        for column in ROW_FIELDS:
            if lowered == column.lower():
                return "field", column, None
        if key in self.config_keys:
            return "config", key, None
        exact = [k for k in self.config_keys if k.lower() == lowered]
        if len(exact) == 1:
            return "config", exact[0], None
        metric = _metric(key)
        if metric is not None:
            return "metric", metric.key, metric
        tails = [k for k in self.config_keys if k.lower().endswith("." + lowered)]
        if len(tails) == 1:
            return "config", tails[0], None
        if tails:
            return f"{key} is ambiguous: {', '.join(tails[:3])}{'…' if len(tails) > 3 else ''}"
        return f"unknown key {key!r}: not a column, setting or metric"

    def parse(self, text: str) -> Query:
        query = Query()
        for word in text.split():
            m = _PREDICATE.match(word)
            if m is None:
                query.words.append(word.lower())
                continue
            key, op, value = m.group("key"), m.group("op"), m.group("value")
            if not value:
                query.problems.append(f"{word}: a value is needed after {op}")
                continue
            resolved = self.resolve(key)
            if isinstance(resolved, str):
                query.problems.append(f"{word}: {resolved}")
                continue
            kind, name, metric = resolved
            number = _number(value)
            numeric = kind == "metric" or self._holds_numbers(kind, name)
            if numeric and number is None and not (op in ("=", "!=") and value.lower() in NONE_WORDS):
                query.problems.append(f"{word}: {key} is a number, {value!r} is not")
                continue
            query.predicates.append(Predicate(word, kind, name, op, value, number, metric))
        return query
