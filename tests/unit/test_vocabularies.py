"""Each vocabulary of the package (datasets, phases, sparsity labels, dotted keys) is defined once, and
every module that needs it reads that one definition; quiet_native_logs is safe from any thread."""

from __future__ import annotations

import ast
import collections
import os
import threading
from pathlib import Path

import pytest

import collapse_tui
from collapse_tui import config, events
from collapse_tui.config import ConfigError, flatten, set_dotted, sparsity_label

ROOT = Path(collapse_tui.__file__).parent


def _sources() -> dict[str, ast.Module]:
    return {str(path.relative_to(ROOT.parent)): ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(ROOT.rglob("*.py"))}


def _string_literal(node: ast.AST) -> frozenset[str] | None:
    """The strings of a tuple, list or set literal, or a dict literal's keys: 3 or more, all strings."""
    items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None) \
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else None
    if items and len(items) >= 3 and all(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items):
        return frozenset(i.value for i in items)
    return None


def spelt_twice(sources: dict[str, ast.Module]) -> list[str]:
    """Each set of 3+ strings (a tuple, a Literal's choices, a dict's keys...) that more than one module
    spells out: a vocabulary defined twice, which drifts apart the day one of them changes."""
    where = collections.defaultdict(set)
    for path, tree in sources.items():
        for node in ast.walk(tree):
            words = _string_literal(node)
            if words:
                where[words].add(path)
    return sorted(f"{sorted(words)}: {', '.join(sorted(paths))}" for words, paths in where.items() if len(paths) > 1)


def test_no_vocabulary_is_spelt_in_two_modules():
    assert spelt_twice(_sources()) == []


def test_the_check_catches_a_vocabulary_spelt_twice():
    sources = {
        "events.py": ast.parse('PHASES = ("data", "vae", "codes", "sae", "evaluate")'),
        "tui/state.py": ast.parse('PHASES = ["data", "vae", "codes", "sae", "evaluate"]\nX = ("a", "b")'),
        "config.py": ast.parse('S = Literal["auto", "official", "tfds"]\nD = {"a": 1, "b": 2}'),
        "data.py": ast.parse('SOURCES = {"auto": 1, "official": 2, "tfds": 3}\nD = ("a", "b")'),
    }
    assert spelt_twice(sources) == [
        "['auto', 'official', 'tfds']: config.py, data.py",
        "['codes', 'data', 'evaluate', 'sae', 'vae']: events.py, tui/state.py",
    ]


def test_shared_functions_are_defined_once():
    homes = {"flatten": "collapse_tui/config/dotted.py", "set_dotted": "collapse_tui/config/dotted.py",
             "sparsity_label": "collapse_tui/config/vocabulary.py",
             "quiet_native_logs": "collapse_tui/engine/native_logs.py"}
    defined = collections.defaultdict(list)
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = node.name.lstrip("_")
                if name in homes and not (name == "sparsity_label" and path.endswith("tui/screens/run.py")):
                    defined[name].append(path)
    assert dict(defined) == {name: [home] for name, home in homes.items()}
    # the run screen's sparsity_label(state) only reads the state: its text is config's
    from collapse_tui.tui.screens import run

    assert run.sparsity_label(type("S", (), {"sparsity": 4, "method": "topk"})()) == "k = 4"
    assert run.sparsity_label(type("S", (), {"sparsity": None, "method": "l1"})()) == "–"


# --------------------------------------------------------------------------- datasets

def test_the_data_package_reads_the_configs_datasets():
    from collapse_tui import data
    from collapse_tui.data.grid import GRIDS

    assert data.DATASET_NAMES is config.DATASET_NAMES
    assert data.SOURCES is config.DATA_SOURCES
    assert set(data._REGISTRY) == set(config.DATASET_NAMES)
    # the sizes the schema checks against are those of the grids the data package renders
    assert {name: grid.num_images for name, grid in GRIDS.items()} == config.DATASET_SIZES


@pytest.fixture
def toy_dataset():
    from collapse_tui import data

    def factory():
        raise AssertionError("not built here")

    data.register("toy", "procedural", factory, size=1000)
    yield "toy"
    data._REGISTRY.pop("toy", None)
    config.DATASET_SIZES.pop("toy", None)


