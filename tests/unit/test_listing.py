"""Listing runs fast (the listing.json sidecar) gives the same records as parsing every config.yaml, and
a sidecar that is missing, stale or damaged falls back to that, never to a wrong value or a hang."""

import json
import os
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui import config as config_mod
from collapse_tui import store
from collapse_tui.store import layout, listing, records
from tests.tui.support import make_run, make_runs


def same(a: list[store.RunRecord], b: list[store.RunRecord]) -> None:
    """Records equal in everything a reader sees, types included (1 is not 1.0)."""
    assert [(r.path, r.error, r.status) for r in a] == [(r.path, r.error, r.status) for r in b]
    assert [json.dumps([r.config, r.summary]) for r in a] == [json.dumps([r.config, r.summary]) for r in b]


@pytest.fixture
def runs(tmp_path):
    made = make_runs(tmp_path)  # four runs written by RunWriter and a broken directory
    made["running"] = make_run(tmp_path, "quick-running", "20260101-120500", status="running")
    return tmp_path / "runs"


def test_the_writer_leaves_a_sidecar_and_the_fast_path_lists_the_same_records(runs):
    assert all((p / layout.LISTING_FILE).is_file() for p in runs.iterdir() if not p.name.endswith("broken"))
    same(store.list_runs(runs, include_unreadable=True), store.list_runs(runs, include_unreadable=True, fast=False))


def test_runs_written_by_this_version_list_without_parsing_any_yaml(runs, monkeypatch):
    def refuse(text, source=None):
        raise AssertionError("config.yaml parsed")

    (broken,) = runs.glob("*-broken")  # no sidecar: an earlier version's run, parsed
    (broken / layout.CONFIG_FILE).unlink()
    broken.rmdir()
    monkeypatch.setattr(records, "parse_yaml", refuse)
    listed = store.list_runs(runs, include_unreadable=True)
    assert len(listed) == 5 and not any(r.error for r in listed)


def test_runs_of_an_earlier_version_without_a_sidecar_list_the_same(runs):
    before = store.list_runs(runs, include_unreadable=True)
    for sidecar in runs.glob(f"*/{layout.LISTING_FILE}"):
        sidecar.unlink()
    same(store.list_runs(runs, include_unreadable=True), before)


def test_a_config_edited_after_the_run_is_read_as_edited(runs):
    run = next(runs.glob("*quick-topk-k8"))
    data = yaml.safe_load((run / layout.CONFIG_FILE).read_text())
    data["sae"]["k"] = 9
    (run / layout.CONFIG_FILE).write_text(yaml.safe_dump(data, sort_keys=False))
    assert store.load_run(run).config["sae"]["k"] == 9
    data["seed"] = "xyz"  # and damage in it is found as before
    (run / layout.CONFIG_FILE).write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ValueError, match="config.yaml: seed"):
        store.load_run(run)


def test_a_config_checked_by_other_code_is_checked_again(tmp_path, monkeypatch):
    run = make_run(tmp_path, "a")
    config = store.load_run(run).config
    bad = {**config, "seed": "xyz"}
    text = yaml.safe_dump(bad, sort_keys=False).encode()
    monkeypatch.setattr(listing, "schema_fingerprint", lambda: "0" * 32)  # the code that wrote it
    (run / layout.CONFIG_FILE).write_bytes(text)
    (run / layout.LISTING_FILE).write_bytes(listing.make_listing(text, bad, checked=True))
    assert listing.read_listing((run / layout.LISTING_FILE).read_bytes(), text) == (bad, True)
    monkeypatch.undo()  # this code is another
    with pytest.raises(ValueError, match="config.yaml: seed"):
        store.load_run(run)


_INTACT: dict[Path, bytes] = {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_sidecar_never_changes_a_record(tmp_path_factory, data):
    root = tmp_path_factory.getbasetemp() / "damaged-sidecar"
    if not root.exists():
        make_run(root, "a", sparsity=8)
    (run,) = (root / "runs").iterdir()
    sidecar = run / layout.LISTING_FILE
    good = _INTACT.setdefault(root, sidecar.read_bytes())
    damage = data.draw(st.sampled_from(["flip", "truncate", "insert", "replace"]))
    at = data.draw(st.integers(0, len(good) - 1))
    if damage == "flip":
        bad = good[:at] + bytes([good[at] ^ data.draw(st.integers(1, 255))]) + good[at + 1:]
    elif damage == "truncate":
        bad = good[:at]
    elif damage == "insert":
        bad = good[:at] + data.draw(st.binary(min_size=1, max_size=8)) + good[at:]
    else:
        bad = data.draw(st.binary(max_size=200))
    sidecar.write_bytes(bad)
    try:
        same([store.load_run(run)], [store.load_run(run, fast=False)])
    finally:
        sidecar.write_bytes(good)


# Configs as JSON has them (what RunWriter stores): string keys; null, bools, numbers, strings, lists.
_scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=12))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(config=st.dictionaries(st.text(max_size=10), _json, max_size=6))
def test_a_sidecar_gives_back_exactly_what_the_yaml_holds_or_is_not_made(config):
    text = yaml.safe_dump(config, sort_keys=False).encode("utf-8")
    made = listing.make_listing(text, config)
    if made is None:  # the YAML would not read back exactly: readers parse it, as before
        return
    back, checked = listing.read_listing(made, text)
    assert json.dumps(back) == json.dumps(config) == json.dumps(config_mod.parse_yaml(text.decode()))
    assert not checked
    assert listing.read_listing(made, text + b"\n# edited") is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("what", ["fifo", "dev-zero", "directory", "huge"])
def test_no_file_of_a_run_hangs_or_floods_the_listing(tmp_path, what):
    run = make_run(tmp_path, "a")
    expected = store.load_run(run, fast=False)

    def spoil(path: Path) -> None:
        path.unlink()
        if what == "fifo":
            os.mkfifo(path)
        elif what == "dev-zero":
            path.symlink_to("/dev/zero")
        elif what == "directory":
            path.mkdir()
        else:
            path.write_bytes(b" " * (70 << 20))

    def listed() -> list[store.RunRecord]:
        result = []
        worker = threading.Thread(target=lambda: result.append(store.list_runs(run.parent, include_unreadable=True)),
                                  daemon=True)
        worker.start()
        worker.join(20)
        assert result, "listing hung"
        return result[0]

    spoil(run / layout.LISTING_FILE)  # the sidecar: ignored, the YAML read instead
    same(listed(), [expected])
    spoil(run / layout.SUMMARY_FILE)
    (record,) = listed()
    assert record.status == "unreadable" and layout.SUMMARY_FILE in record.error and "\n" not in record.error
    spoil(run / layout.CONFIG_FILE)
    (record,) = listed()
    assert record.status == "unreadable" and layout.CONFIG_FILE in record.error and "\n" not in record.error


def test_read_bounded(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert store.read_bounded(path, 3) == b"abc"
    with pytest.raises(ValueError, match="more than"):
        store.read_bounded(path, 2)
    with pytest.raises(ValueError, match="not a regular file"):
        store.read_bounded(tmp_path, 10)
    with pytest.raises(FileNotFoundError):
        store.read_bounded(tmp_path / "missing", 10)
