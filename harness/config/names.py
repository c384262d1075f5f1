"""The names of the built-in workloads and submissions, found without importing them (nor torch).

Cheap enough for a command's first moments: the CLI uses them to start the children's forkserver
before its own imports (:mod:`harness.config.child_process`), and the plugin resolution to tell a
built-in name from an external one. The registry (:mod:`harness.config.registry`) loads the classes.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib import resources


def _modules(package: str) -> list[str]:
    """The public modules of a plugin package, found by name: the plugins sit above the harness
    and are loaded as data, as an external one is (harness/config/plugins.py)."""
    return sorted(m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__)
                  if not m.name.startswith("_"))


def workload_names() -> list[str]:
    """Every registered workload family."""
    return _modules("workloads")


def submission_names() -> list[str]:
    """Every registered submission."""
    return _modules("submissions")


def config_names(group: str) -> list[str]:
    """The YAML files of a config group (``workload`` or ``submission``)."""
    folder = resources.files("configs") / group
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
