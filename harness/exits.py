"""Ending a process at once: its output flushed, the interpreter's teardown skipped; and a process
that ends with its parent.

For a process that has written and closed everything it writes. The teardown then only costs
time (0.3-0.4 s after scoring 100,000 trials) or, in a rank of a data-parallel trial, can abort
the process: gloo's threads of a collective that another rank's exit broke outlive
``destroy_process_group``, and destroying them at the interpreter's exit raised SIGABRT
("terminate called without an active exception") in about one 2-process trial in eight.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys


def exit_now(code: int) -> None:
    """End the process with ``code`` once its output is flushed, skipping the interpreter's teardown."""
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # the reader left, or a stream was closed: nothing more to say
        pass
    os._exit(code)


def die_with_parent(signum: int) -> None:
    """Have Linux send ``signum`` to this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``).

    torch's launcher starts its workers in sessions of their own and does not end them when it is
    killed itself; without this a ``kill -9`` of ``optbench trial`` would leave ranks training,
    rank 0 holding the trial's lock. Elsewhere than on Linux: nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(1, signum, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the call: nobody would send it
        os.kill(os.getpid(), signum)
