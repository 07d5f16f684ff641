"""``collapse-tui --export saelens RUN_DIR OUT_DIR``: a finished run's SAE written in SAELens' layout reads
back with the same codes; everything it cannot export is refused in one line, exit 2."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from collapse_tui import cli, store
from collapse_tui.config import validate
from collapse_tui.engine.runner import Engine
from collapse_tui.store.saelens import import_saelens
from tests.helpers import tiny_config

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    result = Engine().run(validate(tiny_config(tmp, sae={"normalization": "unit_norm"})))
    assert result.status == "ok", result.summary.get("reason")
    return result.run_dir


def test_an_exported_run_reads_back_with_its_codes(finished, tmp_path, capsys):
    out = tmp_path / "saelens"
    assert cli.main(["--export", "saelens", str(finished), str(out)]) == 0
    said = capsys.readouterr().out.strip()
    assert "\n" not in said and "cfg.json" in said and "topk" in said
    mine = keras.saving.load_model(finished / store.SAE_FILE, compile=False)
    theirs = import_saelens(out)
    x = np.random.default_rng(0).normal(size=(64, mine.input_dim)).astype("float32") * 3
    ours, read_back = mine.codes(x), theirs.codes(x)
    np.testing.assert_array_equal(ours > 0, read_back > 0)
    np.testing.assert_allclose(read_back, ours, rtol=1e-5, atol=1e-5)


def test_what_cannot_be_exported_is_refused_in_one_line(finished, tmp_path, capsys):
    no_sae = tmp_path / "no-sae"
    no_sae.mkdir()
    for name in ("config.yaml", "summary.json", "events.jsonl"):
        (no_sae / name).write_bytes((finished / name).read_bytes())
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for item in finished.iterdir():
        if item.is_file():
            (damaged / item.name).write_bytes(item.read_bytes())
    (damaged / store.SAE_FILE).write_bytes(b"PK\x03\x04 not a keras file")
    cases = [(["onnx", str(finished), str(tmp_path / "o")], "unknown format 'onnx'"),
             (["saelens", str(tmp_path / "missing"), str(tmp_path / "o")], "is not a run directory"),
             (["saelens", str(no_sae), str(tmp_path / "o")], "has no trained SAE"),
             (["saelens", str(finished), str(a_file)], "exists and is not a directory"),
             (["saelens", str(damaged), str(tmp_path / "o")], "not a readable Keras SAE")]
    for args, message in cases:
        assert cli.main(["--export", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and message in err, (args, err)
    assert not (tmp_path / "o").exists()
