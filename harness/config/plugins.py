"""Where a submission or a workload comes from when it is not in this repository: an importable
module, a ``.py`` file, or an installed package's entry point — and the config that goes with it.

``submission=`` (and likewise ``workload=``) takes, in this order of recognition:

1. a name of ``configs/submission/`` (``configs/workload/``): the built-in ones;
2. a name an installed package declares in the entry-point group ``optbench.submissions``
   (``optbench.workloads``): ``[project.entry-points."optbench.submissions"] adan = "mypkg.adan:Adan"``
   (one that has a built-in's name cannot be used: the built-in runs, with a warning);
3. a path to a ``.py`` file (``/home/me/adan.py``, ``./adan.py``; optionally ``FILE:Class``),
   imported alone (a file of a package that imports from its package is to be given as 4.);
4. an importable module, ``package.module:Class`` or ``package.module`` (the current folder is
   searched too, after everything else).

A module or file exports its class as ``SUBMISSION`` (``WORKLOAD``) unless ``:Class`` names it.
A submission's config (the default hyperparameters and the search space, as in
``configs/submission/*.yaml``) is the first that exists of: the file ``submission_config=PATH``; a
YAML beside the module file with the same stem (``adan.py`` -> ``adan.yaml``); the class's own
``Hparams`` defaults and its ``search_space`` attribute. A workload's config (its model and sizes
with their targets and budgets, as in ``configs/workload/*.yaml``) is ``workload_config=PATH`` or
the YAML beside its module: it has no defaults to fall back on. The name (the records' folder,
the leaderboard's label) is the config's ``name``, else the class's ``name`` attribute, else the
file's stem (a module's last part, or ``:Class``'s name); it may not be a built-in one's name.
The resolved source (an absolute file path or a module path, with the folder that made it
importable) is kept in the trial's config as ``submission.source`` (``workload.source``), so a
launched job imports the same code, and the manifest records the module file's sha256 (and
:mod:`harness.config.code_files` the modules of its package it imports).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import types
import warnings
import weakref
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.config.names import config_names
from harness.errors import OptbenchWarning, UserError

# kind -> (entry-point group, the attribute a module exports its class as)
KINDS = {"submission": ("optbench.submissions", "SUBMISSION"), "workload": ("optbench.workloads", "WORKLOAD")}
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a plugin's class is: ``module`` (a dotted module, or an absolute ``.py`` path),
    ``attribute`` (its name there) and ``root`` (a folder to put on ``sys.path`` first, or None)."""

    module: str
    attribute: str
    root: str | None = None

    @property
    def is_file(self) -> bool:
        return self.module.endswith(".py")

    def text(self) -> str:
        """How the trial config records it: ``module:attribute``, with ``@root`` when one is needed."""
        return f"{self.module}:{self.attribute}" + (f"@{self.root}" if self.root else "")

    @classmethod
    def from_text(cls, text: str, kind: str = "submission") -> Source:
        body, _, root = text.partition("@")
        module, _, attribute = body.rpartition(":") if _has_attribute(body) else (body, "", "")
        return cls(module, attribute or KINDS[kind][1], root or None)


def _has_attribute(text: str) -> bool:
    """Whether ``text`` ends in ``:Name`` (a Windows drive letter ``C:\\`` is not one)."""
    head, sep, tail = text.rpartition(":")
    return bool(sep) and bool(head) and MODULE.fullmatch(tail) is not None and "." not in tail


def looks_external(text: str) -> bool:
    """Whether ``submission=text`` (``workload=text``) can only mean a module or a file (not a plain name)."""
    return text.endswith(".py") or os.sep in text or "/" in text or ":" in text or "." in text


