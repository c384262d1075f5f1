"""The submission clock: counts only time spent in submission code.

The runner resumes it around training steps and pauses it around evaluation, so model and
optimizer construction, evaluation and record writing are never charged. On CUDA the device
is synchronised only when the clock is paused (at evaluation boundaries), never per step; a
per-step :meth:`peek` reads host time, which is what the per-step budget check uses.

The clock's function is bound when this module is imported: an in-process submission that
replaces ``time.perf_counter`` (an attribute of a module anyone can set) changes its own clock, not
the harness's; the runner's wall-time cross-check (``clock_suspect``) binds ``time.monotonic``
the same way.
"""

from __future__ import annotations

from time import perf_counter

import torch


class SubmissionClock:
    """Accumulates submission time across resume/pause intervals."""

    def __init__(self, device: torch.device):
        self._cuda = device.type == "cuda"
        self._device = device
        self._elapsed = 0.0
        self._started: float | None = None

    @property
    def running(self) -> bool:
        return self._started is not None

    def resume(self) -> None:
        """Start charging time (the device is idle here: the previous pause synchronised it)."""
        if self._started is None:
            self._started = perf_counter()

    def pause(self) -> float:
        """Stop charging time, after the device has finished the queued work; returns the total."""
        if self._started is not None:
            try:
                if self._cuda:
                    torch.cuda.synchronize(self._device)  # a queued kernel's error is raised here...
            finally:  # ...with the clock stopped all the same, so that a second pause (the runner's) is quiet
                self._elapsed += perf_counter() - self._started
                self._started = None
        return self._elapsed

    def restore(self, elapsed: float) -> None:
        """Start from ``elapsed`` seconds already charged (a trial resumed from a checkpoint)."""
        if self._started is not None:
            raise RuntimeError("restore() needs a paused clock")
        self._elapsed = float(elapsed)

    def peek(self) -> float:
        """Submission time so far without synchronising (on CUDA, host time: a lower bound)."""
        if self._started is None:
            return self._elapsed
        return self._elapsed + (perf_counter() - self._started)

    @property
    def elapsed(self) -> float:
        """Submission time accumulated up to the last pause."""
        return self._elapsed
