"""``isolation=inprocess``: the submission trains in the harness's own process (fast iteration,
debugging, the tools).

The clock runs around the steps (:class:`harness.core.steps.StepRunner`) and is checked after
every one. What this mode guarantees and what it does not (docs/decisions.md): the submission is
handed nothing that leads to the workload, the target or the clock, but the interpreter reaches
every object of the process (``gc``, frames); the static audit (:mod:`harness.core.source_audit`)
lists such code and ``clock_suspect`` flags a clock that was made to run slow.
"""

from __future__ import annotations

import traceback
from contextlib import AbstractContextManager
from typing import Any

import torch

from harness.core.checkpoint import capture_rng
from harness.core.clock import SubmissionClock
from harness.core.compile import compile_before_clock, compiles
from harness.core.interrupts import UserInterrupts
from harness.core.memory import MemoryMeter
from harness.core.parts import build_submission, model_and_info, training_stream
from harness.core.progress import Progress
from harness.core.steps import DEVICE_FAULT, StepRunner, Stop
from harness.core.team import RankLeft, current_team
from harness.routing import routing_report
from harness.submission import Submission, TrainingHparams
from harness.workload import Workload


class InProcessTrainer:
    """The model, the submission and the batch stream in this process (:class:`harness.core.steps.Trainer`)."""

    def __init__(self, workload: Workload, submission_cls: type[Submission], hparams: TrainingHparams, seed: int,
                 device: torch.device, check_every: int, progress: Progress, interrupts: UserInterrupts,
                 compile_setting: Any = False, charge_compile: bool = False):
        self.workload, self.submission_cls, self.hparams, self.seed = workload, submission_cls, hparams, seed
        self.device, self.check_every, self.progress, self.interrupts = device, check_every, progress, interrupts
        self.meter = MemoryMeter(device)
        self.clock = SubmissionClock(device)
        with self.meter.excluded():  # the model counts in the peak, its warm-ups' temporaries do not
            self.model, self.info = model_and_info(workload, hparams.batch_size, seed)  # the workload's part
            self.compile_s = compile_before_clock(self.model, workload, hparams.batch_size, seed,  # torch.compile:
                                                  compile_setting, charge_compile)  # warmed up, restored, uncharged
        self.meter.compiler_in_process = device.type != "cuda" and compiles(compile_setting, workload, device)
        self.team = current_team()  # data parallel: this process's rank (core/team.py); one process: no-ops
        self.submission: Submission | None = None
        self.steps: StepRunner | None = None

    def construct(self) -> Stop | None:
        self.clock.resume()
        try:
            self.submission = build_submission(self.submission_cls, self.model, self.hparams, self.info, self.seed)
        except BaseException as error:
            self.interrupts.reraise_if_real(error)
            return self._pause(Stop(0, "failed", error=traceback.format_exc(), error_in="submission.__init__"))
        failed = self._pause(None, 0, "submission.__init__")
        if failed is not None:
            return failed
        batches, compute_loss = training_stream(self.workload, self.team.wrap(self.model), self.hparams.batch_size,
                                                self.seed)
        batches = self.team.shard(batches, self.hparams.batch_size)  # data parallel: this rank's slice
        self.steps = StepRunner(self.submission, batches, compute_loss, self.device, self.check_every,
                                self.interrupts)
        return None

    def restore(self, resume: dict[str, Any]) -> None:
        """Continue from a checkpoint; the submission's ``load_state_dict`` is charged."""
        self.clock.resume()
        try:
            self._steps().restore(self.model, resume, loaded=self.clock.pause)
        finally:
            self.clock.pause()  # quiet when already paused

    def uncounted_memory(self) -> AbstractContextManager[None]:
        return self.meter.excluded()

    def run(self, stop_step: float, budget: float, next_eval_s: float) -> Stop:
        clock, progress, team = self.clock, self.progress, self.team
        agreed: list[float] = []  # data parallel: the slowest rank's clock after the last step

        def due(step: int) -> bool:
            now = agreed[0] if agreed else clock.peek()
            if now > budget or now >= next_eval_s:
                return True
            progress.tick(step, now)
            return False

        def agree(diverged: bool) -> bool:  # data parallel: one exchange per step (core/team.py)
            diverged, now = team.agree(diverged, clock.peek())
            agreed[:] = [now]
            return diverged

        clock.resume()
        try:
            stop = self._steps().run(stop_step, due, agree if team.size > 1 else None, team.check_in)
        except RankLeft:  # data parallel: another rank failed after its step (runner.py's record says which)
            stop = self._left(self._steps().step)  # before the clock's synchronisation, which would wait for it
        except BaseException:
            clock.pause()
            raise
        stop = self._pause(stop, stop.step, "submission.update")  # synchronises the device
        if team.size > 1 and stop.status == "due":  # data parallel: the slowest clock, the mean loss
            try:
                elapsed, loss, finite = team.at_eval(clock.elapsed, torch.tensor(stop.loss),
                                                     torch.ones((), dtype=bool))
            except RankLeft:  # another rank failed in its preparation for the evaluation
                return self._left(stop.step)
            clock.restore(elapsed)
            stop = Stop(stop.step, "due" if bool(finite) else "diverged", float(loss))
        elif agreed:  # data parallel, ended otherwise (diverged): the slowest clock too
            clock.restore(max(clock.elapsed, agreed[0]))
        return stop

    def _pause(self, stop: Stop | None, step: int = 0, error_in: str = "") -> Stop | None:
        """Pause the clock, which on CUDA waits for the queued work: an error raised there is that of a
        kernel the submission queued (:meth:`harness.core.steps.StepRunner._read`), so ``stop`` becomes
        a failure of ``error_in`` at ``step``; one that failed already (CUDA's error stays set, and is
        raised again at every wait) is kept as it is."""
        try:
            self.clock.pause()
        except Exception:
            if stop is not None and stop.status == "failed":
                return stop
            return Stop(step, "failed", error=f"{traceback.format_exc()}{DEVICE_FAULT}", error_in=error_in)
        return stop

    def _left(self, step: int) -> Stop:
        """Another rank left the trial (:class:`RankLeft`, being handled): end the exchanges queued
        with it, and the trial as failed at ``step`` (the record names that rank's failure)."""
        self.team.abandon()
        return Stop(step, "failed", error=traceback.format_exc(), error_in="harness")

    def state(self) -> dict[str, Any]:
        assert self.submission is not None
        return {"model": self.model.state_dict(), "submission": self.submission.state_dict(),
                "rng": capture_rng(self.device)}

    def reports(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        routing = routing_report(self.model, self.submission) if self.submission is not None else None
        return self.meter.report(self.model, self.submission), routing

    def close(self) -> None:
        """Nothing to release: everything is this process's."""

    def _steps(self) -> StepRunner:
        if self.steps is None:
            raise RuntimeError("construct() first")
        return self.steps