def entry_points(kind: str = "submission") -> dict[str, Source]:
    """The usable plugins of ``kind`` installed packages declare (entry-point group ``optbench.<kind>s``):
    one named as a built-in is not (:func:`clashing_entry_points`), nor a name two installed packages
    declare for different code (:func:`ambiguous_entry_points`)."""
    unusable = _builtin_names(kind) | set(ambiguous_entry_points(kind))
    return {point.name: _source(point, kind) for point in _declared(kind) if point.name not in unusable}


def ambiguous_entry_points(kind: str = "submission") -> dict[str, str]:
    """The names of ``kind`` that several installed packages declare for different code, each with what
    to say of it. Which one the import system lists first is an accident of installation order, so
    ``<kind>=NAME`` would run either package's code under one name: it is refused instead, naming both."""
    builtin = _builtin_names(kind)
    by_name: dict[str, list[metadata.EntryPoint]] = {}
    for point in _declared(kind):
        if point.name not in builtin:
            by_name.setdefault(point.name, []).append(point)
    return {name: _ambiguity(kind, name, sorted(points, key=_package_name)) for name, points in by_name.items()
            if len({_source(point, kind) for point in points}) > 1}


def _package_name(point: metadata.EntryPoint) -> str:
    return point.dist.name if point.dist is not None else "unknown"


def _ambiguity(kind: str, name: str, points: list[metadata.EntryPoint]) -> str:
    declared = "; ".join(f"{point.name} = {_source(point, kind).text()} (package {_package_name(point)})"
                         for point in points)
    return (f"{len(points)} installed packages declare the {kind} {name} (group {points[0].group}): {declared}. "
            f"{kind}={name} could run either one's code under one name, so it is refused: give the one you mean "
            f"by its module ({kind}={_source(points[0], kind).text()}), or rename the entry point in one package's "
            f"[project.entry-points.\"{points[0].group}\"] and reinstall it (or uninstall one).")


def clashing_entry_points(kind: str = "submission") -> dict[str, tuple[Source, str]]:
    """The entry points of ``kind`` named as a built-in one, each with what to say of it: the built-in
    wins (``<kind>=NAME`` runs it, a warning names the entry point; ``optbench list`` fails naming it)."""
    builtin = _builtin_names(kind)
    return {point.name: (_source(point, kind), _clash(kind, point)) for point in _declared(kind)
            if point.name in builtin}


def warn_if_shadowed(kind: str, name: str) -> None:
    """Warn (one line, :class:`OptbenchWarning`) when ``<kind>=name`` picks a built-in that an installed
    entry point is named as too: the built-in runs, and the user may have meant the entry point."""
    if name in (clashes := clashing_entry_points(kind)):
        warnings.warn(f"{kind}={name} runs the built-in {kind}; {clashes[name][1]}", OptbenchWarning, stacklevel=2)


def _clash(kind: str, point: metadata.EntryPoint) -> str:
    source = _source(point, kind)
    package = f"package {point.dist.name}, " if point.dist is not None else ""
    return (f"the installed entry point {point.name} = {source.text()} ({package}group {point.group}) has the "
            f"name of the built-in {kind} {point.name}, which wins: it cannot be used by that name. Rename the "
            f"entry point in its package's [project.entry-points.\"{point.group}\"] and reinstall the package, "
            f"or give {kind}={source.text()}.")


def _declared(kind: str) -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=KINDS[kind][0]))


def _source(point: metadata.EntryPoint, kind: str) -> Source:
    return Source.from_text(point.value.replace(" ", ""), kind)


def _builtin_names(kind: str) -> set[str]:
    return set(config_names(kind))


