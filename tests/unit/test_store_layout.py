"""The store's layout module is the only place that names the files and folders the tool writes."""

import ast
from pathlib import Path

import pytest

import collapse_tui
from collapse_tui.store import layout

ROOT = Path(collapse_tui.__file__).parent
LAYOUT = ROOT / "store" / "layout.py"
# The names layout gives, and the pieces of the names it builds (a VAE's file: vae-<key>.keras).
NAMES = {value for key, value in vars(layout).items() if key.isupper() and isinstance(value, str)}
PIECES = {"vae-", ".keras", ".checkpoint.npz", ".lock", ".npz", ".jsonl"}
# Strings that look like a layout name but are not one.
NOT_LAYOUT = {
    ("collapse_tui/tui/screens/configure.py", "path/to/config.yaml"),  # a placeholder: the user's own config
    ("collapse_tui/engine/backend_check.py", ".keras"),  # Keras' own home directory (~/.keras), not ours
    # The kinds of activations file a user brings (read, never written under a run, sweep or models dir).
    ("collapse_tui/config/vocabulary.py", ".npz"),
    # The kind of model file a user brings for sae.model (read, never written).
    ("collapse_tui/config/vocabulary.py", ".keras"),
}


def docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def names_spelled(path: Path) -> list[tuple[int, str]]:
    """Each string in ``path``'s code (docstrings aside: they may describe a layout) that is a file name
    of the layout, ends in one (``.../config.yaml``), or is a piece of one (f-string parts included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            value = node.value
            if value in NAMES or value in PIECES or any(value.endswith("/" + name) for name in NAMES):
                found.append((node.lineno, value))
    return found


def test_only_the_layout_names_the_files_of_runs_sweeps_and_models():
    spelled = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == LAYOUT:
            continue
        rel = path.relative_to(ROOT.parent).as_posix()
        spelled += [f"{rel}:{line}: {value!r}" for line, value in names_spelled(path)
                    if (rel, value) not in NOT_LAYOUT]
    assert spelled == [], "file names spelled outside collapse_tui/store/layout.py (use its constants)"


def test_the_scan_finds_names_in_every_form(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text('"""Writes sae.keras and summary.json (a docstring: fine)."""\n'
                      'A = "summary.json"\n'
                      'def f(d, key):\n    """neurons.npz"""\n    return d / f"vae-{key}.keras", d / "x/plan.json"\n')
    assert sorted(names_spelled(source)) == [(2, "summary.json"), (5, ".keras"), (5, "vae-"), (5, "x/plan.json")]


def test_every_allowance_is_still_needed():
    """An entry whose module no longer spells the name must go (the allowance must not outlive it)."""
    for rel, value in NOT_LAYOUT:
        path = ROOT.parent / rel
        if path.exists():
            assert value in {v for _, v in names_spelled(path)}, f"{rel} no longer spells {value!r}: drop it"


def test_layout_paths(tmp_path):
    assert layout.run_file(tmp_path, layout.SUMMARY_FILE) == tmp_path / "summary.json"
    with pytest.raises(ValueError):
        layout.run_file(tmp_path, "notes.txt")
    with pytest.raises(ValueError):
        layout.sweep_file(tmp_path, layout.SUMMARY_FILE)
    assert layout.sweep_file(tmp_path, layout.RESULTS_MD) == tmp_path / "results.md"
    assert layout.sweep_file(tmp_path, layout.PAIRED_CSV) == tmp_path / "paired.csv"
    assert layout.sweeps_dir(tmp_path) == tmp_path / "sweeps"
    assert layout.runs_dir_of_sweep(tmp_path / "sweeps" / "s") == tmp_path
    assert layout.task_file(tmp_path, 3) == tmp_path / "tasks" / "3.json"
    assert layout.vae_model(tmp_path, "ab") == tmp_path / "vae-ab.keras"
    assert layout.vae_checkpoint(tmp_path, "ab") == tmp_path / "vae-ab.checkpoint.npz"
    assert layout.vae_lock(tmp_path, "ab") == tmp_path / "vae-ab.lock"
    assert layout.vae_model(tmp_path, "ab").with_suffix(".lock") == layout.vae_lock(tmp_path, "ab")
    tmp = layout.model_temporary(tmp_path / "sae.keras", 123)
    assert tmp.parent == tmp_path and tmp.name.startswith(".") and layout.temporary_pid(tmp) == 123
    assert layout.temporary_pid(tmp_path / ".summary.json.abc") is None
    assert not layout.is_run_entry("sweeps") and not layout.is_run_entry(".x") and layout.is_run_entry("2026-a")
    assert layout.stamped_name("q", 0.0, 2).endswith("-q-2")


def test_every_store_module_is_small_and_says_what_it_is_for():
    for path in sorted((ROOT / "store").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 500, path.name
        assert ast.get_docstring(ast.parse(text)), path.name


def test_a_vae_models_key_is_read_from_its_file_name_anywhere():
    assert layout.vae_model_key(layout.vae_model("/somewhere/models", "ab12")) == "ab12"
    assert layout.vae_model_key("models/vae-ab12.keras") == "ab12"
    for other in ("memory", "models/sae.keras", "vae-.keras", layout.vae_checkpoint("m", "ab12"), ""):
        assert layout.vae_model_key(other) is None, other
