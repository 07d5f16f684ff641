"""The backend is checked before Keras loads: a misspelt or missing one is one line and exit 2, not a
traceback from inside Keras; viewers that never train are not refused."""

import json
import os
import subprocess
import sys

import pytest

from collapse_tui.engine import backend_check


@pytest.fixture
def no_keras_json(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    return tmp_path


def test_a_backend_this_tool_does_not_run_on_is_named(no_keras_json, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "pytorch")
    problem = backend_check.backend_problem()
    assert "KERAS_BACKEND names the backend 'pytorch'" in problem and "tensorflow, jax, torch" in problem


def test_a_backend_whose_framework_is_missing_says_how_to_install_it(no_keras_json, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setattr(backend_check, "find_spec", lambda name: None)
    assert backend_check.backend_problem() == ("the jax backend (KERAS_BACKEND) is not installed: "
                                               "pip install 'collapse-tui[jax]', or choose another with --backend")
    monkeypatch.setattr(backend_check, "find_spec", lambda name: object())
    assert backend_check.backend_problem() is None


def test_keras_json_chooses_when_the_variable_is_unset_and_damage_falls_back(no_keras_json):
    assert backend_check.chosen_backend() == ("tensorflow", "the default")
    (no_keras_json / "keras.json").write_text(json.dumps({"backend": "jax", "floatx": "float32"}))
    assert backend_check.chosen_backend() == ("jax", "keras.json")
    for damaged in ("{torn", "[1, 2]", json.dumps({"backend": 5}), "\xff\xfe"):
        (no_keras_json / "keras.json").write_text(damaged, errors="surrogateescape")
        assert backend_check.chosen_backend() == ("tensorflow", "the default"), damaged
    (no_keras_json / "keras.json").unlink()
    os.mkfifo(no_keras_json / "keras.json")  # not a regular file: never opened (it would block)
    assert backend_check.chosen_backend() == ("tensorflow", "the default")


def test_the_command_line_refuses_before_keras_and_viewers_are_not_refused(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "pytorch"}
    batch = subprocess.run([sys.executable, "-m", "collapse_tui", "--batch", "quick", "--dry-run"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert batch.returncode == 2 and batch.stdout == ""
    assert batch.stderr.strip().splitlines() == [
        "collapse-tui: KERAS_BACKEND names the backend 'pytorch', which collapse-tui does not run on: use one of "
        "tensorflow, jax, torch (--backend or KERAS_BACKEND)"]
    table = subprocess.run([sys.executable, "-m", "collapse_tui", "--table", str(tmp_path)],
                           capture_output=True, text=True, env=env, timeout=120)
    assert "pytorch" not in table.stderr  # a table needs no backend