def resolve(text: str, kind: str = "submission") -> Source:
    """The source ``<kind>=text`` names (an entry point, a file or a module); a UserError naming
    what was tried when it is none of them."""
    points = entry_points(kind)
    if text in points:
        if not _findable(points[text].module):
            raise UserError(_unimportable_entry_point(kind, text))
        return points[text]
    if text in (ambiguous := ambiguous_entry_points(kind)):
        raise UserError(ambiguous[text])
    body, attribute = text, KINDS[kind][1]
    if _has_attribute(text):
        body, _, attribute = text.rpartition(":")
    if body.endswith(".py") or os.sep in body or "/" in body:
        path = Path(body).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"{kind}={text}: no such file {path}. Give the path to the {kind}'s .py file "
                            f"(absolute, or relative to the current folder).")
        return Source(str(path), attribute)
    if not MODULE.fullmatch(body):
        raise UserError(f"{kind}={text} is neither a {kind}'s name, a .py file nor a module "
                        f"(package.module or package.module:Class).")
    here = os.getcwd()
    if not _findable(body) and not _findable(body, extra=here):
        family, _, variant = body.partition(".")
        if kind == "workload" and family in _builtin_names(kind):
            raise UserError(f"{kind}={text} is how a variant's records are named, not a workload: select it with "
                            f"workload={family} workload.variant={variant} (optbench list shows each workload's "
                            f"variants).")
        raise UserError(f"{kind}={text}: no module {body!r} can be imported (looked on the Python path and "
                        f"in the current folder {here}). Install its package (pip install -e .), run from the "
                        f"folder holding it, or give the path to its .py file.")
    return Source(body, attribute, _root_of(body, here))


def _unimportable_entry_point(kind: str, name: str) -> str:
    """What to say of an installed entry point whose module does not exist (a typo in its package's
    ``pyproject.toml``, or a module the build left out): the package, not the module's code, is at fault."""
    point = next(point for point in _declared(kind) if point.name == name)
    module = _source(point, kind).module
    return (f"the installed entry point {name} = {point.value} (package {_package_name(point)}, group {point.group}) "
            f"names the module {module}, which is not installed. Correct the entry point in that package's "
            f"pyproject.toml ([project.entry-points.\"{point.group}\"]: the module's dotted name, then :Class) or "
            f"add the module to the package, and reinstall the package (pip install).")


def _root_of(module: str, here: str) -> str | None:
    """The folder to put on sys.path for ``module`` to import in another process: the folder its
    top-level package is in, unless it imports without the current folder (an installed package,
    an editable install's finder, PYTHONPATH), which a job started elsewhere would lack.

    So the recorded source, part of a trial's identity, is the same from any folder: with the
    current folder searched first, an editable install run from the folder above its project was
    found as that project folder (a namespace package) and recorded another root."""
    top = module.split(".")[0]
    if top not in sys.modules:
        elsewhere = [p for p in sys.path if os.path.abspath(p or ".") != os.path.abspath(here)]
        saved, sys.path[:] = sys.path[:], elsewhere
        try:
            spec = importlib.util.find_spec(top)
        finally:
            sys.path[:] = saved
        if spec is not None and spec.origin not in (None, "namespace"):  # a namespace package: a folder
            return None
    added = here not in sys.path
    if added:
        sys.path.append(here)
    try:
        spec = importlib.util.find_spec(module.split(".")[0])
    finally:
        if added:
            sys.path.remove(here)
    location = spec.submodule_search_locations[0] if spec.submodule_search_locations else spec.origin
    folder = os.path.dirname(os.path.abspath(location))
    installed = {os.path.abspath(p) for p in sys.path if p and os.path.isabs(p)} - {os.path.abspath(here)}
    return None if folder in installed else folder


def _findable(module: str, extra: str | None = None) -> bool:
    """Whether ``module`` can be imported (from ``extra`` too), found without importing it or its
    parent packages: their code is the user's, and runs only where the submission does
    (harness/config/described.py)."""
    if extra is not None:
        sys.path.append(extra)
    try:
        return module_spec(module) is not None
    finally:
        if extra is not None:
            sys.path.remove(extra)


def module_origin(source: Source) -> str | None:
    """The file a module source's code is in (its ``root`` searched too), found without importing it."""
    added = source.root is not None and source.root not in sys.path
    if added:
        sys.path.append(source.root)
    try:
        spec = module_spec(source.module)
    finally:
        if added:
            sys.path.remove(source.root)
    return spec.origin if spec is not None and spec.has_location else None


