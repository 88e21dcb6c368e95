"""Imports run one way down the layers; the data package has no import cycles.

The layers of ``src/dislab``, lowest first (a module may import its own layer and the ones
below it, never one above):

0. **base**: ``dislab`` (``__init__``), ``errors``, ``io``, ``status``, ``threads``,
   ``tiny``, ``estimators`` -- no dislab import above this layer;
1. ``data`` -- ground-truth data sets, samplers, pairs;
2. ``nets`` -- encoders, decoders, discriminators;
3. ``models`` -- the methods (a regulariser each);
4. ``train`` -- configs, the training loop, checkpoints, tracking;
5. ``representation`` -- a trained run's codes (between a run and the metrics);
6. ``metrics`` -- the scores and the metric suite;
7. ``study`` -- sweeps: plan, run, collect, report tables;
8. ``viz`` -- run reports, study figures, analyses;
9. **application**: every ``cli`` module (``dislab/cli.py``, ``<package>/cli.py``),
   ``dislab/__main__.py``, ``dislab/quickstart.py``, ``dislab/quickstart_cli.py`` and
   ``dislab/testing.py`` (the registries' contract checks) -- they may import anything;
   nothing below imports them.

One rule on top of the order: ``metrics`` skips the layers under ``representation`` (``nets``,
``models``, ``train``): a metric sees codes and data, and a trained run reaches it through
``representation`` (``dislab/representation.py``: "give me this run's codes").

Imports are read with :mod:`ast` from the source, so a module imported inside a function
counts the same as one at the top of the file. ``from x import y`` counts as an import of
``x.y`` when that is a module, else of ``x``; relative imports are resolved against the
importing module. Imports under ``if TYPE_CHECKING:`` are not executed and are skipped
(annotations may name a class of a module that imports this one).

Cycles: within ``data`` (the issue names ``data/base`` <-> ``data/sampling`` and
``data/base`` <-> ``data/torch_data``) and ``metrics`` (``metrics/__init__`` <->
``metrics/registry``), no two modules may import each other, directly or through others
(the package ``__init__`` counts as a module: it imports its modules to register them, so
none of them may import the package back).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "dislab"

BASE = {"dislab", "dislab.errors", "dislab.io", "dislab.status", "dislab.threads",
        "dislab.tiny", "dislab.estimators"}
LAYERS = ["data", "nets", "models", "train", "representation", "metrics", "study", "viz"]
APPLICATION = {"dislab.cli", "dislab.__main__", "dislab.quickstart", "dislab.quickstart_cli",
               "dislab.testing"}
TOP = len(LAYERS) + 1
#: layers that a package may not import although they are below it (see the docstring)
SKIPPED = {"metrics": ("nets", "models", "train")}
#: packages whose modules must not form import cycles
NO_CYCLES = ("dislab.data", "dislab.metrics")

#: Upward (or skipping) imports tolerated while a branch that removes them is pending, as
#: ``(importing module, imported module): reason``. Empty since issue 16's branches merged;
#: every entry must still occur (a stale one fails), so nothing new hides here.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}

#: Imports closing a cycle, tolerated the same way; left out of the graph before the cycles
#: are looked for (each must still occur). Empty since issue 16's branches merged.
KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> list[tuple[int, str]]:
    """``(line, imported dislab module)`` for every import statement that runs."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for a in node.names:
                sub = f"{target}.{a.name}"
                found.append((node.lineno, sub if sub in MODULES else target))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [(line, name) for line, name in found
            if name == "dislab" or name.startswith("dislab.")]


def layer_of(module: str) -> int:
    """0 for the base layer, 1.. for the packages in :data:`LAYERS`, :data:`TOP` for the
    application layer."""
    parts = module.split(".")
    if module in APPLICATION or parts[-1] == "cli":
        return TOP
    if module in BASE:
        return 0
    if len(parts) >= 2 and parts[1] in LAYERS:
        return 1 + LAYERS.index(parts[1])
    raise AssertionError(f"{module} is in no layer: add it to tests/test_layers.py "
                         "(BASE, LAYERS or APPLICATION) and to its docstring")


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def _allowed(module: str, imported: str) -> bool:
    if layer_of(imported) > layer_of(module):
        return False
    skipped = SKIPPED.get(module.split(".")[1], ()) if "." in module else ()
    return not (layer_of(module) < TOP and imported.split(".")[1:2] and
                imported.split(".")[1] in skipped)


