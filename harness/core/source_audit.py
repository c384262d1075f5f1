"""A static look at a submission's source for the ways around its contract: introspection that
can reach the harness's objects (interpreter frames, the garbage collector, closures and bound
methods), raw memory, files, the network, subprocesses and dynamic code. Recorded in every
manifest and shown on the leaderboard so that a reviewer sees them at a glance.

It is a flag, not a verdict: ``open`` may read a file of the submission's own, ``inspect`` may
only print a signature. And it is not a proof: code can hide what it does from a reader of its
text (``getattr(sys, "_get" + "frame")``), which is why isolation (docs/writing-a-submission.md,
what a submission may not touch) is the guarantee, and this the reviewer's aid.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# module imported -> what it gives access to
IMPORTS = {
    "gc": "garbage collector", "inspect": "introspection", "ctypes": "raw memory", "cffi": "raw memory",
    "socket": "network", "urllib": "network", "http": "network", "requests": "network", "ftplib": "network",
    "subprocess": "subprocesses", "multiprocessing": "subprocesses", "pty": "subprocesses",
    "importlib": "dynamic import", "builtins": "builtins", "pickle": "pickle", "marshal": "raw code",
    "threading": "threads", "_thread": "threads", "concurrent": "threads", "asyncio": "threads",
    "workloads": "workload code (its data)", "scoring": "harness internals",
}
# the harness's own modules a submission may import: the contracts (docs/architecture.md); the rest
# of the harness (its clock, runner, records) is internals
CONTRACTS = {"harness", "harness.submission", "harness.workload", "harness.routing", "harness.errors",
             "harness.specs", "harness.log", "harness.identity"}
# attribute read -> what it gives access to
ATTRIBUTES = {
    "_getframe": "interpreter frames", "f_back": "interpreter frames", "f_locals": "interpreter frames",
    "f_globals": "interpreter frames", "tb_frame": "interpreter frames", "gi_frame": "interpreter frames",
    "__closure__": "closures", "__self__": "bound methods", "__globals__": "function globals",
    "__code__": "function code", "get_objects": "garbage collector", "get_referrers": "garbage collector",
    "__subclasses__": "introspection", "system": "subprocesses", "popen": "subprocesses", "fork": "subprocesses",
    "execv": "subprocesses", "spawnv": "subprocesses",
    "read_text": "file access", "read_bytes": "file access", "write_text": "file access", "write_bytes": "file access",
    "fromfile": "file access", "memmap": "file access", "loadtxt": "file access", "genfromtxt": "file access",
    "open": "file access",
    "register_forward_hook": "model hooks", "register_forward_pre_hook": "model hooks",
    "register_module_forward_hook": "model hooks", "register_module_forward_pre_hook": "model hooks",
}
# module.function called -> what it does (torch.load(path), np.load(path): a file)
MODULE_CALLS = {("torch", "load"): "file access", ("np", "load"): "file access", ("numpy", "load"): "file access",
                ("torch", "save"): "file access", ("np", "save"): "file access", ("numpy", "save"): "file access"}
# builtin called -> what it does
CALLS = {"open": "file access", "eval": "dynamic code", "exec": "dynamic code", "compile": "dynamic code",
         "__import__": "dynamic import", "globals": "module globals", "vars": "introspection"}


def _imported_kind(module: str) -> str | None:
    """What importing ``module`` gives access to, per the tables above (None: nothing of note)."""
    if module.split(".")[0] == "harness":
        return None if module in CONTRACTS else "harness internals"
    return IMPORTS.get(module.split(".")[0])


def _root_name(node: ast.AST) -> str | None:
    """The name a chain of attributes, items and calls starts from (``time`` of ``time.perf_counter``,
    ``sys`` of ``sys.modules["time"].perf_counter``), None for another start."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def audit_source(text: str) -> list[dict[str, Any]]:
    """Every place in Python source ``text`` that uses one of the above, and every assignment to an
    attribute of an imported module or object (``time.perf_counter = ...``: what the harness calls is
    replaced): line, what, kind."""
    tree = ast.parse(text)
    imported = set()  # the names the file's imports bind
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
            found += [(node.lineno, alias.name, kind) for alias in node.names if (kind := _imported_kind(alias.name))]
        elif isinstance(node, ast.ImportFrom):
            imported |= {alias.asname or alias.name for alias in node.names}
            found += [(node.lineno, f"{node.module}.{alias.name}", MODULE_CALLS[(node.module, alias.name)])
                      for alias in node.names if (node.module, alias.name) in MODULE_CALLS]  # from torch import load
            modules = [node.module] if node.module else []
            modules += [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "harness" else []
            found += [(node.lineno, module, kind) for module in modules if (kind := _imported_kind(module))]
    for node in ast.walk(tree):  # another name for an imported one (t = time): imported too
        if isinstance(node, ast.Assign) and _root_name(node.value) in imported and \
                isinstance(node.value, (ast.Name, ast.Attribute, ast.Subscript)):
            imported |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
            found.append((node.lineno, f".{node.attr}", ATTRIBUTES[node.attr]))
        elif isinstance(node, ast.Attribute) and node.attr == "modules" and _root_name(node) == "sys":
            found.append((node.lineno, "sys.modules", "module table"))  # every module loaded, the harness's too
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CALLS:
            found.append((node.lineno, f"{node.func.id}()", CALLS[node.func.id]))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in MODULE_CALLS:
            found.append((node.lineno, f"{node.func.value.id}.{node.func.attr}()",
                          MODULE_CALLS[(node.func.value.id, node.func.attr)]))
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            found += [(node.lineno, f"{ast.unparse(target)} = ...", "patches imported code") for target in targets
                      if isinstance(target, (ast.Attribute, ast.Subscript)) and _root_name(target) in imported]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") \
                and node.args and _root_name(node.args[0]) in imported:
            found.append((node.lineno, f"{node.func.id}({ast.unparse(node.args[0])}, ...)", "patches imported code"))
    return [{"line": line, "what": what, "kind": kind} for line, what, kind in sorted(set(found))]


def audit_file(path: Path | None, others: Iterable[Path] = ()) -> dict[str, Any]:
    """The audit of a submission's module at ``path`` and of ``others`` (the modules of its own
    package it imports: harness/config/code_files.py): ``file``, ``findings`` (each of another file
    naming it) and ``kinds`` (the distinct kinds, sorted); ``error`` instead when ``path`` cannot be
    read or parsed (another file that cannot be is a finding)."""
    if path is None:
        return {"file": None, "findings": [], "kinds": [], "error": "no source file"}
    try:
        findings = audit_source(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as error:
        return {"file": str(path), "findings": [], "kinds": [], "error": f"{type(error).__name__}: {error}"}
    for other in sorted(set(others) - {Path(path)}):
        try:
            findings += [{**finding, "file": str(other)} for finding in audit_source(other.read_text(encoding="utf-8"))]
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as error:
            findings.append({"line": 0, "what": f"{type(error).__name__}: {error}", "kind": "unreadable source",
                             "file": str(other)})
    return {"file": str(path), "findings": findings, "kinds": sorted({f["kind"] for f in findings})}