def module_spec(module: str) -> Any:
    """The import system's spec of ``module`` (None where none is found), asked of each finder of
    ``sys.meta_path`` as an import would, package by package, without running any module's code
    (``importlib.util.find_spec`` of ``a.b`` imports ``a``)."""
    parts, path, spec = module.split("."), None, None
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if name in sys.modules and depth < len(parts):
            path = getattr(sys.modules[name], "__path__", None)
            if path is None:
                return None
            continue
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            try:
                spec = find(name, path)
            except (ImportError, ValueError):
                spec = None
            if spec is not None:
                break
        if spec is None:
            return None
        path = spec.submodule_search_locations
        if path is None and depth < len(parts):
            return None
    return spec


def import_command(source: Source) -> str:
    """The shell command that imports ``source``'s module alone, to see its error: a file by its name
    in its folder, a dotted module by its full name (``mypkg.adan``, not its package)."""
    if source.is_file:
        return f"python -c 'import {Path(source.module).stem}' in {Path(source.module).parent}"
    return f"python -c 'import {source.module}'" + (f" in {source.root}" if source.root else "")


def load_class(source: Source, base: type) -> type:
    """Import the class ``source`` names and check it is a subclass of ``base``; an import that
    fails is a UserError quoting the error (the submission's code, not optbench, is at fault)."""
    try:
        module = _import(source)
    except UserError:
        raise
    except Exception as error:  # whatever the module raised while importing
        raise UserError(_outside_its_package(source, error, base.__name__.lower())
                        or f"{source.module} could not be imported: {type(error).__name__}: {error}. "
                           f"Fix its code (try: {import_command(source)}).") from None
    cls = getattr(module, source.attribute, None)
    if cls is None:
        names = sorted(n for n, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, base) and v.__module__ == module.__name__)
        hint = f" It defines {', '.join(names)}: name one as {source.module}:{names[0]}." if names else ""
        exported = source.attribute in {attribute for _, attribute in KINDS.values()}  # no :Class given
        how = (f" A module exports its class as {source.attribute} = MyClass, or is named as module:MyClass."
               if exported else " Check the class name after the colon (names are case-sensitive).")
        raise UserError(f"{source.module} has no {source.attribute}.{hint}{how}")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UserError(f"{source.module}:{source.attribute} is {cls!r}, not a subclass of {base.__module__}."
                        f"{base.__name__} (see docs/writing-a-submission.md and docs/architecture.md).")
    check_contract(cls, base, f"{source.module}:{source.attribute}")
    return cls


def check_contract(cls: type, base: type, where: str) -> None:
    """Refuse a plugin class that lacks what ``base`` declares without giving it: a class attribute
    annotated as a ``ClassVar`` there (a workload's ``metric``, ``higher_is_better``, ``models``), or
    an abstract method left unimplemented. Found later, deep in a trial, each was a harness
    traceback (exit 1) rather than the plugin's own error."""
    declared = {name for klass in base.__mro__ for name, hint in vars(klass).get("__annotations__", {}).items()
                if "ClassVar" in str(hint)}
    attributes = sorted(name for name in declared - {"name"} if not hasattr(cls, name))  # a name: the config's
    methods = sorted(getattr(cls, "__abstractmethods__", ()))
    if attributes or methods:
        lacks = [f"the class attribute(s) {', '.join(attributes)}"] if attributes else []
        lacks += [f"the method(s) {', '.join(methods)}"] if methods else []
        raise UserError(f"{where}: {cls.__name__} does not define {' and '.join(lacks)}, which every "
                        f"{base.__name__} must (see docs/architecture.md and the built-in ones in "
                        f"{'workloads' if base.__name__ == 'Workload' else 'submissions'}/).")


