"""The code a record was made with: a submission's or workload's file and the modules of its own
package (or folder) it imports (harness/config/code_files.py)."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import pytest

from harness.config.code_files import code_digest, code_files, file_changes
from harness.config.registry import submission_class, workload_class


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_built_ins_count_their_private_helpers_and_nothing_of_other_packages() -> None:
    root = Path(__file__).resolve().parent.parent
    init = "submissions/__init__.py"  # runs before any of its modules: part of each
    assert code_files(submission_class("sgd", None)) == {init: sha(root / init),
                                                         "submissions/sgd.py": sha(root / "submissions/sgd.py")}
    assert set(code_files(submission_class("muon", None))) == {
        init, "submissions/muon.py", "submissions/_muon.py", "submissions/_optimizer.py"}
    assert set(code_files(workload_class("rosenbrock", None))) == {
        "workloads/__init__.py", "workloads/rosenbrock.py", "workloads/_tensors.py"}


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.split(".")[0] in ("pkg", "lone", "helper", "other")]:
        del sys.modules[name]


def test_relative_absolute_and_from_package_imports_are_followed_transitively(importable: Path) -> None:
    package = importable / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "opt.py").write_text("import torch\nfrom . import a\nfrom .sub.b import B\nimport pkg.c\n"
                                    "from pkg import d\n\n\nclass Opt:\n    pass\n")
    (package / "a.py").write_text("from .e import E\n")  # followed through a
    (package / "e.py").write_text("E = 1\n")
    (package / "sub" / "b.py").write_text("from .. import a\nB = 2\n")
    (package / "c.py").write_text("")
    (package / "d.py").write_text("")
    (package / "unused.py").write_text("")  # not imported: not part of it
    (importable / "other.py").write_text("")  # outside the package: not part of it
    found = code_files(importlib.import_module("pkg.opt").Opt)
    assert set(found) == {"pkg/__init__.py", "pkg/opt.py", "pkg/a.py", "pkg/e.py", "pkg/sub/__init__.py",
                          "pkg/sub/b.py", "pkg/c.py", "pkg/d.py"}
    assert found["pkg/e.py"] == sha(package / "e.py")
    before = dict(found)
    (package / "e.py").write_text("E = 2\n")
    after = code_files(importlib.import_module("pkg.opt").Opt)
    assert file_changes(before, after, importable) == [
        f"{package / 'e.py'} (sha256 {before['pkg/e.py'][:12]} then, {after['pkg/e.py'][:12]} now)"]
    assert code_digest(before) != code_digest(after) and code_digest({}) is None


def test_a_lone_module_counts_the_modules_beside_it_that_it_imports(importable: Path) -> None:
    (importable / "lone.py").write_text("import helper\nimport json\n\n\nclass Opt:\n    pass\n")
    (importable / "helper.py").write_text("SCALE = 1\n")
    (importable / "other.py").write_text("")
    assert set(code_files(importlib.import_module("lone").Opt)) == {"lone.py", "helper.py"}
