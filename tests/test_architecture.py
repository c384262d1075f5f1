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
    ("workloads.mnist", "from harness.core.runner import run_trial", False),
    ("harness.orchestration.suite", "from scoring.records import read_records", True),
    ("harness.core.runner", "from harness.config.compose import compose_config", True),
    ("workloads.mnist", "from harness.workload import Workload", True),
])
def test_the_check_catches_an_upward_import(module: str, source: str, allowed: bool) -> None:
    assert (violations({module: source}) == []) is allowed
