"""Imports point down only. Bottom up, the layers of the package are

    config, events, data | nn | metrics, store, report, engine, batch | tui, cli

(``|`` separates peers, which do not import each other). A module may import its own layer and the
layers below it; every import counts, including those deferred into a function.
"""

import ast
from pathlib import Path

import pytest

import collapse_tui

LAYERS = (("config",), ("events",), ("data", "nn", "metrics"), ("store",), ("report",), ("engine",),
          ("batch", "tui"), ("cli",), ("__main__",))
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str | None:
    """The layer part of ``collapse_tui.<part>[.…]``; None for anything outside the package (or the
    package's own ``__init__``, which imports nothing of it)."""
    pieces = module.split(".")
    if pieces[0] != "collapse_tui" or len(pieces) < 2:
        return None
    return pieces[1]


def imports_of(path: Path, module: str) -> set[str]:
    """Every module of the package that ``path`` (the source of ``module``) imports."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # `from collapse_tui import events` imports the module collapse_tui.events
            found |= {f"{base}.{a.name}" for a in node.names if base == "collapse_tui" and not a.name.startswith("__")}
    return {name for name in found if part_of(name)}


def violations(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for each import that points up, or sideways between peers."""
    bad = []
    for importer, imported in graph.items():
        src = part_of(importer)
        for target in sorted(imported):
            dst = part_of(target)
            if src is None or dst is None or src == dst:
                continue
            if src not in RANK or dst not in RANK:
                bad.append(f"{importer} -> {target} (not in the layer order)")
            elif RANK[dst] >= RANK[src]:
                bad.append(f"{importer} -> {target}")
    return bad


def package_graph() -> dict[str, set[str]]:
    """Each module of the package and what it imports, read from the sources (nothing is imported)."""
    root = Path(collapse_tui.__file__).parent
    graph = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        module = ".".join(parts)
        graph[module] = imports_of(path, module)
    return graph


def test_every_module_of_the_package_is_in_the_layer_order():
    parts = {part_of(name) for name in package_graph()} - {None}  # None: the package root
    assert parts <= set(RANK), f"modules outside the layer order: {sorted(parts - set(RANK))}"


def test_imports_point_down_only():
    graph = package_graph()
    assert "collapse_tui.engine.runner" in graph and "collapse_tui.store" in graph
    assert violations(graph) == []


@pytest.mark.parametrize("graph, expected", [
    # the loop this order rules out: the runner imports the store, which imported the engine's events
    ({"collapse_tui.engine.runner": {"collapse_tui.store"},
      "collapse_tui.store": {"collapse_tui.engine.events"}},
     ["collapse_tui.store -> collapse_tui.engine.events"]),
    ({"collapse_tui.report": {"collapse_tui.store", "collapse_tui.tui.state"}},
     ["collapse_tui.report -> collapse_tui.tui.state"]),
    # peers do not import each other; a layer imports itself freely
    ({"collapse_tui.nn.sae": {"collapse_tui.metrics", "collapse_tui.nn.layers", "collapse_tui.config"}},
     ["collapse_tui.nn.sae -> collapse_tui.metrics"]),
    ({"collapse_tui.tui.app": {"collapse_tui.batch"}}, ["collapse_tui.tui.app -> collapse_tui.batch"]),
    ({"collapse_tui.cli": {"collapse_tui.tui.app", "collapse_tui.batch", "collapse_tui.engine"}}, []),
])
def test_the_check_catches_upward_and_sideways_imports(graph, expected):
    assert violations(graph) == expected


def test_imports_are_read_from_every_form(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("import collapse_tui.store\nfrom collapse_tui import events as ev\n"
                      "def later():\n    from collapse_tui.engine.runner import Engine\n"
                      "from . import helpers\nimport numpy\n")
    assert imports_of(source, "collapse_tui.report") == {
        "collapse_tui.store", "collapse_tui.events", "collapse_tui.engine.runner", "collapse_tui.helpers"}
