"""The headless core must never pull in the UI libraries (the TUI and batch console depend on the core)."""

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import collapse_tui

UI_MODULES = {"collapse_tui.batch", "collapse_tui.cli", "collapse_tui.__main__"}


def core_modules():
    names = []
    for info in pkgutil.walk_packages(collapse_tui.__path__, "collapse_tui."):
        if info.name in UI_MODULES or info.name.startswith("collapse_tui.tui"):
            continue
        names.append(info.name)
    return names


def test_core_imports_neither_textual_nor_rich():
    modules = core_modules()
    assert {"collapse_tui.config", "collapse_tui.store", "collapse_tui.engine.runner",
            "collapse_tui.metrics", "collapse_tui.nn", "collapse_tui.data"} <= set(modules)
    # Keras itself loads a few rich modules (its model summary); what counts is that our core adds none.
    code = (
        "import importlib, sys\n"
        "import keras\n"
        "ui = lambda: {m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')}\n"
        "before = ui()\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(','.join(sorted(ui() - before | {m for m in ui() if m.startswith('textual')})))\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core modules imported UI libraries: {out.stdout.strip()}"


def test_core_sources_have_no_ui_imports():
    root = Path(collapse_tui.__file__).parent
    offenders = []
    for name in core_modules():
        rel = Path(*name.split(".")[1:])
        path = root / rel / "__init__.py" if (root / rel).is_dir() else root / rel.with_suffix(".py")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{name}: {n}" for n in names if n.split(".")[0] in ("rich", "textual")]
    assert offenders == []


def test_reading_runs_does_not_import_keras():
    # A run directory is read by front ends that should start fast: the store and events stay light.
    code = "import sys, collapse_tui.store, collapse_tui.config; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