def _outside_its_package(source: Source, error: Exception, kind: str) -> str | None:
    """The message for a ``.py`` file of a package (its folder has ``__init__.py``) whose import of
    its own package failed (a relative import, or the package's name, not importable from here): a
    file given by its path is loaded alone, outside its package, so its code is not at fault and
    it is to be given as the module it is. None for any other failure."""
    if not (source.is_file and isinstance(error, ImportError)):
        return None
    found = _package_module(Path(source.module))
    if found is None:
        return None
    module, above = found
    package = module.rpartition(".")[0]
    missing = error.name or ""
    relative = missing.partition(".")[0] == EXTERNAL_PACKAGE or "relative import" in str(error)
    if not (relative or missing == package.split(".")[0]):
        return None
    how = "a relative import" if relative else f"{type(error).__name__}: {error}"
    named = f"{kind}={module}" + ("" if source.attribute == KINDS[kind][1] else f":{source.attribute}")
    return (f"{source.module} is part of the package {package} (its folder has __init__.py) and imports from "
            f"it ({how}), but a file given by its path is imported alone, outside its "
            f"package. Give it as a module instead: {named}, with optbench run from {above} (the folder above the "
            f"package) or the package installed (pip install -e .).")


def _package_module(path: Path) -> tuple[str, Path] | None:
    """The dotted name of the module file ``path`` in the package its folder is part of (every folder
    up to the top one that has ``__init__.py``) and the folder above that package; None when its
    folder is no package, or a name on the way is not a module's."""
    parts, folder = [path.stem], path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    module = ".".join(parts)
    return (module, folder) if len(parts) > 1 and MODULE.fullmatch(module) else None


EXTERNAL_PACKAGE = "optbench_external"  # the package name a .py file given by its path is imported under
_loaded: dict[str, Any] = {}


def _import(source: Source) -> Any:
    if source.root and source.root not in sys.path:
        sys.path.append(source.root)
    if not source.is_file:
        return importlib.import_module(source.module)
    if source.module in _loaded:
        return _loaded[source.module]
    path = Path(source.module)
    if not path.is_file():
        raise UserError(f"The plugin file {path} is gone (the trial's config names it). Restore it, or run the "
                        f"trial from where it is now.")
    name = f"{EXTERNAL_PACKAGE}.{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    # the package the name is in, so that pickle (a workload sent to a trainer process) can import
    # the name: it imports the package first (the module's own entry in sys.modules is not enough)
    package = sys.modules.setdefault(EXTERNAL_PACKAGE, types.ModuleType(EXTERNAL_PACKAGE))
    package.__path__ = []
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)  # so that it can import the modules beside it
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _loaded[source.module] = module
    return module


_DESCRIBED: weakref.WeakKeyDictionary[type, Path | None] = weakref.WeakKeyDictionary()


def mark_described(stand_in: type, file: Path | None) -> None:
    """Say which file the class a stand-in describes is defined in (harness/config/described.py):
    the stand-in itself is made here, not in that file."""
    _DESCRIBED[stand_in] = file


def module_file(cls: type) -> Path | None:
    """The file a class was defined in (None for one defined interactively)."""
    if cls in _DESCRIBED:
        return _DESCRIBED[cls]
    try:
        return Path(inspect.getfile(cls)).resolve()
    except (TypeError, OSError):
        return None


def source_hash(cls: type) -> str | None:
    """sha256 of the file the class was defined in: the code a record was made with."""
    path = module_file(cls)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path else None
    except OSError:
        return None


CONFIG_KEYS = ("name", "hparams", "search_space")


