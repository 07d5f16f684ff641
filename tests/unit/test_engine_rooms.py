"""How the engine is laid out: fault injection behind one module that production code calls in one place,
and no process-wide setting changed by importing the runner."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import collapse_tui
from collapse_tui.engine import faults
from collapse_tui.events import EpochEnd, Evaluation, Message, PhaseStarted

ROOT = Path(collapse_tui.__file__).parent
FAULTS = ROOT / "engine" / "faults.py"


def sources() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for path in sorted(ROOT.rglob("*.py"))}


def test_only_the_fault_module_reads_the_fault_variables():
    names = (faults.FAULT_PHASE_ENV, faults.FAULT_ONCE_ENV, "COLLAPSE_TUI_FAULT")
    readers = [str(path.relative_to(ROOT)) for path, text in sources().items()
               if path != FAULTS and any(name in text for name in names)]
    assert readers == []


def test_production_code_calls_the_fault_module_in_exactly_one_place():
    calls = []
    for path, text in sources().items():
        if path == FAULTS:
            continue
        tree = ast.parse(text)
        imported = [node for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and (node.module == "collapse_tui.engine.faults"
                                                             or any(a.name == "faults" for a in node.names))
                    or isinstance(node, ast.Import) and any(a.name.endswith(".faults") for a in node.names)]
        if imported:
            calls += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                      and isinstance(node.func.value, ast.Name) and node.func.value.id == "faults"]
            assert all(isinstance(node, ast.ImportFrom) and node.module == "collapse_tui.engine"
                       and [a.name for a in node.names] == ["faults"] for node in imported), path
    assert len(calls) == 1 and calls[0].startswith(os.path.join("engine", "runner.py")), calls


@pytest.mark.parametrize("event, points", [
    (PhaseStarted(phase="vae"), ("vae",)),
    (EpochEnd(phase="sae", epoch=3, epochs=4, logs={}, seconds=0.1), ("sae:3",)),
    (Evaluation(phase="sae", epoch=6, metrics={}), ("evaluation:6",)),
    (Evaluation(phase="vae", epoch=0, metrics={}), ()),
    (Message(text="hello"), ()),
])
def test_the_points_a_fault_can_name(event, points):
    assert faults.fault_points(event) == points


def test_no_fault_asked_nothing_happens(monkeypatch):
    monkeypatch.delenv(faults.FAULT_PHASE_ENV, raising=False)
    faults.crash_if_asked(PhaseStarted(phase="vae"))
    monkeypatch.setenv(faults.FAULT_PHASE_ENV, "sae:2")  # another point: still alive
    faults.crash_if_asked(PhaseStarted(phase="vae"))


def test_a_fault_asked_once_kills_only_the_process_that_claims_it(tmp_path):
    once = tmp_path / "once"
    code = ("from collapse_tui.engine import faults\nfrom collapse_tui.events import PhaseStarted\n"
            "faults.crash_if_asked(PhaseStarted(phase='vae'))\nprint('alive')\n")
    env = dict(os.environ, **{faults.FAULT_PHASE_ENV: "vae", faults.FAULT_ONCE_ENV: str(once)})
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                           cwd=ROOT.parent)
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                           cwd=ROOT.parent)
    assert first.returncode == -9 and once.exists()  # SIGKILL
    assert again.returncode == 0 and again.stdout.strip() == "alive", again.stderr


def test_importing_the_runner_leaves_logging_alone():
    code = ("import logging\nlogging.getLogger('tensorflow').setLevel(7)\n"
            "import collapse_tui.engine.runner as runner\n"
            "print(logging.getLogger('tensorflow').level)\n"
            "runner.Engine()\n"  # a run's engine quiets TensorFlow's Python warnings, as it did at import
            "print(logging.getLogger('tensorflow').level)\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=ROOT.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["7", "40"]
