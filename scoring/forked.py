"""Scoring's work in forked processes, where that is safe (Linux) and pays (more than one CPU).

A forked process starts with this one's memory, so what it is given is not copied through a
pipe: reading the records (:func:`scoring.records.read_records`) splits across a pool of them,
and ``optbench score`` draws its plots in one while this process runs the bootstrap
(:class:`Aside`). Only the answers travel back, pickled. Warnings raised there are raised
again here.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether work may be forked off: Linux (fork is the platform's way there; macOS's system
    libraries are not fork-safe) with more than one CPU to run it on."""
    return sys.platform.startswith("linux") and usable_cpus() > 1


class Aside:
    """``function(*args)`` run in a forked process while this one goes on; :meth:`result` waits.

    When no process can be started (no fork, one CPU, limits), or it ends without an answer (it
    raised, or was killed), the call is made here instead, in :meth:`result`: an error is then
    raised here with its own traceback, as a direct call would raise it.
    """

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self.function, self.args = function, args
        self.process = self.receive = None
        if not can_fork():
            return
        for stream in (sys.stdout, sys.stderr):  # else what they hold would be written by both processes
            stream.flush()
        context = mp.get_context("fork")
        try:
            self.receive, send = context.Pipe(duplex=False)
            self.process = context.Process(target=_run, args=(send, function, args), daemon=True)
            self.process.start()
            send.close()
        except OSError:  # no process to be had
            self.process = self.receive = None

    def result(self) -> Any:
        answer = None
        if self.process is not None:
            try:
                answer = self.receive.recv()
            except (EOFError, OSError):  # it died
                answer = None
            self.process.join()
            self.receive.close()
        if answer is None or answer[0] != "ok":
            return self.function(*self.args)
        for message, category in answer[2]:
            warnings.warn(message, category, stacklevel=2)
        return answer[1]


def _run(send: Any, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """In the forked process: the call's result and warnings, or ("failed",) to have it made again."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = function(*args)
        send.send(("ok", value, [(str(w.message), w.category) for w in caught]))
    except BaseException:  # any failure: the caller makes the call itself and raises it there
        send.send(("failed",))
    finally:
        send.close()
