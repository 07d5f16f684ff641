"""The generated reference pages (docs/reference/) match the code they are generated from, and show what
the schema and the metric specs declare."""

import html
import importlib.util
from pathlib import Path

import annotated_types
import pytest
from pydantic import BaseModel

from collapse_tui import config
from collapse_tui.metrics import specs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generator():
    # docs/ is no package: load the script the way `python docs/generate_reference.py` runs it.
    location = ROOT / "docs" / "generate_reference.py"
    spec = importlib.util.spec_from_file_location("generate_reference", location)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaf_fields(model: type[BaseModel], prefix: str = ""):
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _leaf_fields(info.annotation, f"{prefix}{name}.")
        else:
            yield prefix + name, info


def _row(page: str, key: str) -> list[str]:
    """The cells of the table row whose first cell is ``key``, as a reader sees them (entities decoded)."""
    line = next(line for line in page.splitlines() if line.startswith(f"| `{key}` |"))
    return [html.unescape(c.strip()) for c in line.strip("|").split(" | ")]


def test_the_committed_pages_are_what_the_code_generates(generator):
    expected = generator.pages()
    assert set(expected) == {ROOT / "docs" / "reference" / "configs.md", ROOT / "docs" / "reference" / "metrics.md"}
    stale = generator.stale(expected)
    assert stale == [], f"out of date, run `python docs/generate_reference.py`: {[str(p) for p in stale]}"


def test_the_pages_are_the_same_every_time(generator):
    assert generator.pages() == generator.pages()


def test_every_schema_field_has_a_row(generator):
    page = generator.configs_page()
    keys = [key for key, _info in _leaf_fields(config.RunConfig)]
    assert len(keys) == len(config.field_docs())
    assert [k for k in keys if f"| `{k}` |" not in page] == []


def test_the_row_of_sae_k_shows_the_schemas_default_and_bounds(generator):
    info = config.SAEConfig.model_fields["k"]
    ge = next(m.ge for m in info.metadata if isinstance(m, annotated_types.Ge))
    le = next(m.le for m in info.metadata if isinstance(m, annotated_types.Le))
    key, kind, default, bounds, description = _row(generator.configs_page(), "sae.k")
    assert (key, kind) == ("`sae.k`", "int")
    assert default == f"`{info.default}`"
    assert bounds == f"≥ {ge}, ≤ {le}"
    assert description == info.description


def test_a_literal_field_lists_its_choices(generator):
    kind = _row(generator.configs_page(), "sae.method")[1]
    assert kind == "one of " + ", ".join(config.SPARSITY_METHODS)


def test_every_metric_spec_has_a_description_and_a_row(generator):
    page = generator.metrics_page()
    assert [s.key for s in specs.SPECS if not s.description] == []
    for s in specs.SPECS:
        cells = _row(page, s.key)
        assert cells[1] == s.label and cells[2] == f"`{s.csv_name}`" and cells[-1] == s.description


def test_check_exits_1_naming_a_stale_page_and_writes_nothing(generator, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(generator, "ROOT", tmp_path)
    monkeypatch.setattr(generator, "REFERENCE", tmp_path / "docs" / "reference")
    assert generator.main(["--check"]) == 1
    assert "configs.md" in capsys.readouterr().err
    assert not (tmp_path / "docs").exists()
    assert generator.main([]) == 0 and generator.main(["--check"]) == 0
