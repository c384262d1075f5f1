"""Imports go one way: each layer of the harness imports only from the layers below it
(docs/architecture.md). Read from the source (every import, also those inside functions), so a
lazy import cannot hide a wrong direction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Bottom to top. "contracts" are the modules directly in harness/; scoring reads records (core) and
# is used by orchestration and the CLI; plugins (workloads, submissions) import only the contracts.
LAYERS = ("contracts", "config", "core", "scoring", "orchestration", "tools", "cli")
PLUGINS = ("workloads", "submissions")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name (None: not ours, e.g. torch)."""
    parts = module.split(".")
    if parts[0] == "scoring":
        return "scoring"
    if parts[0] in PLUGINS:
        return "plugins"
    if parts[0] != "harness":
        return None
    if len(parts) == 1:
        return "contracts"
    if parts[1] in ("config", "core", "orchestration", "tools"):
        return parts[1]
    return "cli" if parts[1] == "cli" else "contracts"


def imported(source: str, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import in ``source`` (of ``module``), relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[:-node.level]
                base = ".".join([*package, base] if base else package)
            found += [(node.lineno, f"{base}.{alias.name}" if layer_of(f"{base}.{alias.name}") and
                       alias.name != "*" and base in ("harness", "scoring") else base) for alias in node.names]
    return found


def violations(files: dict[str, str]) -> list[str]:
    """Each import of ``files`` ({module: source}) that goes up a layer, or into a plugin package."""
    wrong = []
    for module, source in files.items():
        mine = layer_of(module)
        for line, target in imported(source, module):
            theirs = layer_of(target)
            if theirs is None or target == module:
                continue
            if mine == "plugins":
                ok = theirs in ("contracts", "plugins")
            else:
                ok = theirs != "plugins" and LAYERS.index(theirs) <= LAYERS.index(mine)
            if not ok:
                wrong.append(f"{module}:{line} ({mine}) imports {target} ({theirs})")
    return wrong


def sources() -> dict[str, str]:
    out = {}
    for folder in ("harness", "scoring", *PLUGINS):
        for path in (REPO / folder).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            out[name] = path.read_text()
    return out


def module_imports(files: dict[str, str]) -> dict[str, set[str]]:
    """{module: the modules of ``files`` it imports}, lazy imports included; ``from package import
    name`` counts as an import of the module ``package.name`` where there is one."""
    graph = {}
    for module, source in files.items():
        targets = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = module.split(".")[:-node.level]
                    base = ".".join([*package, base] if base else package)
                targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                            for alias in node.names}
        graph[module] = {target for target in targets if target in files and target != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import one another round a circle (strongly connected, 2 or more)."""
    reach = {module: _reach(graph, module) for module in graph}
    groups = {tuple(sorted(m for m in reach[start] if start in reach[m])) for start in graph if start in reach[start]}
    return sorted(list(group) for group in groups)


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that ``start`` imports, directly or through others."""
    reached, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    return reached


def test_every_import_goes_down_the_layers() -> None:
    found = sources()
    assert len(found) > 60 and {layer_of(m) for m in found} == {*LAYERS, "plugins"}
    assert violations(found) == []


@pytest.mark.parametrize(("module", "source", "allowed"), [
    ("harness.core.runner", "from harness.tools.check import run_check", False),
    ("harness.core.runner", "def later():\n    import harness.orchestration.tune", False),
    ("harness.config.registry", "import submissions", False),
    ("harness.workload", "from .core import records", False),
    ("scoring.records", "from harness.orchestration import suite", False),
    ("workloads.mnist", "from harness.core.trial import run_trial", False),
    ("harness.orchestration.suite", "from scoring.records import read_records", True),
    ("harness.core.runner", "from harness.config.compose import compose_config", True),
    ("workloads.mnist", "from harness.workload import Workload", True),
])
def test_the_check_catches_an_upward_import(module: str, source: str, allowed: bool) -> None:
    assert (violations({module: source}) == []) is allowed


def test_no_modules_import_one_another_round_a_circle() -> None:
    """Within a layer too, imports go one way (a lazy import inside a function counts): a module
    that is imported by one it imports cannot be read, tested or replaced on its own."""
    assert circles(module_imports(sources())) == []


@pytest.mark.parametrize(("files", "expected"), [
    ({"harness.core.a": "def f():\n    from harness.core import b", "harness.core.b": "from harness.core.a import f"},
     [["harness.core.a", "harness.core.b"]]),
    ({"harness.core.a": "import harness.core.b", "harness.core.b": "from . import c",
      "harness.core.c": "from .a import x"},
     [["harness.core.a", "harness.core.b", "harness.core.c"]]),
    ({"harness.core.a": "from harness.core import b", "harness.core.b": "import torch"}, []),
])
def test_the_circle_check_finds_lazy_and_relative_imports(files: dict[str, str], expected: list[list[str]]) -> None:
    assert circles(module_imports(files)) == expected