def test_a_registered_dataset_is_one_the_schema_accepts(toy_dataset):
    from collapse_tui import data
    from collapse_tui.tui.schema import form_fields

    assert "toy" in config.DATASET_NAMES and "toy" in data.DATASET_NAMES and data.sources("toy") == ("procedural",)
    cfg = config.validate({"data": {"dataset": "toy", "n_train": 500}, "eval": {"n_samples": 400}})
    assert cfg.data.dataset == "toy"
    with pytest.raises(ConfigError) as err:
        config.validate({"data": {"dataset": "toy", "n_train": 2000}})
    assert err.value.errors == ["data.n_train: 2000 exceeds the 1000 images of toy"]
    field = next(f for f in form_fields() if f.path == "data.dataset")
    assert field.kind == "choice" and field.choices == ("dsprites", "shapes3d", "toy", "images", "activations")
    assert ("data.dataset", "one of dsprites, shapes3d, toy, images, activations") in {row[:2] for row in config.field_docs()}


def test_an_unknown_dataset_is_refused_naming_the_known_ones(toy_dataset):
    with pytest.raises(ConfigError) as err:
        config.validate({"data": {"dataset": "mnist"}})
    assert err.value.errors == ["data.dataset: Input should be 'dsprites', 'shapes3d', 'toy', 'images' or 'activations' "
                                "(got 'mnist')"]


def test_a_new_dataset_needs_its_size():
    from collapse_tui import data

    with pytest.raises(ValueError, match="register it with its size"):
        data.register("sizeless", "procedural", lambda: None)
    with pytest.raises(ValueError, match="positive number of images"):
        data.register("sizeless", "procedural", lambda: None, size=0)
    assert "sizeless" not in config.DATASET_NAMES and "sizeless" not in data._REGISTRY


def test_the_form_offers_the_builtin_datasets_and_sources():
    from collapse_tui.tui.schema import form_fields

    fields = {f.path: f for f in form_fields()}
    assert fields["data.dataset"].choices == ("dsprites", "shapes3d", "images", "activations")  # a user's files last
    assert fields["data.source"].choices == config.DATA_SOURCES == ("auto", "official", "tfds", "procedural")


def test_a_fields_own_check_names_the_field_once(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as err:
        config.validate({"data": {"path": str(fifo)}})
    assert err.value.errors == [f"data.path: {fifo} is neither a file nor a directory"]


# --------------------------------------------------------------------------- phases, flatten, set_dotted, labels

def test_the_tui_follows_the_events_phases():
    from collapse_tui.tui import feeds, state

    assert not hasattr(state, "PHASES") and not hasattr(feeds, "PHASES")
    assert "ev.PHASES" in Path(feeds.__file__).read_text(encoding="utf-8")  # the ETA walks events' phases
    assert events.PHASES == ("data", "vae", "codes", "sae", "evaluate")


def test_flatten_gives_the_dotted_keys_of_the_leaves():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "f": None}) == {"a.b": 1, "a.c.d": [1, 2], "f": None}
    assert flatten({}) == {} and flatten({"x": {}}) == {}  # an empty section sets nothing
    assert flatten({"k": 3}, "sae.") == {"sae.k": 3}


def test_flatten_is_the_results_table_and_the_runs_tables():
    from collapse_tui import report
    from collapse_tui.report import rows
    from collapse_tui.tui import runs_table

    assert rows.flatten is flatten and runs_table.flatten is flatten
    # an empty section in a stored config leaves the defaults (the report) as they are
    assert report.unused_settings({"sae": {}}) == report.unused_settings({})


def test_set_dotted_makes_sections_and_refuses_a_value_on_the_way():
    data = {"sae": None}
    set_dotted(data, "sae.schedule.kind", "linear")
    set_dotted(data, "seed", 3)
    assert data == {"sae": {"schedule": {"kind": "linear"}}, "seed": 3}
    with pytest.raises(ConfigError) as err:
        set_dotted(data, "seed.x", 1)
    assert err.value.errors == ["seed.x: seed is not a section"]


def test_the_tui_sets_dotted_keys_with_configs_setter():
    from collapse_tui.tui import schema
    from collapse_tui.tui.screens import configure

    assert schema.set_dotted is set_dotted and configure.set_dotted is set_dotted
    assert schema.merged_with_defaults({"sae": {"k": 8}})["sae"]["k"] == 8


