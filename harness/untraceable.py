"""Keep the submission's processes out of the harness's memory (Linux; elsewhere nothing).

Unless the kernel's Yama restriction is on (off in many distributions and containers), any
process of a user may read and write another of that user through ``/proc/PID/mem``, ``ptrace``
or ``process_vm_writev``; root may always. A trainer process (``isolation=process``) found the
harness two parents up and rewrote the trial's target in its memory to 0: a trial that never
passed 12 % accuracy was recorded as reaching its target at its first evaluation. Two things
close that door, each needed:

- every process that imports the harness is made undumpable (``PR_SET_DUMPABLE=0``), so that only
  a process holding ``CAP_SYS_PTRACE`` may reach into it: the harness, the forkserver that forks
  the trainers (a trainer that rewrote it could plant code in every later one), and a trainer (a
  trial's trainer beside it under ``launcher=parallel``). It keeps its own ``/proc/self``;
  signals, pidfds and ``/proc/PID/stat`` work as before; it writes no core dump, and a debugger or
  profiler (``py-spy``, ``gdb``) attaches to it only as root;
- the processes that run a submission's code (the trainer, the child that describes its class, and
  the forkserver, so that any process a trainer has it fork does too: harness/config/server_setup.py)
  give up ``CAP_SYS_PTRACE`` for good (:func:`give_up_tracing`), which a process of root's (a
  container, a cluster job as root) holds: with it, undumpable is no barrier.

The flag passes to a forked child and is reset by ``exec``; hence the call at import
(``harness/__init__.py``), which every process of the harness makes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

PR_SET_DUMPABLE = 4  # prctl(2)
PR_CAPBSET_DROP = 24  # prctl(2): out of the bounding set, so no exec (a setuid binary) gets it back
CAP_SYS_PTRACE = 19  # capability.h
_CAPABILITY_VERSION_3 = 0x20080522  # capget(2): two 32-bit words per set


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Sets(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def refuse_tracing() -> None:
    """Make this process undumpable: only a process with ``CAP_SYS_PTRACE`` can reach its memory."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def give_up_tracing() -> None:
    """Drop ``CAP_SYS_PTRACE`` from this process (effective, permitted and bounding sets, so for good)
    and make it undumpable: for a process that runs a submission's code, before it runs any."""
    refuse_tracing()
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    with contextlib.suppress(OSError, AttributeError):
        libc.prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0)  # fails without CAP_SETPCAP: nothing to drop then
        header, sets = _Header(_CAPABILITY_VERSION_3, 0), (_Sets * 2)()
        if libc.capget(ctypes.byref(header), sets) == 0 and sets[0].permitted & (1 << CAP_SYS_PTRACE):
            for field in ("effective", "permitted", "inheritable"):
                setattr(sets[0], field, getattr(sets[0], field) & ~(1 << CAP_SYS_PTRACE))
            libc.capset(ctypes.byref(header), sets)
