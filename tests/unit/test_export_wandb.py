"""``collapse-tui --export wandb DIR OUT``: each run of a sweep becomes a W&B offline run under OUT (what
``wandb sync`` uploads) holding the run's config, its series at their steps and its final metrics; without
the optional wandb package the export is refused in one line naming the extra. Nothing reaches the
network: wandb runs offline, and a proxy that goes nowhere stands in for any connection it would try."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from collapse_tui import cli
from collapse_tui.store import layout, load_run, read_events
from tests.unit.export_world import RUNS, build_sweep, run_name

_BLOCK, _HEADER = 32768, 7  # the LevelDB log framing of a .wandb file: blocks of records, each a 7-byte header


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return build_sweep(tmp_path_factory.mktemp("world"))


def _export(args: list[str], capsys) -> tuple[int, str, str]:
    status = cli.main(["--export", "wandb", *map(str, args)])
    said = capsys.readouterr()
    return status, said.out.strip(), said.err.strip()


def test_without_wandb_the_export_is_refused_naming_the_extra(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if the extra were not installed
    status, said, err = _export([sweep, tmp_path / "wb"], capsys)
    assert status == 2 and said == ""
    assert "\n" not in err and "pip install 'collapse-tui[wandb]'" in err and "Traceback" not in err
    assert not (tmp_path / "wb").exists()


def _key(item) -> str:
    """An item's name: W&B keeps a name with slashes (``sae/eval/epoch``) as its parts."""
    return item.key or "/".join(item.nested_key)


def _records(path: Path) -> list:
    """The records of a W&B run file (``run-<id>.wandb``), as ``wandb sync`` reads them."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending, records = _HEADER, b"", []
    while position + _HEADER <= len(data):
        room = _BLOCK - position % _BLOCK
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        if room < _HEADER or (length == 0 and kind == 0):  # the padding at a block's end
            position += room
            continue
        pending += data[position + _HEADER:position + _HEADER + length]
        position += _HEADER + length
        if kind in (1, 4):  # a whole record, or the last part of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_each_run_is_an_offline_run_with_its_config_history_and_final_metrics(sweep, tmp_path, capsys,
                                                                              monkeypatch):
    pytest.importorskip("wandb")
    for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": tmp_path / "config",
                        "WANDB_CACHE_DIR": tmp_path / "cache", "WANDB_DATA_DIR": tmp_path / "data",
                        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    out = tmp_path / "wb"
    status, said, err = _export([sweep, out], capsys)
    assert status == 0 and "\n" not in said and "3 runs" in said and "wandb sync" in said, (said, err)
    offline = sorted(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(offline) == len(RUNS)
    by_name = {}
    for path in offline:
        records = _records(path)
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        by_name[run.display_name] = (run, records)
    for i, (name, method, _, seed, auxk) in enumerate(RUNS):
        run_dir = layout.runs_dir_of_sweep(sweep) / run_name(i)
        run, records = by_name[run_dir.name]
        assert run.run_group == sweep.name and list(run.tags) == ["ok"] and run.project == "collapse-tui"
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        assert config["seed"] == seed and config["sae"]["method"] == method
        assert config["sae"]["remedies"]["auxk"] is auxk
        rows = [{_key(item): json.loads(item.value_json) for item in r.history.item}
                for r in records if r.WhichOneof("record_type") == "history"]
        evaluations = {row["sae/eval/epoch"]: row["sae/eval/dead_fraction"] for row in rows if "sae/eval/epoch" in row}
        assert evaluations == {e.epoch: e.metrics["dead_fraction"] for e in read_events(run_dir)[0]
                               if e.kind == "evaluation" and e.phase == "sae"}
        losses = {row["sae/step/step"]: row["sae/step/loss"] for row in rows if "sae/step/loss" in row}
        assert losses == {e.done: e.logs["loss"] for e in read_events(run_dir)[0]
                          if e.kind == "progress" and e.phase == "sae" and e.logs and "loss" in e.logs}
        summary = {_key(item): json.loads(item.value_json) for r in records
                   if r.WhichOneof("record_type") == "summary" for item in r.summary.update}
        final = load_run(run_dir).summary["final"]
        assert summary["final/dead_fraction"] == final["dead_fraction"]
        assert summary["final/explained_variance"] == final["explained_variance"]