def submission_config(source: Source, cls: type, config_file: str | None, taken: set[str]) -> dict[str, Any]:
    """The config of an external submission (``name``, ``hparams``, ``search_space``, ``source``),
    by the rule of this module's docstring; ``taken``: the names it may not have (built-in ones)."""
    module_path = module_file(cls)
    beside = module_path.with_suffix(".yaml") if module_path else None
    if config_file is not None:
        path = Path(config_file).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"submission_config={config_file}: no such file {path}.")
        data, where = _read_config(path), str(path)
    elif beside is not None and beside.is_file():
        data, where = _read_config(beside), str(beside)
    else:
        data = {"hparams": declared_defaults(cls), "search_space": dict(getattr(cls, "search_space", {}) or {})}
        missing = str(beside) if beside else "YAML beside its module"
        where = f"{cls.__name__}'s own defaults: no {missing}, no submission_config="
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}. A submission's config holds "
                        f"{', '.join(CONFIG_KEYS)} (see configs/submission/adamw.yaml).")
    for key in ("hparams", "search_space"):
        if not isinstance(data.get(key) or {}, dict):
            raise UserError(f"{where}: '{key}' should be a mapping of names to values.")
    name = _name("submission", data, source, cls, taken)
    return {"name": name, "hparams": dict(data.get("hparams") or {}),
            "search_space": dict(data.get("search_space") or {}), "source": source.text(), "config_from": where}


def missing_yaml_hint(source: str | None, config_from: str | None = None) -> str:
    """What to say when a module of a package has no YAML beside it (``config_from`` is no file): the
    usual cause is ``pip install .``, whose build leaves out a YAML that the package's pyproject.toml
    does not declare as package data. Empty for a ``.py`` file, a top-level module, or a package that
    no installed distribution holds (one imported from the current folder: its YAML is just missing)."""
    module = Source.from_text(source).module if source else ""
    if module.endswith(".py") or "." not in module or (config_from and Path(config_from).is_file()):
        return ""
    package = module.partition(".")[0]
    if package not in metadata.packages_distributions():
        return ""
    return (f" If its package has that YAML, it was not installed with it: an installed package holds a YAML only "
            f"when its pyproject.toml declares it as package data ([tool.setuptools.package-data] {package} = "
            f"[\"*.yaml\"]; docs/writing-a-submission.md); reinstall the package, or install it editable (pip "
            f"install -e).")


def _read_yaml(path: Path, holds: str) -> dict[str, Any]:
    """A plugin's YAML config as a mapping; a UserError naming the file otherwise."""
    from omegaconf import OmegaConf

    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as error:  # YAML syntax, interpolation
        mark = getattr(error, "problem_mark", None)  # a YAML syntax error says where (0-based)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: not a readable YAML file ({str(error).splitlines()[0]}).") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with {holds}.")
    return data


def _read_config(path: Path) -> dict[str, Any]:
    data = _read_yaml(path, ", ".join(CONFIG_KEYS))
    schedule: dict[str, Any] = {}
    for entry in data.pop("defaults", None) or []:  # as in configs/submission/*.yaml: a shared schedule
        if entry == "_self_":
            continue
        if not (isinstance(entry, dict) and list(entry) == ["/schedule@hparams"]):
            raise UserError(f"{path}: defaults may name a shared schedule only (- /schedule@hparams: cosine_warmup; "
                            f"the choices are configs/schedule/*.yaml), found {entry!r}.")
        schedule.update(_schedule(str(entry["/schedule@hparams"]), path))
    if schedule:
        data["hparams"] = {**schedule, **(data.get("hparams") or {})}
    return data


def _schedule(name: str, where: Path) -> dict[str, Any]:
    """A shared schedule of configs/schedule/ (the same files the built-in submissions use)."""
    from importlib import resources

    from omegaconf import OmegaConf

    folder = resources.files("configs") / "schedule"
    choices = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    if name not in choices:
        raise UserError(f"{where}: no schedule '{name}'. Shared schedules: {', '.join(choices)}.")
    return OmegaConf.to_container(OmegaConf.create((folder / f"{name}.yaml").read_text()))


