"""The code a submission or a workload is: its module's file and every module of its own package (or,
for a lone ``.py`` file, of its folder) that it imports, directly or through another one, each with
its sha256.

A record keeps this map (the manifest's ``submission_code`` / ``workload_code``), so that an edit
of a helper module (``submissions/_hparams.py``, ``workloads/_tensors.py``, a user's ``helper.py``
beside the submission file) is told from the code a record was made with, as an edit of the
class's own file is. The imports are read from the source (:mod:`ast`), not from what happens to be
loaded in this process, so the map is the same in every process. Modules of other packages (torch,
the harness itself) are not part of it: the harness's revision is the manifest's ``git``.

The installed packages (distributions) that hold the class's package or that those files import, other
than the harness's own (:data:`HARNESS_PACKAGES`, the manifest's ``versions``), are recorded by version
(a submission's, ``submission_packages``): an optimizer library upgraded under a submission
that wraps it changes what the submission computes, though none of its own files changed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.config.plugins import module_file, source_hash

HARNESS_PACKAGES = ("optbench", "torch", "torchvision", "numpy", "hydra-core", "omegaconf")
_KNOWN: dict[tuple[Path, str], tuple[tuple[tuple[Path, int, int], ...], dict[str, str]]] = {}


def code_files(cls: type) -> dict[str, str]:
    """``{path: sha256}`` of the file ``cls`` is defined in and of the modules of its own package (or
    folder) it imports, paths relative to the folder its top-level package is in; empty for a class
    without a file. Read again only when one of those files changed (tune checks every record)."""
    start = module_file(cls)
    if start is None or not start.is_file():
        return {}
    key = (start, cls.__module__)
    known = _KNOWN.get(key)
    if known is not None and known[0] == _stats(path for path, _, _ in known[0]):
        return dict(known[1])
    base, root = _base_and_root(start, cls.__module__)
    files = _read(start, base, root)
    _KNOWN[key] = (_stats(base / name for name in files), files)
    return dict(files)


def code_paths(cls: type) -> list[Path]:
    """The files of :func:`code_files`, as absolute paths (what the source audit reads)."""
    start = module_file(cls)
    files = code_files(cls)
    return [_base_and_root(start, cls.__module__)[0] / name for name in files] if files and start else []


def _stats(paths: Iterable[Path]) -> tuple[tuple[Path, int, int], ...]:
    """Each file's path, size and modification time (-1 for one that is gone)."""
    out = []
    for path in paths:
        try:
            status = path.stat()
            out.append((path, status.st_size, status.st_mtime_ns))
        except OSError:
            out.append((path, -1, -1))
    return tuple(out)


def _read(start: Path, base: Path, root: Path) -> dict[str, str]:
    """:func:`code_files` of the module at ``start``, read from the files."""
    packages = start.relative_to(base).parts[:-1] if start.is_relative_to(base) else ()
    found: dict[Path, str] = {}
    todo = [start, *(base.joinpath(*packages[:depth], "__init__.py") for depth in range(1, len(packages) + 1))]
    while todo:
        path = todo.pop()
        if path in found:
            continue
        try:
            source = path.read_bytes()
        except OSError:
            continue
        found[path] = hashlib.sha256(source).hexdigest()
        todo += [p for p in _imported_files(source, path, base, root) if p not in found]
    return {path.relative_to(base).as_posix(): digest for path, digest in sorted(found.items())}


def code_packages(cls: type) -> dict[str, str]:
    """``{distribution: version}`` of the installed packages, besides :data:`HARNESS_PACKAGES`, that hold
    the top-level package ``cls`` is in or that the files of :func:`code_files` import; empty for a
    class whose code imports no other (built-in adamw; built-in lion has lion-pytorch's)."""
    paths = code_paths(cls)
    tops = {cls.__module__.split(".")[0]} | _imported_tops_of(_stats(paths))
    return dict(_installed_versions(frozenset(tops), tuple(sys.path)))


@functools.lru_cache(maxsize=256)
def _imported_tops_of(files: tuple[tuple[Path, int, int], ...]) -> frozenset[str]:
    """The top-level names the files (as :func:`_stats` gives them: read again only when one changed)
    import; tune asks for every record it checks."""
    tops: set[str] = set()
    for path, _, _ in files:
        try:
            tops |= _imported_tops(path.read_bytes(), path)
        except OSError:
            continue
    return frozenset(tops)


