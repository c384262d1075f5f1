"""The steps between two evaluations (harness/core/steps.py), driven directly: a scripted
submission returns chosen losses, raises, or breaks the update contract, and each test checks the
Stop the run ends with (its step, status, loss, error) and what was asked of the caller's hooks."""

from __future__ import annotations

import itertools
import math
from dataclasses import astuple

import pytest
import torch

import harness.core.steps as steps
from harness.core.interrupts import UserInterrupts
from harness.core.steps import UPDATE_CONTRACT, StepRunner, Stop, next_stop_step


class Scripted:
    """A submission whose n-th update returns ``script[n]`` (a number becomes a 0-d tensor; an
    exception instance is raised; anything else is returned as is)."""

    def __init__(self, script: list, prepare_raises: BaseException | None = None):
        self.script, self.prepare_raises = list(script), prepare_raises
        self.updates, self.prepared = 0, 0

    def update(self, batch, compute_loss):
        value = self.script[self.updates]
        self.updates += 1
        if isinstance(value, BaseException):
            raise value
        return torch.tensor(float(value)) if isinstance(value, (int, float)) else value

    def prepare_for_eval(self):
        self.prepared += 1
        if self.prepare_raises is not None:
            raise self.prepare_raises


def runner_of(submission: Scripted, check_every: int = 1, device_flag: bool = False,
              interrupts: UserInterrupts | None = None) -> StepRunner:
    """A StepRunner on the CPU; ``device_flag``: run the CUDA path (the finiteness flag kept as a
    tensor, read only at checks), which works on a CPU tensor as it does on a device one."""
    run = StepRunner(submission, itertools.count(), lambda batch: torch.zeros(()), torch.device("cpu"), check_every,
                     interrupts or UserInterrupts())
    run.on_cuda = device_flag
    return run


def never(step: int) -> bool:
    return False


