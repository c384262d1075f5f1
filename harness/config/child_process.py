"""Fresh processes forked from one forkserver: the trainers of ``isolation=process`` and the
throwaway processes that import a user's submission for the harness (:mod:`harness.config.described`).

The server is a fresh interpreter that imports torch, the trainer and the built-in plugins' code
(no data) once; each child is forked from it, so it pays neither for importing them nor holds
anything of the process that asked for it (its loaded workloads, the target, the clock).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import secrets
import sys
from collections.abc import Iterator
from multiprocessing import connection, forkserver, spawn
from typing import Any

from harness.config.names import config_names, submission_names, workload_names
from harness.config.plugins import entry_points, looks_external

_CONTEXT: Any = None


def context() -> Any:
    """The forkserver context (set up once per process; the server starts with the first child)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        plugins = [f"workloads.{name}" for name in workload_names()] + \
            [f"submissions.{name}" for name in submission_names()]
        _CONTEXT.set_forkserver_preload(["harness.config.server_setup", "harness.core.trainer", *plugins])
    return _CONTEXT


def start_server() -> None:
    """Start the forkserver now instead of at the first child. The server imports torch, the
    trainer and the built-in plugins (~5 s of CPU); a command that will ask it for a child calls
    this before its own imports (torch, Hydra), so that the two run side by side (a near-empty
    ``optbench trial`` of a user's submission file: 6.8 s instead of 12.7 s on 2 cores, with the
    ranks' changes of docs/decisions.md; scripts/bench_startup.py)."""
    context()
    with bare_start("optbench-forkserver"):
        forkserver.ensure_running()


def server_pid() -> int | None:
    """The pid of this process's forkserver, None while none runs. Every process it forks is this
    process's (a trainer, a describing child): one found there that is not the trainer of the trial
    running is one a submission had it fork (harness/core/isolation.py freezes and kills those)."""
    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    return pid if isinstance(pid, int) else None


def children_ahead(overrides: list[str]) -> bool:
    """Whether a command with these overrides will ask the forkserver for a child: a user's
    submission to describe (named by its file, its module or an installed entry point, also in a
    suite's ``submissions=[...]``), or the trainer processes of ``isolation=process``."""
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if key == "isolation" and value == "process":
            return True
        if key in ("submission", "submissions"):
            names = [name.strip().strip("'\"") for name in value.strip("[]").split(",")]
            if any(_external_submission(name) for name in names if name):
                return True
    return False


def _external_submission(name: str) -> bool:
    return looks_external(name) or (name not in config_names("submission") and name in entry_points("submission"))


@contextlib.contextmanager
def bare_start(name: str) -> Iterator[None]:
    """While a child starts: what multiprocessing tells the new process about this one is cut to
    what it needs. Left alone it would import this process's main script in the child (slow, and a
    script without a ``__main__`` guard would run again there), hand it our command line (whose
    overrides may name the target), and make it switch to our start method (inside a joblib/loky
    worker, ``loky``, which a child cannot load). ``name``: the child's ``sys.argv[0]``.

    And a forkserver started meanwhile listens on an abstract Unix socket (Linux), not on a file:
    any process of the user may connect to a socket file and have the server fork it a process,
    which a trainer confined by Landlock would not be (harness/core/sandbox.py); Landlock's scopes
    (ABI >= 6) keep a confined trainer from abstract sockets outside its own processes."""
    full, address = spawn.get_preparation_data, connection.arbitrary_address

    def bare(process_name: str) -> dict[str, Any]:
        data = full(process_name)
        for key in ("init_main_from_name", "init_main_from_path"):
            data.pop(key, None)
        data.update(sys_argv=[name], start_method="forkserver")
        return data

    def abstract(family: str) -> Any:
        if family == "AF_UNIX" and sys.platform.startswith("linux"):
            return f"\0optbench-forkserver-{os.getpid()}-{secrets.token_hex(8)}"
        return address(family)

    spawn.get_preparation_data, connection.arbitrary_address = bare, abstract
    try:
        yield
    finally:
        spawn.get_preparation_data, connection.arbitrary_address = full, address