def declared_defaults(cls: type) -> dict[str, Any]:
    """The defaults the class's ``Hparams`` dataclass declares (fields without one are left out:
    building the hyperparameters then names them as missing; so are those the class computes itself,
    ``init=False``: no setting)."""
    hparams = getattr(cls, "Hparams", None)
    if hparams is None or not dataclasses.is_dataclass(hparams):
        return {}
    out = {}
    for field in dataclasses.fields(hparams):
        if not field.init:
            continue
        if field.default is not dataclasses.MISSING:
            out[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = field.default_factory()
    return out


def workload_config(source: Source, cls: type, config_file: str | None, taken: set[str]) -> dict[str, Any]:
    """The config of an external workload: ``workload_config=`` or the YAML beside its module (the
    format of ``configs/workload/*.yaml``; the trial schema checks its keys), with its ``name``,
    ``source`` and ``config_from``."""
    module_path = module_file(cls)
    beside = module_path.with_suffix(".yaml") if module_path else None
    path = Path(config_file).expanduser().resolve() if config_file is not None else beside
    if path is None or not path.is_file():
        raise UserError(f"The workload {source.text()} has no config: give workload_config=PATH, or put "
                        f"{beside.name if beside else 'a YAML of its stem'} beside its module (the format of "
                        f"configs/workload/fashion_mnist.yaml: model, sizes with target, max_runtime_s, step_hint)."
                        + missing_yaml_hint(source.text()))
    data = _read_yaml(path, "model, sizes, ...")
    _check_workload_keys(path, data)
    declared = getattr(cls, "name", None)  # the Workload contract names its class; records use that name
    if isinstance(declared, str) and data.get("name", declared) != declared:
        raise UserError(f"{path}: name {data['name']!r} differs from the workload class's name {declared!r}; "
                        f"leave name out of the YAML or make them agree.")
    data["name"] = _name("workload", data, source, cls, taken)
    return {**data, "source": source.text(), "config_from": str(path)}


SET_BY_THE_HARNESS = ("source", "config_from")  # a plugin config's keys that say where it came from


def _check_workload_keys(path: Path, data: dict[str, Any]) -> None:
    """A misspelt key or a value of the wrong type in a workload's YAML, named with the file: composed
    later, it read as an override of the command line."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from harness.specs import SizeSpec, WorkloadConfig

    keys = [f.name for f in dataclasses.fields(WorkloadConfig) if f.name not in SET_BY_THE_HARNESS]
    layout = (f"A workload's YAML has the keys {', '.join(keys)}; each of its sizes the keys "
              f"{', '.join(f.name for f in dataclasses.fields(SizeSpec))} (target, max_runtime_s and step_hint "
              f"required).")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(WorkloadConfig), data)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        raise UserError(f"{path}: {str(error).strip().splitlines()[0].rstrip('.')} (key '{key}'). {layout}") from None
    missing = sorted(k for k in OmegaConf.missing_keys(merged) if k != "name")  # the name has defaults (_name)
    if missing:
        raise UserError(f"{path}: no value for {', '.join(missing)}. {layout}")
    if not merged.sizes:
        raise UserError(f"{path}: no sizes. {layout}")


def _name(kind: str, data: dict[str, Any], source: Source, cls: type, taken: set[str]) -> str:
    """A plugin's name: its config's, else its class's ``name``, else its file's stem (a module's
    last part; ``:Class`` gives the class's name); never a built-in one's."""
    name = data.get("name") or (cls.name if isinstance(getattr(cls, "name", None), str) else None)
    if not name:
        name = Path(source.module).stem if source.is_file else source.module.rsplit(".", 1)[-1]
        if source.attribute != KINDS[kind][1] and not source.is_file:
            name = source.attribute
    name = str(name)
    if name in taken:
        raise UserError(f"The {kind} {source.text()} would be called '{name}', the name of a built-in {kind}: its "
                        f"records would mix with that one's. Name it in its config (name: my_{name}).")
    return name
