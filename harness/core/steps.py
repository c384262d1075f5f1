"""The training steps between two evaluations: the one loop both isolation modes run.

In-process (:mod:`harness.core.inprocess`) the runner's process runs it with the clock around
it; with ``isolation=process`` the trainer process (:mod:`harness.core.trainer`) runs it and the
harness times it from outside (:mod:`harness.core.isolation`). Either way a step is: the next
batch, ``Submission.update``, the contract check on what it returned, the divergence check;
after the last step before an evaluation, ``prepare_for_eval`` and the final finiteness check
(all charged). What ends a run of steps is the caller's: a step number (every
``eval_every_steps``, ``max_steps``) or a ``due`` callable (the budget, ``eval_period_s``).
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
from torch import nn

from harness.core.checkpoint import restore_rng
from harness.core.clock import SubmissionClock
from harness.core.interrupts import UserInterrupts
from harness.submission import Submission
from harness.workload import Batch

UPDATE_CONTRACT = ("Submission.update(batch, compute_loss) must return the step's loss as a one-element tensor "
                   "(e.g. `return loss.detach()`); it returned a {found}. See docs/writing-a-submission.md.")

STREAM_ENDED = ("StopIteration: the workload's train_batches() stream ended (it must yield batches without end, "
                "wrapping around its training examples: a trial is stopped by its budget, not by the data)")

#: how a run of steps ended: an evaluation is due, the loss is not finite, submission code raised
STATUSES = ("due", "diverged", "failed")


@dataclass
class Stop:
    """Where and why a run of steps ended; ``loss`` is the last step's (the evaluation's train/loss)."""

    step: int
    status: str
    loss: float = math.nan
    error: str | None = None
    error_in: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEVICE_FAULT = ("(raised where the harness read the step's result: on CUDA a kernel's error surfaces at the next "
                "synchronisation, after the submission's update or prepare_for_eval that queued it; "
                "CUDA_LAUNCH_BLOCKING=1 makes it raise at the kernel itself)")


class DeviceFault(Exception):
    """An error raised where the host waited for the device (:meth:`StepRunner._read`); ``trace`` says where."""

    def __init__(self, trace: str):
        super().__init__(trace)
        self.trace = trace


class SubmissionFault(Exception):
    """What the submission did broke the trial, found by the harness between its steps (its processes
    running while they must be stopped): the trial fails as the submission's (``error_in``), not as
    the harness's, which a rerun would retry."""

    def __init__(self, message: str, error_in: str = "submission"):
        super().__init__(message)
        self.error_in = error_in


