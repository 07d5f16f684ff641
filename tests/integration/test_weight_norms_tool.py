"""docs/weight_norms.py: the medians it prints for a sweep's rows are the trained SAEs' own weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest

from collapse_tui import store
from collapse_tui.config import expand
from collapse_tui.engine.sweep import run_sweep
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def tool():
    spec = importlib.util.spec_from_file_location("weight_norms", ROOT / "docs" / "weight_norms.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rows_medians_are_those_of_the_runs_saes(tmp_path):
    data = tiny_config(tmp_path, sweep=[{"seed": [1, 2, 3]}])
    run_sweep(expand(data))
    (sweep_dir,) = (tmp_path / "runs" / "sweeps").iterdir()
    ((label, n, medians),) = tool().rows(sweep_dir)
    assert label == "topk none" and n == 3
    saes = [keras.saving.load_model(r.path / store.SAE_FILE, compile=False) for r in store.sweep_records(sweep_dir)]
    by_hand = [(np.linalg.norm(keras.ops.convert_to_numpy(s.b_dec)), np.median(keras.ops.convert_to_numpy(s.b_enc)),
                np.median(np.linalg.norm(keras.ops.convert_to_numpy(s.W_enc), axis=0))) for s in saes]
    assert medians == pytest.approx(tuple(np.median(np.array(by_hand), axis=0)), rel=1e-6)