@functools.cache
def _installed_versions(tops: frozenset[str], path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The distributions of ``tops`` with their versions, as found on ``path`` (``sys.path``: the key
    of the cache, as it decides what is installed)."""
    owners = _distributions_of_modules(path)
    # a top-level name several distributions share (a namespace: nvidia's 14 CUDA wheels) does not say
    # which of them the code uses, and torch's upgrade would read as the submission's: left out
    names = {owners[top][0] for top in tops if len(set(owners.get(top, ()))) == 1} - set(HARNESS_PACKAGES)
    found = []
    for name in sorted(names):
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


@functools.cache
def _distributions_of_modules(path: tuple[str, ...]) -> dict[str, list[str]]:
    """Top-level module -> the distributions holding it, as found on ``path`` (a scan of every
    installed distribution: tenths of a second, once per process)."""
    return metadata.packages_distributions()


def _imported_tops(source: bytes, path: Path) -> set[str]:
    """The top-level names a module's absolute imports start with."""
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError):
        return set()
    tops = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def package_changes(then: dict[str, str], now: dict[str, str]) -> list[str]:
    """The installed packages that differ between two :func:`code_packages` maps, in words."""
    changes = [f"{name} {then[name]} then, {now[name]} now" for name in sorted(then.keys() & now.keys())
               if then[name] != now[name]]
    changes += [f"{name} {now[name]} (imported now, not then)" for name in sorted(now.keys() - then.keys())]
    changes += [f"{name} {then[name]} (imported then, not now)" for name in sorted(then.keys() - now.keys())]
    return changes


def package_list(packages: dict[str, str] | None) -> str | None:
    """A :func:`code_packages` map as one comparable string (``mypkg-adan 0.2.0, schedulefree 1.4.1``;
    "" for none), or None for a record that does not tell: what score compares."""
    return None if packages is None else ", ".join(f"{name} {version}" for name, version in sorted(packages.items()))


def code_digest(files: dict[str, str]) -> str | None:
    """One sha256 for a :func:`code_files` map (None for an empty one): what score compares."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest() if files else None


def file_changes(then: dict[str, str], now: dict[str, str], base: Path) -> list[str]:
    """The files that differ between two :func:`code_files` maps (paths relative to ``base``), in words."""
    changes = [f"{base / name} (sha256 {then[name][:12]} then, {now[name][:12]} now)"
               for name in sorted(then.keys() & now.keys()) if then[name] != now[name]]
    changes += [f"{base / name} (imported now, not then)" for name in sorted(now.keys() - then.keys())]
    changes += [f"{base / name} (imported then, not now)" for name in sorted(then.keys() - now.keys())]
    return changes


def code_changes(manifest: dict[str, Any], submission_cls: type, workload_cls: type) -> str:
    """What code changed since the record of ``manifest`` was made ("" when nothing did, or it cannot
    be told: a class without a file, a record made before its code was recorded). A record made
    before the map of its modules existed is compared by the class's own file only."""
    changes = []
    then_packages = manifest.get("submission_packages")  # absent: a record made before they were recorded
    if isinstance(then_packages, dict) and (differ := package_changes(then_packages, code_packages(submission_cls))):
        changes.append(f"the submission's installed packages changed: {', '.join(differ)}")
    for what, key, cls in (("the submission", "submission", submission_cls),
                           ("the workload", "workload", workload_cls)):
        then_files = manifest.get(f"{key}_code")
        if isinstance(then_files, dict) and then_files and (now_files := code_files(cls)):
            base = _base_and_root(module_file(cls), cls.__module__)[0]
            if differ := file_changes(then_files, now_files, base):
                changes.append(f"{what}'s code changed: {', '.join(differ)}")
            continue
        then, now = manifest.get(f"{key}_source_sha256"), source_hash(cls)
        if then and now and then != now:
            changes.append(f"{what}'s source {module_file(cls)} changed (sha256 {then[:12]} then, {now[:12]} now)")
    return "; ".join(changes)


def _base_and_root(path: Path, module: str) -> tuple[Path, Path]:
    """The folder imports are resolved from (where the top-level package is) and the folder whose
    modules count as the class's own (the top-level package; for a module outside any package, or
    a file loaded under a name of its own, its folder)."""
    parts = module.split(".")
    is_package = path.name == "__init__.py"
    depth = len(parts) if is_package else len(parts) - 1  # folders between the base and the file
    folders = path.parents
    names = [folder.name for folder in list(folders)[:depth]][::-1]
    if depth < len(folders) and names == parts[:depth] and (is_package or path.stem == parts[-1]):
        base = folders[depth]
        return base, (base / parts[0] if depth else path.parent)
    return path.parent, path.parent  # a file imported under another name (harness/config/plugins.py)


def _imported_files(source: bytes, path: Path, base: Path, root: Path) -> list[Path]:
    """The files under ``root`` that the module at ``path`` imports."""
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError):
        return []
    package = path.parent.relative_to(base).parts if path.parent.is_relative_to(base) else ()
    names: list[tuple[str, ...]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [tuple(alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = len(package) - (node.level - 1)
                if up < 0:
                    continue
                prefix = package[:up] + tuple((node.module or "").split(".") if node.module else ())
            else:
                prefix = tuple((node.module or "").split("."))
            names.append(prefix)
            names += [(*prefix, alias.name) for alias in node.names if alias.name != "*"]
    files = []
    for name in names:
        packages = [base.joinpath(*name[:depth], "__init__.py") for depth in range(1, len(name))]  # run first
        for candidate in (*packages, base.joinpath(*name).with_suffix(".py"), base.joinpath(*name, "__init__.py")):
            if name and candidate.is_file() and candidate.resolve().is_relative_to(root.resolve()):
                files.append(candidate.resolve())
    return files