@pytest.mark.parametrize("method, value, spaced, text", [
    ("topk", 50, False, "k=50"), ("batchtopk", 50.0, False, "k=50"), ("topk", 100_000, False, "k=100000"),
    ("l1", 0.3, False, "λ=0.3"), ("jumprelu", 1e-3, False, "λ=0.001"), ("l1", 1e-5, False, "λ=1e-05"),
    ("topk", 4, True, "k = 4"), ("l1", 0.03, True, "λ = 0.03"),
])
def test_sparsity_label(method, value, spaced, text):
    assert sparsity_label(method, value, spaced=spaced) == text


def test_every_place_writes_the_sparsity_label_the_same():
    from collapse_tui.engine.sae_phase import SAEPhase
    from collapse_tui.report.tables import Row, _sparsity

    for method, sparsity in (("topk", 50.0), ("l1", 0.3)):
        row = Row(dataset="dsprites", method=method, remedy="none", sparsity=sparsity)
        assert _sparsity(row) == sparsity_label(method, sparsity)
    for sae in ({"method": "topk", "k": 50}, {"method": "l1", "l1_coefficient": 0.3}):
        cfg = config.validate({"sae": sae})
        phase = SAEPhase.__new__(SAEPhase)
        phase.cfg = cfg
        assert phase.label() == sparsity_label(cfg.sae.method, cfg.sparsity)


# --------------------------------------------------------------------------- quiet_native_logs

def _fd2() -> tuple[int, int]:
    st = os.fstat(2)
    return st.st_dev, st.st_ino


def test_quiet_native_logs_nested_in_one_thread():
    from collapse_tui.engine import native_logs
    from collapse_tui.engine.environment import quiet_native_logs

    assert quiet_native_logs is native_logs.quiet_native_logs
    original = _fd2()
    with quiet_native_logs():
        held = _fd2()
        assert held != original
        with quiet_native_logs():
            assert _fd2() == held  # the same hold: nothing swapped twice
            os.write(2, b"nested chatter\n")
        assert _fd2() == held  # the inner block leaves the hold to the outer
    assert _fd2() == original and native_logs._depth == 0


def test_quiet_native_logs_from_many_threads_restores_the_original_fd_2_once():
    from collapse_tui.engine import native_logs
    from collapse_tui.engine.native_logs import quiet_native_logs

    original = _fd2()
    n = 8
    inside = threading.Barrier(n)
    seen, errors = [], []

    def work(i: int) -> None:
        try:
            with quiet_native_logs():
                os.write(2, f"native chatter {i}\n".encode())
                inside.wait(timeout=30)  # all inside the hold at once
                seen.append(_fd2())
                with quiet_native_logs():  # nested inside a shared hold
                    seen.append(_fd2())
                inside.wait(timeout=30)
            # leaving one at a time, in whatever order
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for _round in range(3):
        seen.clear()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors and not any(t.is_alive() for t in threads)
        assert len(set(seen)) == 1 and original not in seen  # one hold, shared by all
        assert _fd2() == original and native_logs._depth == 0 and native_logs._saved is None


def test_quiet_native_logs_shows_what_it_held_when_the_block_raises(capfd):
    from collapse_tui.engine.native_logs import quiet_native_logs

    original = _fd2()
    with quiet_native_logs():
        os.write(2, b"quiet\n")
    with pytest.raises(RuntimeError):
        with quiet_native_logs():
            os.write(2, b"why it failed\n")
            raise RuntimeError("load failed")
    assert _fd2() == original
    assert capfd.readouterr().err == "why it failed\n"


def test_a_block_raising_while_another_thread_holds_shows_its_lines_at_once(capfd):
    from collapse_tui.engine.native_logs import quiet_native_logs

    original = _fd2()
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with quiet_native_logs():
            entered.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(timeout=30)
    with pytest.raises(RuntimeError):
        with quiet_native_logs():
            os.write(2, b"why it failed\n")
            raise RuntimeError("load failed")
    assert _fd2() != original  # the other thread still holds fd 2
    release.set()
    thread.join(timeout=30)
    assert _fd2() == original
    assert capfd.readouterr().err == "why it failed\n"
