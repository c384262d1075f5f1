"""scripts/offline_wheels.py: which of optbench's dependencies an offline GPU node must be given."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location("offline_wheels", REPO / "scripts" / "offline_wheels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wheels = _load_script()


def _everything_here() -> dict[str, str | None]:
    """Every distribution installed here, as a node that has them all would list them."""
    return {wheels.canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}


def test_a_node_with_everything_needs_nothing() -> None:
    assert wheels.needed("3.11", _everything_here()) == {}


def test_a_missing_package_comes_with_its_own_missing_dependencies_only() -> None:
    have = _everything_here()
    for name in ("omegaconf", "antlr4-python3-runtime", "hydra-core"):
        del have[name]
    needed = wheels.needed("3.11", have)
    # hydra-core and omegaconf need antlr4; both need PyYAML, which the node has
    assert set(needed) == {"omegaconf", "antlr4-python3-runtime", "hydra-core"}
    assert needed["omegaconf"] == metadata.version("omegaconf")


def test_a_version_the_requirement_does_not_admit_is_replaced() -> None:
    have = _everything_here()
    have["pandas"] = "1.5.3"  # optbench asks for pandas>=2.1
    have["ruamel-yaml"] = None  # a line of a name alone admits any version
    assert set(wheels.needed("3.11", have)) == {"pandas"}


def test_torch_and_its_stack_are_never_collected() -> None:
    needed = wheels.needed("3.11", {})
    assert "pandas" in needed and "omegaconf" in needed
    assert not [name for name in needed if name in ("torch", "torchvision", "triton") or name.startswith("nvidia-")]


def test_markers_are_read_for_the_target_python(monkeypatch: pytest.MonkeyPatch) -> None:
    requires = {"optbench": ["a>=1", "b; python_version < '3.12'", "torch>=2", 'pytest; extra == "dev"'],
                "a": ["c"], "b": [], "c": ["nvidia-cublas"]}
    monkeypatch.setattr(wheels.metadata, "distribution", lambda name: SimpleNamespace(requires=requires[name]))
    monkeypatch.setattr(wheels.metadata, "version", lambda name: "1.0")
    assert wheels.needed("3.11", {}) == {"a": "1.0", "b": "1.0", "c": "1.0"}
    assert wheels.needed("3.12", {}) == {"a": "1.0", "c": "1.0"}
    assert wheels.needed("3.12", {"a": "0.9"}) == {"a": "1.0", "c": "1.0"}  # a>=1 does not admit 0.9
    assert wheels.needed("3.12", {"a": "1.2"}) == {}  # nor is a's own dependency collected


def test_a_have_file_is_read_as_pip_lists_it(tmp_path: Path) -> None:
    have = tmp_path / "have.txt"
    have.write_text("# from the node\nNumPy==2.5.2\nruamel.yaml\nhuggingface_hub==1.33.0\n-e git+x#egg=y\n")
    assert wheels.packages_in(have) == {"numpy": "2.5.2", "ruamel-yaml": None, "huggingface-hub": "1.33.0"}


def test_bad_arguments_are_named() -> None:
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "offline_wheels.py"), "w", "--have", "/nonexistent"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "--have /nonexistent: no such file" in run.stderr
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "offline_wheels.py"), "w", "--python-version", "3"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "major.minor" in run.stderr


@pytest.mark.parametrize("name", ["ruamel.yaml", "Hydra_Core"])
def test_names_are_compared_as_indexes_compare_them(name: str) -> None:
    assert wheels.canonical(name) in ("ruamel-yaml", "hydra-core")
