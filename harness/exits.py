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
import select
import signal
import sys
import threading
import time


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


def end_with(pid: int, group: bool = False) -> None:
    """End this process (with its process group when ``group``: it leads one) as soon as the process
    ``pid`` has ended: a thread waits on it (a pidfd on Linux, else a poll a second). For a
    process whose parent is not the one it serves: a trainer (forked from a forkserver) serving a
    harness, a parallel launcher's worker serving the tune that launched it. Without it a ``kill -9``
    of that process left them training, or holding their data, for minutes."""
    def wait() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll
            fd = None
        if fd is not None:
            select.select([fd], [], [])
        else:
            while _alive(pid):
                time.sleep(1.0)
        if group:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    if pid in _WATCHED:
        return
    _WATCHED.add(pid)
    if not _alive(pid):
        wait()
    threading.Thread(target=wait, name="optbench-end-with", daemon=True).start()


_WATCHED: set[int] = set()  # the processes a thread of this one already waits on (a worker runs many jobs)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: it exists
        return True
    return True
