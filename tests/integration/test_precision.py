"""The precision Keras computes in (floatx) is recorded with each run, keys the VAE cache when it is not
float32, and one the tool cannot train in is refused in one line before anything trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import keras
import pytest

from collapse_tui import events as ev
from collapse_tui import store
from collapse_tui.config import validate
from collapse_tui.engine import backend_check
from collapse_tui.engine.preflight import preflight
from collapse_tui.engine.runner import Engine
from collapse_tui.engine.vae_phase import vae_key
from tests.helpers import tiny_config

DATA = "dsprites-procedural-v2"
FLOAT32_KEY = "4789ad4be04be107"  # a default config's VAE key from before precision was keyed


@contextmanager
def floatx(value: str, policy: str | None = None):
    """Keras' floatx set to ``value`` and its dtype policy to ``policy`` (default: ``value``, as a process
    whose keras.json names ``value`` has it; a policy is fixed once a process has built a layer)."""
    before = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(value)
    keras.config.set_dtype_policy(policy or value)
    try:
        yield
    finally:
        keras.config.set_floatx(before[0])
        keras.config.set_dtype_policy(before[1])


def jax_x64() -> bool:
    if keras.backend.backend() != "jax":
        return False
    import jax

    return bool(jax.config.read("jax_enable_x64"))


def test_float32_keeps_its_key_and_other_precisions_key_their_own_vae():
    assert keras.config.floatx() == "float32"
    assert vae_key(validate({}), DATA) == vae_key(validate({}), DATA, "float32") == FLOAT32_KEY
    with floatx("float64"):
        in_float64 = vae_key(validate({}), DATA)
    assert in_float64 == vae_key(validate({}), DATA, "float64") != FLOAT32_KEY
    assert vae_key(validate({}), DATA, "float16") not in (FLOAT32_KEY, in_float64)


@pytest.mark.parametrize("value", ["float16", "bfloat16"])
def test_a_precision_the_tool_cannot_train_in_is_refused_in_one_line(tmp_path, value):
    cfg = validate(tiny_config(tmp_path))
    with floatx(value):
        problems = preflight([cfg])
        assert not (tmp_path / "runs").exists(), "a refused start leaves nothing behind"
        events = []
        result = Engine().run(cfg, [events.append])  # a run started without the preflight
    (line,) = problems
    assert f"floatx is '{value}'" in line and "keras.json" in line and '"floatx": "float32"' in line
    assert result.status == "failed" and line in result.summary["reason"]
    assert not [e for e in events if isinstance(e, ev.EpochEnd)], "refused before anything trains"
    assert not list((tmp_path / "models").glob("*"))


@pytest.mark.backend
def test_float64_is_recorded_and_trains_its_own_vae(tmp_path):
    data = tiny_config(tmp_path, sae={"epochs": 1}, eval={"every": 0})
    with floatx("float64"):
        problems = preflight([validate(data)])
        wide = Engine().run(validate(data))
    if keras.backend.backend() == "jax" and not jax_x64():
        (line,) = problems  # JAX would compute it in float32 while Keras calls it float64
        assert "JAX_ENABLE_X64=1" in line and "float64" in line
        assert wide.status == "failed" and line in wide.summary["reason"]
        return
    assert problems == [] and wide.status == "ok", wide.summary.get("reason")
    events = []
    narrow = Engine().run(validate(data), [events.append])
    assert narrow.status == "ok"
    assert sum(isinstance(e, ev.EpochEnd) and e.phase == "vae" for e in events) == 1, "its own VAE, trained"
    assert not [e for e in events if isinstance(e, ev.Message) and e.level == "warning"]
    assert wide.summary["vae_model"] != narrow.summary["vae_model"]
    recorded = [store.load_run(r.run_dir).config["environment"]["precision"] for r in (wide, narrow)]
    assert recorded == ["float64", "float32"]


def test_a_mixed_policy_set_in_code_is_refused_naming_the_policy(tmp_path):
    with floatx("float32", policy="mixed_float16"):
        (line,) = preflight([validate(tiny_config(tmp_path))])
    assert line == ("Keras' dtype policy is 'mixed_float16' (keras.config.set_dtype_policy), which collapse-tui cannot "
                    'train in: set the policy to "float32" (or "float64")')


def test_keras_json_with_a_floatx_keras_cannot_load_is_refused_before_keras(tmp_path):
    (tmp_path / "keras.json").write_text(json.dumps({"floatx": "bfloat16"}))
    env = {**os.environ, "KERAS_HOME": str(tmp_path)}
    env.pop("KERAS_BACKEND", None)
    refused = subprocess.run([sys.executable, "-m", "collapse_tui", "--batch", "quick", "--dry-run"],
                             capture_output=True, text=True, env=env, timeout=120, cwd=Path(__file__).parents[2])
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [
        f"collapse-tui: {tmp_path / 'keras.json'} sets floatx 'bfloat16', which Keras cannot load with: "
        'set "floatx": "float32" there']


def test_keras_json_floatx_keras_loads_with_is_left_to_the_preflight(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    for value in ("float16", "float32", "float64"):
        (tmp_path / "keras.json").write_text(json.dumps({"floatx": value}))
        assert backend_check.backend_problem() is None, value