def test_steps_run_to_the_stop_step_then_prepare_for_eval_and_carry_on_from_there() -> None:
    submission = Scripted([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    run = runner_of(submission)
    assert run.run(4, never) == Stop(4, "due", 4.0)
    assert (submission.updates, submission.prepared, run.step) == (4, 1, 4)
    assert run.run(6, never) == Stop(6, "due", 6.0)  # the step count goes on
    assert (submission.updates, submission.prepared) == (6, 2)


def plain(stop: Stop) -> tuple:
    """A Stop's fields, with no loss (NaN) as "nan": NaN equals nothing, itself included, and Python
    3.13 compares a dataclass's fields with == (before, as tuples, which find the one NaN object equal)."""
    return tuple("nan" if isinstance(value, float) and math.isnan(value) else value for value in astuple(stop))


def test_due_is_asked_after_each_step_with_its_number() -> None:
    asked = []

    def due(step: int) -> bool:
        asked.append(step)
        return step == 3

    assert runner_of(Scripted([1.0] * 5)).run(10, due) == Stop(3, "due", 1.0)
    assert asked == [1, 2, 3]


@pytest.mark.parametrize("returned, name", [(0.5, "float"), (torch.tensor([1.0, 2.0]), "Tensor"), (None, "NoneType")])
def test_an_update_that_breaks_the_contract_fails_the_trial_naming_what_it_returned(returned, name) -> None:
    submission = Scripted([1.0, 1.0, 1.0, 1.0])
    run = runner_of(submission)
    submission.update = _returning(submission, 2, returned)
    stop = run.run(10, never)
    expected = Stop(2, "failed", error=UPDATE_CONTRACT.format(found=name), error_in="submission.update")
    assert plain(stop) == plain(expected)
    assert submission.prepared == 0


def _returning(submission: Scripted, at: int, value):
    """``submission.update`` returning ``value`` as is (not made a tensor) on call number ``at``."""
    real = submission.update

    def update(batch, compute_loss):
        if submission.updates == at:
            submission.updates += 1
            return value
        return real(batch, compute_loss)
    return update


def test_an_exception_in_update_fails_the_trial_with_its_traceback() -> None:
    stop = runner_of(Scripted([1.0, 1.0, RuntimeError("boom in update")])).run(10, never)
    assert (stop.step, stop.status, stop.error_in) == (2, "failed", "submission.update")
    assert "RuntimeError: boom in update" in stop.error and "Traceback" in stop.error


def test_a_real_interrupt_goes_up_and_submission_code_raising_one_is_its_failure() -> None:
    assert runner_of(Scripted([KeyboardInterrupt()])).run(10, never).status == "failed"  # no signal: its own
    signalled = UserInterrupts()
    signalled.signalled = 2  # SIGINT arrived
    with pytest.raises(KeyboardInterrupt):
        runner_of(Scripted([KeyboardInterrupt()]), interrupts=signalled).run(10, never)
    with pytest.raises(KeyboardInterrupt):
        runner_of(Scripted([1.0], prepare_raises=KeyboardInterrupt()), interrupts=signalled).run(1, never)


def test_a_failing_prepare_for_eval_fails_the_trial_with_its_traceback() -> None:
    stop = runner_of(Scripted([1.0, 1.0], prepare_raises=ValueError("bad eval state"))).run(2, never)
    assert (stop.step, stop.status, stop.error_in) == (2, "failed", "submission.prepare_for_eval")
    assert "ValueError: bad eval state" in stop.error


@pytest.mark.parametrize("device_flag", [False, True])
def test_a_non_finite_loss_is_divergence_at_the_next_check_on_either_path(device_flag: bool) -> None:
    losses = [1.0, math.inf, 1.0, 1.0, 1.0, 1.0]  # not finite at step 2 only
    assert plain(runner_of(Scripted(losses), 1, device_flag).run(10, never)) == plain(Stop(2, "diverged"))
    assert plain(runner_of(Scripted(losses), 3, device_flag).run(10, never)) == plain(Stop(3, "diverged"))
    # stopped before the next check: prepare_for_eval runs, and the evaluation's check finds it
    submission = Scripted(losses)
    stop = runner_of(submission, 5, device_flag).run(3, never)
    assert (stop.step, stop.status, stop.loss, submission.prepared) == (3, "diverged", 1.0, 1)
    stop = runner_of(Scripted([1.0, 1.0, math.nan]), 5, device_flag).run(3, never)  # the last loss itself
    assert (stop.step, stop.status) == (3, "diverged") and math.isnan(stop.loss)


@pytest.mark.parametrize("device_flag", [False, True])
def test_a_one_element_loss_of_any_shape_is_read_alike_on_either_path(device_flag: bool) -> None:
    """The contract asks for a one-element tensor: shape (1,) or (1, 1) is one too, on the CUDA
    path as on the CPU one (which reads it with .item())."""
    losses = [torch.tensor([1.0]), torch.tensor([[2.0]]), torch.tensor([math.nan]), torch.tensor([1.0])]
    assert runner_of(Scripted(losses[:2]), 1, device_flag).run(2, never) == Stop(2, "due", 2.0)
    assert plain(runner_of(Scripted(losses), 4, device_flag).run(10, never)) == plain(Stop(4, "diverged"))


class CountedReads(torch.Tensor):
    reads = 0

    def item(self):
        CountedReads.reads += 1
        return super().item()


def test_on_the_device_path_a_step_reads_nothing_back_between_checks() -> None:
    """Reading a CUDA tensor waits for the device: only every ``check_every``-th step, and the
    evaluation, may do it."""
    CountedReads.reads = 0
    submission = Scripted([torch.tensor(1.0).as_subclass(CountedReads) for _ in range(10)])
    run = runner_of(submission, check_every=4, device_flag=True)
    reads_of_flag = []
    run.all_finite = run.all_finite.as_subclass(CountedReads)
    assert run.run(10, lambda step: reads_of_flag.append(CountedReads.reads) or False).status == "due"
    assert reads_of_flag == [0, 0, 0, 1, 1, 1, 1, 2, 2]  # after steps 1-9: one read at steps 4 and 8 only


def test_a_data_parallel_check_on_the_device_path_checks_in_before_it_reads_the_device() -> None:
    """Over NCCL, a rank whose submission failed before its backward never joins the gradient
    exchange queued on this rank's device, and reading the device waits for NCCL's 30-minute
    timeout; the host-side check-in, which that rank's exit breaks at once, comes first. Only at
    checks: other steps read nothing back."""
    CountedReads.reads = 0
    run = runner_of(Scripted([1.0] * 7), check_every=3, device_flag=True)
    run.all_finite = run.all_finite.as_subclass(CountedReads)
    reads_at_check_in = []
    stop = run.run(7, never, agree=lambda diverged: diverged,
                   check_in=lambda: reads_at_check_in.append((run.step, CountedReads.reads)))
    assert stop == Stop(7, "due", 1.0)
    assert reads_at_check_in == [(3, 0), (6, 1)]  # each before its check's read of the flag


def test_a_restore_on_the_device_path_waits_for_the_replayed_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replaying the batch stream up to a checkpoint's step queues work on the device (indexing
    device-resident data); the first charged step would wait for it. restore() waits instead, after
    the replay; and before it, once the submission's load_state_dict is done (its queued work is
    charged with it, up to the trainers' ``loaded`` call)."""
    replayed, waited = [], []
    submission = Scripted([])
    submission.load_state_dict = lambda state: None
    run = runner_of(submission, device_flag=True)
    run.batches = (replayed.append(step) or step for step in itertools.count())
    monkeypatch.setattr(steps.torch.cuda, "synchronize", lambda device: waited.append(len(replayed)))
    monkeypatch.setattr(steps, "restore_rng", lambda state, device: None)
    run.restore(torch.nn.Linear(1, 1), {"model": torch.nn.Linear(1, 1).state_dict(), "submission": {}, "step": 5,
                                        "rng": None})
    assert waited == [0, 5] and run.step == 5


def test_the_device_path_is_taken_on_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_ones, placed = torch.ones, []

    def ones_on_the_cpu(*args, **kwargs):  # no GPU here: note where the flag was asked for, make it here
        placed.append(kwargs.get("device"))
        return real_ones(*args, **{**kwargs, "device": "cpu"})

    monkeypatch.setattr(steps.torch, "ones", ones_on_the_cpu)
    devices = [torch.device("cuda"), torch.device("cpu")]
    made = [StepRunner(Scripted([]), iter(()), None, device, 1, UserInterrupts()) for device in devices]
    assert [run.on_cuda for run in made] == [True, False]
    assert placed == devices  # the flag lives on the trial's device: reading it is the only sync
    assert all(run.all_finite.dtype == torch.bool and bool(run.all_finite) for run in made)


def test_a_stop_is_sent_between_processes_as_a_plain_mapping() -> None:
    assert Stop(7, "failed", 0.5, "trace", "submission.update").as_dict() == {
        "step": 7, "status": "failed", "loss": 0.5, "error": "trace", "error_in": "submission.update"}


def test_data_parallel_agreement_is_asked_every_step_and_its_answer_decides() -> None:
    told = []

    def agree(diverged: bool) -> bool:  # another rank diverged at step 3
        told.append(diverged)
        return diverged or len(told) == 3

    assert plain(runner_of(Scripted([1.0, math.nan, 1.0, 1.0]), 2).run(10, never, agree)) == plain(Stop(2, "diverged"))
    assert told == [False, True]  # this rank's own finding, step by step
    told.clear()
    assert plain(runner_of(Scripted([1.0] * 5), 1).run(10, never, agree)) == plain(Stop(3, "diverged"))
    assert told == [False, False, False]


@pytest.mark.parametrize("step, every, max_steps, expected", [
    (0, 5, 100, 5), (7, 5, 100, 10), (10, 5, 100, 15), (7, 5, 9, 9), (7, None, 40, 40), (7, None, math.inf, math.inf)])
def test_the_next_stop_is_the_next_multiple_of_the_evaluation_period_or_the_step_cap(step, every, max_steps,
                                                                                    expected) -> None:
    assert next_stop_step(step, every, max_steps) == expected
