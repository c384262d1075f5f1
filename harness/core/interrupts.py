"""Telling a real interrupt from submission code that raises ``KeyboardInterrupt`` or ``SystemExit``.

A submission is other people's code: ``sys.exit()`` or ``raise KeyboardInterrupt`` inside its
``update`` must fail that trial, not end a whole sweep with exit 0. A user's Ctrl-C, ``scancel``
or a SLURM preemption must still stop it (and leave it resumable). The difference is whether a
signal arrived: :func:`user_interrupts` notes every one that does while a trial runs.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class SignalHandlerError(BaseException):
    """A signal's own handler raised ``error``, an Exception (submitit's SIGUSR2 handler raises
    ``UncompletedJobError`` once a job has timed out ``max_num_timeout`` times): carried as a
    BaseException past the places that catch submission code's errors, so that it stops the trial
    as an interrupt (its record resumable) instead of failing it; :func:`user_interrupts` raises
    ``error`` itself again when it leaves."""

    def __init__(self, error: Exception):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


class UserInterrupts:
    """Tells a real interrupt (a signal arrived) from a ``KeyboardInterrupt``/``SystemExit`` raised by code."""

    def __init__(self) -> None:
        self.signalled: int | None = None

    def reraise_if_real(self, error: BaseException) -> None:
        """Re-raise ``error`` unless it is submission code's own: a plain Exception, or a
        BaseException raised while no signal arrived."""
        if not isinstance(error, Exception) and self.signalled is not None:
            raise error


@contextlib.contextmanager
def user_interrupts() -> Iterator[UserInterrupts]:
    """Note every SIGINT/SIGTERM/SIGUSR2 that arrives while a trial runs, then let its handler act.

    Only signals with a Python handler are wrapped (SIGINT's KeyboardInterrupt, submitit's
    preemption handlers); the wrapper records the signal and calls the original, so Ctrl-C,
    ``scancel`` and requeues behave as before. Outside the main thread signals cannot be
    wrapped: every KeyboardInterrupt/SystemExit then counts as real (stops the sweep).
    """
    interrupts = UserInterrupts()
    if threading.current_thread() is not threading.main_thread():
        interrupts.signalled = -1
        yield interrupts
        return
    previous: dict[int, Any] = {}

    def noted(signum: int, frame: Any) -> Any:
        interrupts.signalled = signum
        try:
            return previous[signum](signum, frame)
        except Exception as error:
            raise SignalHandlerError(error) from error

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, noted)
    try:
        yield interrupts
    except SignalHandlerError as stopped:
        raise stopped.error from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
