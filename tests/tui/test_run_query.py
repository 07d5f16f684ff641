"""The runs table's filter language and its groups' aggregates, on hand-made rows (no widgets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collapse_tui.metrics.specs import spec
from collapse_tui.tui.run_groups import differing_keys, group_by, mean_std
from collapse_tui.tui.run_query import QueryIndex, QueryRow


def row(name, method, k, dead, seed, remedy="none", status="ok", l1=None, dataset="dsprites"):
    sae = {"method": method, "k": k, "l1_coefficient": l1 if l1 is not None else 0.001}
    config = {"name": name, "seed": seed, "sae": sae, "data": {"dataset": dataset}}
    summary = {"final": {"dead_fraction": dead, "l0": float(k), "explained_variance": 0.9, "mse": 0.00123}} \
        if dead is not None else {}
    fields = {"run": name, "status": status, "method": method, "k/λ": k, "dataset": dataset, "remedy": remedy}
    # The text a row is searched in: its cells as the table shows them (dead in percent).
    text = f"{name} {status} {method} {k} {spec('dead_fraction').format(dead)} {dataset}"
    return QueryRow(text, fields, config, summary)


ROWS = {
    "a": row("quick-topk-k16", "topk", 16, 0.3004, 0, remedy="auxk"),  # dead shown 30.0
    "b": row("quick-topk-k50", "topk", 50, 0.452, 1),
    "c": row("quick-l1-lam0.3", "L1", 50, 0.712, 0, status="failed", l1=0.3),
    "d": row("other-batchtopk-k8", "batchtopk", 8, None, 2, dataset="shapes3d"),  # never evaluated
}
INDEX = QueryIndex(ROWS.values())


def matched(text: str) -> list[str]:
    query = INDEX.parse(text)
    return [k for k, r in ROWS.items() if query.matches(r)]


@pytest.mark.parametrize("text, expected", [
    # Each operator on a metric, compared as shown: 30.04% reads 30.0, which is not > 30.
    ("dead>30", ["b", "c"]),
    ("dead>=30", ["a", "b", "c"]),
    ("dead<45.2", ["a"]),
    ("dead<=45.2", ["a", "b"]),
    ("dead=45.2", ["b"]),
    ("dead!=45.2", ["a", "c", "d"]),  # a run without the value is "not 45.2"
    # Config keys, numbers as numbers (16 < 8 as text, not as numbers).
    ("sae.k=50", ["b", "c"]),
    ("sae.k>=16", ["a", "b", "c"]),
    ("sae.k>8", ["a", "b", "c"]),
    ("seed=0", ["a", "c"]),
    ("k<16", ["d"]),  # the unique dotted tail of sae.k
    # Text case-insensitively, equal rather than contained.
    ("method=topk", ["a", "b"]),
    ("method=l1", ["c"]),
    ("sae.method!=TOPK", ["c", "d"]),
    ("remedy!=none", ["a"]),
    ("status=failed", ["c"]),
    ("dataset>e", ["d"]),  # text ordering: "shapes3d" > "e" > "dsprites"
    # Aliases and labels of metrics.
    ("L0>16", ["b", "c"]),
    ("l0=8", []),  # d was never evaluated: no L0
    ("EV>=0.9", ["a", "b", "c"]),
    ("explained_variance>=0.9", ["a", "b", "c"]),
    ("mse=0.00123", ["a", "b", "c"]),
    ("dead=none", ["d"]),
    # Free text mixed with predicates: every word must hold.
    ("quick dead>40", ["b", "c"]),
    ("QUICK k50", ["b"]),
    ("topk sae.k<50", ["a", "d"]),  # "batchtopk" contains "topk"
    ("", ["a", "b", "c", "d"]),
])
def test_predicates_and_free_words(text, expected):
    assert matched(text) == expected
    assert INDEX.parse(text).problems == []


def test_a_metric_without_a_value_fails_every_comparison_but_not_equal():
    rows = {"x": row("x", "topk", 8, None, 0)}
    index = QueryIndex(rows.values())
    for op, holds in (("<", False), ("<=", False), (">", False), (">=", False), ("=", False), ("!=", True)):
        assert index.parse(f"dead{op}1").matches(rows["x"]) is holds, op


@pytest.mark.parametrize("text, problem", [
    ("dead>", "a value is needed after >"),
    ("sae.k>abc", "sae.k is a number"),
    ("dead<=lots", "dead is a number"),
    ("nosuch=1", "unknown key 'nosuch'"),
    ("=3", None),  # no key: free text
])
def test_a_malformed_predicate_filters_nothing_and_says_why(text, problem):
    query = INDEX.parse(text)
    if problem is None:
        assert query.problems == [] and query.words == [text]
        return
    assert len(query.problems) == 1 and problem in query.problems[0] and text in query.problems[0]
    assert matched(text) == list(ROWS)  # nothing filtered
    # The well-formed rest of the filter still holds.
    assert matched(f"{text} method=topk") == ["a", "b"]


def test_an_ambiguous_tail_is_a_problem():
    rows = [QueryRow("x", {}, {"vae": {"epochs": 3}, "sae": {"epochs": 4}})]
    query = QueryIndex(rows).parse("epochs=3")
    assert query.predicates == [] and "ambiguous" in query.problems[0] and "vae.epochs" in query.problems[0]


def test_the_config_is_flattened_once():
    r = row("x", "topk", 8, 0.1, 0)
    index = QueryIndex([r])
    flat = r.flat
    for text in ("sae.k=8", "sae.k=9", "seed=0"):
        index.parse(text).matches(r)
    assert r.flat is flat


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet="dead<>=!sa.k0123 abc-–λ/", max_size=20))
def test_parsing_never_raises(text):
    query = INDEX.parse(text)
    for r in ROWS.values():
        query.matches(r)


# ---------------------------------------------------------------------- groups


def test_groups_by_a_setting_and_their_mean_and_std_by_hand():
    dead = spec("dead_fraction")
    # Shown as 10.0, 20.0, 30.0: mean 20.0, sample std sqrt(((−10)² + 0 + 10²) / 2) = 10.0.
    assert mean_std(dead, [0.1, 0.2, 0.3, None]) == "20.0 ± 10.0"
    # EV to 3 digits: 0.9 and 0.95: mean 0.925, std sqrt(2 × 0.025² / 1) = 0.0354 → 0.035.
    assert mean_std(spec("explained_variance"), [0.9, 0.95]) == "0.925 ± 0.035"
    assert mean_std(dead, [0.25]) == "25.0"  # one run: its value alone
    assert mean_std(dead, [None, "n/a"]) == "–"

    flats = [r.flat for r in ROWS.values()]
    keys = differing_keys(flats)
    assert {"name", "seed", "sae.method", "sae.k", "sae.l1_coefficient", "data.dataset"} == set(keys)
    assert differing_keys([{"a": 1, "b": 2}, {"a": 1}]) == ["b"]  # lacking a key is a difference
    assert differing_keys([{"a": True}, {"a": 1}]) == ["a"]  # true is no 1
    groups = group_by(list(ROWS), {k: r.flat.get("sae.k") for k, r in ROWS.items()})
    assert groups == [(8, ["d"]), (16, ["a"]), (50, ["b", "c"])]
    groups = group_by(["x", "y", "z"], {"x": "b", "y": None, "z": "A"})
    assert groups == [("A", ["z"]), ("b", ["x"]), (None, ["y"])]  # text case-insensitively, none last