def next_stop_step(step: int, eval_every: int | None, max_steps: float) -> float:
    """The step after which the next run of steps ends at the latest: the next multiple of
    ``eval_every`` (when the workload evaluates by steps) or ``max_steps``, whichever comes first."""
    by_steps = (step // eval_every + 1) * eval_every if eval_every else math.inf
    return min(by_steps, max_steps)


class StepRunner:
    """Runs the submission's steps on the trial's batch stream, counting them."""

    def __init__(self, submission: Submission, batches: Iterator[Batch],
                 compute_loss: Callable[[Batch], torch.Tensor], device: torch.device, check_every: int,
                 interrupts: UserInterrupts):
        self.submission, self.batches, self.compute_loss = submission, batches, compute_loss
        self.check_every, self.interrupts = check_every, interrupts
        self.device, self.on_cuda = device, device.type == "cuda"
        # Whether every loss since the run began was finite. On CUDA, reading the loss syncs the
        # device: the flag accumulates on the device and is looked at every ``check_every`` steps
        # (and at every evaluation) instead of every step. On the CPU the loss is read each step
        # (a read costs no sync there) and the flag is the same, on the host: a non-finite loss
        # between two checks is caught at the next one on either device.
        self.all_finite = torch.ones((), dtype=torch.bool, device=device)
        self.step = 0

    def restore(self, model: nn.Module, resume: dict[str, Any], loaded: Callable[[], None] | None = None) -> None:
        """Put a checkpoint back: weights, submission state, the batch stream replayed up to its
        step (uncharged: the stream is a function of the seed), then the RNGs. On CUDA the device
        then finishes the replay's queued work, which the first charged step would otherwise wait for.
        ``loaded`` is called once the submission's ``load_state_dict`` is done (and on CUDA, what it
        queued): the trainers charge the time until then, the submission's code (work done there
        would otherwise be free at every resume)."""
        model.load_state_dict(resume["model"])
        self.submission.load_state_dict(resume["submission"])
        if self.on_cuda:
            torch.cuda.synchronize(self.device)
        if loaded is not None:
            loaded()
        for _ in range(resume["step"]):
            next(self.batches)
        restore_rng(resume["rng"], self.device)
        self.step = int(resume["step"])
        if self.on_cuda:
            torch.cuda.synchronize(self.device)

    def run(self, stop_step: float, due: Callable[[int], bool],
            agree: Callable[[bool], bool] | None = None, check_in: Callable[[], None] | None = None) -> Stop:
        """Steps until ``stop_step`` or until ``due(step)`` says so, then ``prepare_for_eval``.
        ``agree``, in a data-parallel trial, turns this rank's divergence into every rank's (and is
        called before ``due``, every step); ``check_in``, there, is called at each divergence check
        before the flag is read (:meth:`harness.core.team.Team.check_in`).

        A failure of submission code ends the run as ``failed`` with its traceback, and so does an
        error raised where the harness reads the device's results (:meth:`_read`), and one of the
        workload's batch stream (``error_in: workload.train_batches``: not the submission's, retried
        by a rerun once the workload is fixed); anything else raised is the harness's and goes up.
        """
        try:
            return self._run(stop_step, due, agree, check_in)
        except DeviceFault as fault:
            return Stop(self.step, "failed", error=fault.trace, error_in="submission.update")

    def _run(self, stop_step: float, due: Callable[[int], bool], agree: Callable[[bool], bool] | None,
             check_in: Callable[[], None] | None) -> Stop:
        submission, interrupts = self.submission, self.interrupts
        while True:
            try:
                batch = next(self.batches)
            except BaseException as error:  # the workload's stream (one that ended broke its contract)
                interrupts.reraise_if_real(error)
                return Stop(self.step, "failed", error=traceback.format_exc() + (
                    STREAM_ENDED if isinstance(error, StopIteration) else ""), error_in="workload.train_batches")
            try:
                loss = submission.update(batch, self.compute_loss)
            except BaseException as error:
                interrupts.reraise_if_real(error)
                return Stop(self.step, "failed", error=traceback.format_exc(), error_in="submission.update")
            if not (isinstance(loss, torch.Tensor) and loss.numel() == 1):  # host-side checks: no synchronisation
                return Stop(self.step, "failed", error=UPDATE_CONTRACT.format(found=type(loss).__name__),
                            error_in="submission.update")
            self.step += 1
            if self.on_cuda:
                self.all_finite &= torch.isfinite(loss).all()  # queued on the device (no synchronisation); any shape
            elif not math.isfinite(self._read(loss)):
                self.all_finite.fill_(False)
            check = self.step % self.check_every == 0
            if check and check_in is not None:
                check_in()  # data parallel: before the read, which on CUDA waits for this step's gradient exchange
            diverged = check and not self._read(self.all_finite)
            if agree is not None:
                diverged = agree(diverged)
            if diverged:
                return Stop(self.step, "diverged")
            if self.step >= stop_step or due(self.step):
                break
        try:
            submission.prepare_for_eval()  # charged: it is part of the algorithm
        except BaseException as error:
            interrupts.reraise_if_real(error)
            return Stop(self.step, "failed", error=traceback.format_exc(), error_in="submission.prepare_for_eval")
        value = self._read(loss)  # synchronises the device
        if not (self._read(self.all_finite) and math.isfinite(value)):
            return Stop(self.step, "diverged", value)
        return Stop(self.step, "due", value)

    def _read(self, tensor: torch.Tensor) -> Any:
        """``tensor.item()``, where the host waits for the device: on CUDA, the error of a kernel the
        submission queued (a device-side assert, an illegal address) is raised at the next such
        wait, here, not in ``update``. It is the submission's, as if ``update`` had raised it (a
        harness failure would keep the trial's checkpoint and be retried into the same fault)."""
        try:
            return tensor.item()
        except BaseException as error:
            self.interrupts.reraise_if_real(error)
            raise DeviceFault(f"{traceback.format_exc()}{DEVICE_FAULT}") from None


class Trainer(Protocol):
    """What the runner's loop drives, in either isolation mode. ``model`` is the harness's model:
    the weights it evaluates, as they were at the last stop; ``clock`` holds the charged time."""

    model: nn.Module
    clock: SubmissionClock

    def construct(self) -> Stop | None:
        """Build the submission, charged; a failed construction comes back as a ``failed`` Stop."""

    def restore(self, resume: dict[str, Any]) -> None:
        """Continue from a checkpoint (:meth:`StepRunner.restore`)."""

    def run(self, stop_step: float, budget: float, next_eval_s: float) -> Stop:
        """Charged steps until ``stop_step``, or until the charged time passes ``budget`` or
        reaches ``next_eval_s``; then ``prepare_for_eval`` and the model's weights ready to evaluate."""

    def state(self) -> dict[str, Any]:
        """The model's and submission's state and the RNGs: the trainer's part of a checkpoint."""

    def reports(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The memory and routing reports of the trial's end (:mod:`harness.core.memory`, :mod:`harness.routing`)."""

    def uncounted_memory(self) -> AbstractContextManager[None]:
        """Around the harness's own work in this process between runs (evaluation): its allocations
        are not the trial's peak memory (:meth:`harness.core.memory.MemoryMeter.excluded`)."""

    def close(self) -> None:
        """Release what the trainer holds (the trainer process, in process isolation)."""