def test_no_upward_import() -> None:
    bad, used = [], set()
    for module in MODULES:
        for line, imported in imports_of(module):
            if _allowed(module, imported):
                continue
            key = next(((a, b) for a, b in KNOWN_UPWARD
                        if a == module and (imported == b or imported.startswith(b + "."))),
                       None)
            if key is not None:
                used.add(key)
                continue
            bad.append(f"{MODULES[module].relative_to(SRC)}:{line}: {module} imports "
                       f"{imported} (layer {layer_of(imported)}; {module} is in layer "
                       f"{layer_of(module)})")
    assert not bad, "upward imports:\n" + "\n".join(bad)
    stale = set(KNOWN_UPWARD) - used
    assert not stale, f"KNOWN_UPWARD entries that no longer occur (remove them): {stale}"


def _graph(package: str) -> dict[str, dict[str, int]]:
    """``{module: {imported module of the same package: line}}`` for ``package``'s modules
    (its ``__init__`` included)."""
    graph: dict[str, dict[str, int]] = {}
    for module in MODULES:
        if module != package and not module.startswith(package + "."):
            continue
        edges = graph.setdefault(module, {})
        for line, imported in imports_of(module):
            inside = imported == package or imported.startswith(package + ".")
            if not inside or imported == module:
                continue
            edges.setdefault(imported, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(graph):
        if v not in index:
            strongconnect(v)
    return out


@pytest.mark.parametrize("package", NO_CYCLES)
def test_no_import_cycles(package: str) -> None:
    graph = _graph(package)
    for a, b in KNOWN_CYCLE_EDGES:
        if a in graph:
            assert b in graph[a], f"KNOWN_CYCLE_EDGES: {a} no longer imports {b}; remove it"
            del graph[a][b]
    bad = []
    for cycle in _cycles(graph):
        edges = [f"{MODULES[a].relative_to(SRC)}:{line}: {a} imports {b}"
                 for a in cycle for b, line in graph[a].items() if b in cycle]
        bad.append(" <-> ".join(cycle) + "\n    " + "\n    ".join(edges))
    assert not bad, "import cycles:\n" + "\n".join(bad)


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The import reader on a module with each form: top level, in a function, relative,
    ``from package import module`` and a ``TYPE_CHECKING`` block (skipped)."""
    source = ("import dislab.io\n"
              "from dislab.data import sampling\n"
              "from . import base\n"
              "from .base import GroundTruthData\n"
              "from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n"
              "    from dislab.viz import images\n"
              "def f():\n"
              "    from dislab.train.loop import fit\n"
              "    import dislab.metrics as m\n")
    path = PACKAGE / "data" / "base.py"
    original = MODULES["dislab.data.base"]
    fake = tmp_path / "base.py"
    fake.write_text(source)
    MODULES["dislab.data.base"] = fake
    try:
        found = imports_of("dislab.data.base")
    finally:
        MODULES["dislab.data.base"] = original
    assert path == original
    assert found == [(1, "dislab.io"), (2, "dislab.data.sampling"), (3, "dislab.data.base"),
                     (4, "dislab.data.base"), (9, "dislab.train.loop"), (10, "dislab.metrics")]
    assert layer_of("dislab.train.loop") > layer_of("dislab.data.base")
    assert layer_of("dislab.data.cli") == layer_of("dislab.quickstart") == TOP
    assert not _allowed("dislab.metrics.suite", "dislab.train")
    assert _allowed("dislab.metrics.suite", "dislab.data.base")
    assert _allowed("dislab.metrics.cli", "dislab.train")


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert _cycles(graph) == [["a", "b", "c"]]
    del graph["c"]["a"]
    assert _cycles(graph) == []
