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
from pathlib import Path
from typing import Any

# module imported -> what it gives access to
IMPORTS = {
    "gc": "garbage collector", "inspect": "introspection", "ctypes": "raw memory", "cffi": "raw memory",
    "socket": "network", "urllib": "network", "http": "network", "requests": "network", "ftplib": "network",
    "subprocess": "subprocesses", "multiprocessing": "subprocesses", "pty": "subprocesses",
    "importlib": "dynamic import", "builtins": "builtins", "pickle": "pickle", "marshal": "raw code",
}
# attribute read -> what it gives access to
ATTRIBUTES = {
    "_getframe": "interpreter frames", "f_back": "interpreter frames", "f_locals": "interpreter frames",
    "f_globals": "interpreter frames", "tb_frame": "interpreter frames", "gi_frame": "interpreter frames",
    "__closure__": "closures", "__self__": "bound methods", "__globals__": "function globals",
    "__code__": "function code", "get_objects": "garbage collector", "get_referrers": "garbage collector",
    "__subclasses__": "introspection", "system": "subprocesses", "popen": "subprocesses", "fork": "subprocesses",
    "execv": "subprocesses", "spawnv": "subprocesses",
}
# builtin called -> what it does
CALLS = {"open": "file access", "eval": "dynamic code", "exec": "dynamic code", "compile": "dynamic code",
         "__import__": "dynamic import", "globals": "module globals", "vars": "introspection"}


def audit_source(text: str) -> list[dict[str, Any]]:
    """Every place in Python source ``text`` that uses one of the above: line, what, kind."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, IMPORTS[alias.name.split(".")[0]]) for alias in node.names
                      if alias.name.split(".")[0] in IMPORTS]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in IMPORTS:
            found.append((node.lineno, node.module, IMPORTS[node.module.split(".")[0]]))
        elif isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
            found.append((node.lineno, f".{node.attr}", ATTRIBUTES[node.attr]))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CALLS:
            found.append((node.lineno, f"{node.func.id}()", CALLS[node.func.id]))
    return [{"line": line, "what": what, "kind": kind} for line, what, kind in sorted(set(found))]


def audit_file(path: Path | None) -> dict[str, Any]:
    """The audit of one source file (a submission's module): ``file``, ``findings`` and ``kinds``
    (the distinct kinds, sorted); ``error`` instead when it cannot be read or parsed."""
    if path is None:
        return {"file": None, "findings": [], "kinds": [], "error": "no source file"}
    try:
        findings = audit_source(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as error:
        return {"file": str(path), "findings": [], "kinds": [], "error": f"{type(error).__name__}: {error}"}
    return {"file": str(path), "findings": findings, "kinds": sorted({f["kind"] for f in findings})}
