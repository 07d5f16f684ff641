"""Imports point down only. Bottom up, the layers of the package are

    config | interrupts, events, data | nn | metrics, store, report, engine, batch | tui | interop, cli

(``|`` separates peers, which do not import each other). A module may import its own layer and the
layers below it; every import counts, including those deferred into a function.

Inside one part (a folder such as ``engine``, or one module), imports never go round in a circle: a
circle deferred into a function still ties its modules into one, which neither can be read, tested nor
split without the other, and it is one step from a partly initialised module at import time.
"""

import ast
from collections.abc import Collection
from pathlib import Path

import pytest

import collapse_tui

LAYERS = (("config", "interrupts"), ("events",), ("data", "nn", "metrics"), ("store",), ("report",), ("engine",),
          ("batch", "tui", "interop"), ("cli",), ("__main__",))
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str | None:
    """The layer part of ``collapse_tui.<part>[.…]``; None for anything outside the package (or the
    package's own ``__init__``, which imports nothing of it)."""
    pieces = module.split(".")
    if pieces[0] != "collapse_tui" or len(pieces) < 2:
        return None
    return pieces[1]


def imports_of(path: Path, module: str, modules: Collection[str] = ()) -> set[str]:
    """Every module of the package that ``path`` (the source of ``module``) imports. With ``modules``
    (the package's modules), ``from package import name`` counts as an import of ``package.name`` alone
    where that is a module (a submodule does not run its package's code for it), else of ``package``."""
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
            named = {f"{base}.{a.name}" for a in node.names if not a.name.startswith("__")}
            submodules = named & set(modules)
            found |= submodules
            if not modules or len(submodules) < len(node.names):
                found.add(base)
            # `from collapse_tui import events` imports the module collapse_tui.events
            found |= {name for name in named if base == "collapse_tui"}
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


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles among modules of one part: each a sorted list of the modules that import one
    another round (a strongly connected set of the graph's edges within a part), the circles sorted.
    A module importing itself (``from . import x`` in a package's ``__init__``) is no circle."""
    edges = {m: sorted(t for t in targets if t in graph and t != m and part_of(t) == part_of(m))
             for m, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return sorted(found)


def package_graph() -> dict[str, set[str]]:
    """Each module of the package and what it imports, read from the sources (nothing is imported)."""
    root = Path(collapse_tui.__file__).parent
    sources = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        sources[".".join(parts)] = path
    return {module: imports_of(path, module, sources) for module, path in sources.items()}


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


def test_no_imports_go_round_in_a_circle_inside_a_part():
    graph = package_graph()
    assert "collapse_tui.engine.environment" in graph and "collapse_tui.engine.distribution" in graph
    assert circles(graph) == []


@pytest.mark.parametrize("graph, expected", [
    # the circle this rules out: environment asked distribution for the devices, distribution asked
    # environment for quiet_native_logs (both deferred into functions)
    ({"collapse_tui.engine.environment": {"collapse_tui.engine.distribution"},
      "collapse_tui.engine.distribution": {"collapse_tui.engine.environment", "collapse_tui.config"},
      "collapse_tui.config": set()},
     [["collapse_tui.engine.distribution", "collapse_tui.engine.environment"]]),
    # round three modules, and a package's __init__ with one of its modules; a chain is no circle
    ({"collapse_tui.nn.a": {"collapse_tui.nn.b"}, "collapse_tui.nn.b": {"collapse_tui.nn.c"},
      "collapse_tui.nn.c": {"collapse_tui.nn.a"}, "collapse_tui.nn.d": {"collapse_tui.nn.a"},
      "collapse_tui.data": {"collapse_tui.data.cache"}, "collapse_tui.data.cache": {"collapse_tui.data"}},
     [["collapse_tui.data", "collapse_tui.data.cache"], ["collapse_tui.nn.a", "collapse_tui.nn.b", "collapse_tui.nn.c"]]),
    ({"collapse_tui.engine.runner": {"collapse_tui.engine.sae_phase", "collapse_tui.engine"},
      "collapse_tui.engine.sae_phase": {"collapse_tui.engine.seeding"}, "collapse_tui.engine.seeding": set(),
      "collapse_tui.engine": {"collapse_tui.engine", "collapse_tui.engine.seeding"}}, []),
    # across parts the layer order rules (test_the_check_catches_upward_and_sideways_imports)
    ({"collapse_tui.store": {"collapse_tui.report"}, "collapse_tui.report": {"collapse_tui.store"}}, []),
])
def test_the_check_catches_a_circle_inside_a_part(graph, expected):
    assert circles(graph) == expected


def test_a_submodule_named_in_from_import_counts_as_itself(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from collapse_tui.data import tfds_source, open_dataset\n"
                      "def later():\n    from collapse_tui.engine import sae_phase\n")
    modules = {"collapse_tui.data", "collapse_tui.data.tfds_source", "collapse_tui.engine",
               "collapse_tui.engine.sae_phase"}
    assert imports_of(source, "collapse_tui.data.cache", modules) == {
        "collapse_tui.data", "collapse_tui.data.tfds_source", "collapse_tui.engine.sae_phase"}


def test_imports_are_read_from_every_form(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("import collapse_tui.store\nfrom collapse_tui import events as ev\n"
                      "def later():\n    from collapse_tui.engine.runner import Engine\n"
                      "from . import helpers\nimport numpy\n")
    assert imports_of(source, "collapse_tui.report") == {
        "collapse_tui.store", "collapse_tui.events", "collapse_tui.engine.runner", "collapse_tui.helpers"}
