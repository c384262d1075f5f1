"""The training loop's decisions on virtual time: each step of the submission below costs exactly 0.125 s
of charged time (a binary fraction: sums are exact), so when the loop evaluates, stops for the budget,
counts a target as reached and what it records are checked to the step, with no real time involved."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import harness.core.clock as clock_module
import harness.core.inprocess as inprocess
import harness.core.runner as runner
from harness.core.records import TrialRecord, read_jsonl
from harness.core.trial import run_trial
from submissions.sgd import SGD

STEP_S = 0.125
UNREACHABLE = "workload.sizes.smoke.target=2.0"
AT_ONCE = "workload.sizes.smoke.target=0.0"  # any accuracy meets it


class VirtualTime:
    now = 1000.0

    @classmethod
    def perf_counter(cls) -> float:
        return cls.now


class TimedSGD(SGD):
    """SGD whose every update costs STEP_S of virtual time."""

    def update(self, batch, compute_loss):
        loss = super().update(batch, compute_loss)
        VirtualTime.now += STEP_S
        return loss


@pytest.fixture
def virtual(monkeypatch: pytest.MonkeyPatch) -> None:
    VirtualTime.now = 1000.0
    monkeypatch.setattr(clock_module, "perf_counter", VirtualTime.perf_counter)
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: TimedSGD)


def evals(summary: dict) -> list[dict]:
    return [e for e in read_jsonl(Path(summary["record_dir"]) / "evals.jsonl") if e["event"] == "eval"]


def run(smoke_cfg, *overrides: str) -> dict:
    return run_trial(smoke_cfg("submission=sgd", "checkpoint_every_s=null", *overrides))


def test_evaluations_every_few_steps_until_max_steps(smoke_cfg, virtual) -> None:
    summary = run(smoke_cfg, UNREACHABLE, "max_steps=23", "workload.sizes.smoke.eval_every_steps=5")
    rows = evals(summary)
    assert [e["step"] for e in rows] == [5, 10, 15, 20, 23]  # the last at max_steps
    assert [e["submission_time_s"] for e in rows] == [s * STEP_S for s in (5, 10, 15, 20, 23)]
    assert all(e["within_budget"] and not e["reached"] for e in rows)
    assert summary["status"] == "not_reached" and summary["stopped_by"] == "max_steps"
    assert summary["steps"] == 23 and summary["submission_time_s"] == 23 * STEP_S
    assert [("test/accuracy" in e["metrics"]) for e in rows] == [False] * 4 + [True]
    assert summary["best_validation"] == max(e["metrics"]["validation/accuracy"] for e in rows)


def test_evaluations_every_few_seconds_of_submission_time(smoke_cfg, virtual) -> None:
    summary = run(smoke_cfg, UNREACHABLE, "max_steps=26", "workload.sizes.smoke.eval_every_steps=null",
                  "workload.sizes.smoke.eval_period_s=1.0")
    assert [e["step"] for e in evals(summary)] == [8, 16, 24, 26]  # 1 s is 8 steps


def test_the_budget_stops_the_first_step_past_it(smoke_cfg, virtual) -> None:
    # 1.0 s is exactly 8 steps: at step 8 the budget is not exceeded yet, step 9 exceeds it
    summary = run(smoke_cfg, UNREACHABLE, "max_runtime_s=1.0", "workload.sizes.smoke.eval_every_steps=3")
    rows = evals(summary)
    assert [e["step"] for e in rows] == [3, 6, 9]
    assert [e["within_budget"] for e in rows] == [True, True, False]
    assert summary["status"] == "not_reached" and summary["stopped_by"] == "budget" and summary["steps"] == 9
    assert summary["submission_time_s"] == 9 * STEP_S


def test_a_target_met_exactly_at_the_budget_counts(smoke_cfg, virtual) -> None:
    summary = run(smoke_cfg, AT_ONCE, "max_runtime_s=1.0", "workload.sizes.smoke.eval_every_steps=8")
    assert summary["status"] == "reached" and summary["steps"] == 8
    assert summary["time_to_target_s"] == 1.0 and summary["steps_to_target"] == 8
    [row] = evals(summary)
    assert row["within_budget"] and row["reached"] and "test/accuracy" in row["metrics"]


def test_a_target_met_after_the_budget_does_not_count(smoke_cfg, virtual) -> None:
    summary = run(smoke_cfg, AT_ONCE, "max_runtime_s=0.9", "workload.sizes.smoke.eval_every_steps=100")
    assert summary["status"] == "not_reached" and summary["steps"] == 8  # 1.0 > 0.9
    assert summary["time_to_target_s"] is None and summary["steps_to_target"] is None
    [row] = evals(summary)
    assert not row["within_budget"] and not row["reached"]


def test_max_steps_and_the_budget_at_the_same_step(smoke_cfg, virtual) -> None:
    summary = run(smoke_cfg, UNREACHABLE, "max_runtime_s=1.0", "max_steps=9",
                  "workload.sizes.smoke.eval_every_steps=100")
    assert summary["stopped_by"] == "budget" and summary["steps"] == 9  # out of budget wins the explanation


class NanAtStep(TimedSGD):
    """Returns a nan loss from step ``from_step`` (3) on."""

    steps, from_step = 0, 3

    def update(self, batch, compute_loss):
        loss = super().update(batch, compute_loss)
        NanAtStep.steps += 1
        return loss * math.nan if NanAtStep.steps >= NanAtStep.from_step else loss


@pytest.mark.parametrize(("every", "steps"), [(None, 3), (1, 3), (4, 4), (10, 5)])
def test_divergence_is_found_at_the_next_check(smoke_cfg, virtual, monkeypatch: pytest.MonkeyPatch,
                                               every: int | None, steps: int) -> None:
    NanAtStep.steps = 0
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: NanAtStep)
    summary = run(smoke_cfg, UNREACHABLE, "workload.sizes.smoke.eval_every_steps=5",
                  f"divergence_check_every={'null' if every is None else every}")
    assert summary["status"] == "diverged" and summary["steps"] == steps  # by step 10: at the evaluation (5)
    assert summary["submission_time_s"] == steps * STEP_S


def test_the_timing_adds_up() -> None:
    audit = {"setup_s": 2.0, "evaluation_s": 3.0, "checkpoint_s": 0.5, "construction_s": 0.25}
    timing = runner._timing(audit, charged=4.25, wall=10.0)
    assert timing == {"wall_s": 10.0, "submission_s": 4.25, "setup_s": 2.0, "evaluation_s": 3.0, "checkpoint_s": 0.5,
                      "construction_s": 0.25, "other_s": 10.0 - 4.0 - 3.0 - 0.5, "clock_suspect": True}
    assert runner._timing(audit, charged=8.25, wall=12.0)["other_s"] == 0.5
    assert not runner._timing(audit, charged=8.25, wall=12.0)["clock_suspect"]


@pytest.mark.parametrize(("other", "wall", "suspect"), [
    (1.0, 2.0, False),  # 1 s is not more than the 1 s floor
    (1.01, 2.0, True),
    (2.0, 10.0, False),  # 20% of the wall time is allowed
    (2.01, 10.0, True),
    (0.5, 0.6, False),  # a large share of a short run: under the floor
])
def test_the_clock_is_suspect_only_past_both_thresholds(other: float, wall: float, suspect: bool) -> None:
    assert runner.clock_suspect({"other_s": other, "wall_s": wall}) is suspect


def test_the_summary_reports_the_budget_memory_and_timing(smoke_cfg, virtual) -> None:
    summary = run(smoke_cfg, UNREACHABLE, "max_runtime_s=0.5", "workload.sizes.smoke.eval_every_steps=100")
    assert summary["max_runtime_s"] == 0.5 and summary["steps"] == 5
    assert summary["memory"]["optimizer_state_bytes_per_parameter"] >= 0
    timing = summary["timing"]
    assert timing["submission_s"] == 5 * STEP_S and timing["construction_s"] == 0.0  # construction took no time
    assert 0.0 < timing["setup_s"] < 60 and timing["checkpoint_s"] == 0.0


# ------------------------------------------------------------------------------------ outcomes and timing
class CostlyTimedSGD(TimedSGD):
    """TimedSGD whose construction costs 0.5 s of virtual time (charged: the optimizer's state)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        VirtualTime.now += 0.5


@pytest.fixture
def all_virtual(virtual, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every clock the runner reads is virtual: each evaluation costs 0.25 s (uncharged), the
    submission's construction 0.5 s, a step 0.125 s. Returns the evaluations' count so far."""
    monkeypatch.setattr(runner, "monotonic", VirtualTime.perf_counter)
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: CostlyTimedSGD)
    real, calls = runner.evaluate, [0]

    def costly_evaluate(workload, model, split):
        calls[0] += 1
        result = real(workload, model, split)
        VirtualTime.now += 0.25
        return result

    monkeypatch.setattr(runner, "evaluate", costly_evaluate)

    def costly_compile(*args, **kwargs) -> float:  # as if torch.compile's warm-up took 0.75 s (uncharged)
        VirtualTime.now += 0.75
        return 0.75

    monkeypatch.setattr(inprocess, "compile_before_clock", costly_compile)
    real_save = runner.save_checkpoint

    def costly_save(*args, **kwargs):
        real_save(*args, **kwargs)
        VirtualTime.now += 0.0625

    monkeypatch.setattr(runner, "save_checkpoint", costly_save)
    return calls


def test_the_timing_accounts_for_every_virtual_second(smoke_cfg, all_virtual) -> None:
    summary = run(smoke_cfg, UNREACHABLE, "max_steps=20", "workload.sizes.smoke.eval_every_steps=5")
    assert all_virtual[0] == 5  # validation at 5, 10, 15, 20 and the test split at the end
    timing = summary["timing"]
    assert timing["construction_s"] == 0.5 and timing["submission_s"] == 0.5 + 20 * STEP_S
    assert timing["setup_s"] == 0.0 and timing["compile_s"] == 0.75 and timing["checkpoint_s"] == 0.0
    assert timing["evaluation_s"] == 5 * 0.25 and timing["wall_s"] == 20 * STEP_S + 5 * 0.25
    assert timing["other_s"] == 0.0 and not timing["clock_suspect"]
    rows = evals(summary)  # each logged after its evaluation; the last after the test split's too
    assert [e["wall_time_s"] for e in rows] == [0.875, 1.75, 2.625, 3.75]
    assert all(math.isfinite(e["metrics"]["train/loss"]) for e in rows)


def test_writing_the_records_is_timed_apart_not_left_unexplained(smoke_cfg, all_virtual,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluation's line in evals.jsonl is written durably (fsync): a few ms each on a busy disk.
    A workload evaluated every few ms of training (10 steps of 0.5 ms) then left a fifth of its wall
    time "unexplained", and an honest AdamW was marked clock suspect on the leaderboard."""
    real_log = TrialRecord.log

    def slow_log(self, row):
        real_log(self, row)
        VirtualTime.now += 0.5  # each line: as long as 4 steps

    monkeypatch.setattr(TrialRecord, "log", slow_log)
    summary = run(smoke_cfg, UNREACHABLE, "max_steps=20", "workload.sizes.smoke.eval_every_steps=5")
    timing = summary["timing"]
    assert timing["record_s"] == 4 * 0.5  # the four evaluations' lines (the end line comes after the timing)
    assert timing["wall_s"] == 20 * STEP_S + 5 * 0.25 + 4 * 0.5
    assert timing["other_s"] == 0.0 and not timing["clock_suspect"]


def test_checkpoints_are_written_when_their_interval_has_passed_and_timed(smoke_cfg, all_virtual) -> None:
    # from one checkpoint (or the loop's start) to the next evaluation: 5 steps + 1 evaluation = 0.875 s
    summary = run_trial(smoke_cfg("submission=sgd", "checkpoint_every_s=0.875", UNREACHABLE, "max_steps=20",
                                         "workload.sizes.smoke.eval_every_steps=5"))
    timing = summary["timing"]
    assert timing["checkpoint_s"] == 3 * 0.0625  # at 5, 10 and 15 (the trial ends at 20)
    assert timing["wall_s"] == 20 * STEP_S + 5 * 0.25 + 3 * 0.0625 and timing["other_s"] == 0.0


def test_a_resumed_trial_keeps_the_first_attempts_timing(smoke_cfg, all_virtual,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real = runner.evaluate

    def interrupted_at_the_third(workload, model, split):
        if all_virtual[0] == 2:
            all_virtual[0] += 1
            raise KeyboardInterrupt
        return real(workload, model, split)

    overrides = (UNREACHABLE, "max_steps=20", "workload.sizes.smoke.eval_every_steps=5")
    monkeypatch.setattr(runner, "evaluate", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_trial(smoke_cfg("submission=sgd", "checkpoint_every_s=0", *overrides))
    monkeypatch.setattr(runner, "evaluate", real)
    summary = run_trial(smoke_cfg("submission=sgd", "checkpoint_every_s=0", *overrides))
    timing = summary["timing"]
    assert summary["steps"] == 20 and timing["submission_s"] == 0.5 + 20 * STEP_S  # construction charged once
    # 5 and 10 in the first attempt (kept in the checkpoint at 10), then 15, 20 and the test split
    assert timing["evaluation_s"] == 5 * 0.25 and timing["construction_s"] == 0.5
    assert timing["setup_s"] == 0.5  # the resumed attempt's construction: setup, not charged again
    assert timing["compile_s"] == 2 * 0.75  # each attempt's


class RaisesAtCall12(TimedSGD):
    calls = 0

    def update(self, batch, compute_loss):
        RaisesAtCall12.calls += 1
        if RaisesAtCall12.calls == 12:
            raise RuntimeError("boom at call 12")
        return super().update(batch, compute_loss)


def test_a_failed_submission_keeps_its_steps_time_and_best(smoke_cfg, virtual, monkeypatch: pytest.MonkeyPatch) -> None:
    RaisesAtCall12.calls = 0
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: RaisesAtCall12)
    summary = run(smoke_cfg, UNREACHABLE, "workload.sizes.smoke.eval_every_steps=5")
    assert summary["status"] == "failed" and summary["error_in"] == "submission.update"
    assert summary["steps"] == 11 and summary["submission_time_s"] == 11 * STEP_S
    assert summary["best_validation"] == max(e["metrics"]["validation/accuracy"] for e in evals(summary))


class SimulatedCudaError(RuntimeError):
    """A fault of a kernel the submission launched, as CUDA reports it: at the next synchronisation."""


class Deferred(torch.Tensor):
    """A loss whose read raises, as a CUDA loss does after a device-side assert in the step."""

    def item(self):
        raise SimulatedCudaError("CUDA error: device-side assert triggered (simulated)")


class DeviceFaultAtCall12(TimedSGD):
    calls = 0

    def update(self, batch, compute_loss):
        loss = super().update(batch, compute_loss)
        DeviceFaultAtCall12.calls += 1
        return loss.as_subclass(Deferred) if DeviceFaultAtCall12.calls >= 12 else loss


@pytest.mark.parametrize("sticky", [False, True])
def test_a_device_fault_surfacing_at_the_harness_s_read_is_the_submission_s(
        smoke_cfg, virtual, monkeypatch: pytest.MonkeyPatch, sticky: bool) -> None:
    """The error of a kernel the submission launched surfaces where the host next waits for the device:
    the harness's read of the loss, then (a CUDA error stays set) the clock's synchronisation. It was
    recorded as the harness's failure at step 0 with nothing kept, and retried by every rerun."""
    DeviceFaultAtCall12.calls = 0
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: DeviceFaultAtCall12)
    if sticky:  # the clock synchronises the device, and the device's error is raised there again
        def synchronize(device=None):
            if DeviceFaultAtCall12.calls >= 12:
                raise SimulatedCudaError("CUDA error: device-side assert triggered (simulated)")
        made = clock_module.SubmissionClock.__init__
        def on_cuda(self, device):
            made(self, device)
            self._cuda = True
        monkeypatch.setattr(clock_module.SubmissionClock, "__init__", on_cuda)
        monkeypatch.setattr(clock_module.torch.cuda, "synchronize", synchronize)
    summary = run(smoke_cfg, UNREACHABLE, "workload.sizes.smoke.eval_every_steps=5")
    assert summary["status"] == "failed" and summary["error_in"] == "submission.update", summary
    assert "device-side assert" in summary["error"]
    assert summary["steps"] == 12 and summary["submission_time_s"] == 12 * STEP_S
    assert summary["best_validation"] == max(e["metrics"]["validation/accuracy"] for e in evals(summary))


def test_a_failed_synchronisation_still_stops_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = clock_module.SubmissionClock(torch.device("cpu"))
    clock._cuda = True
    monkeypatch.setattr(clock_module.torch.cuda, "synchronize", lambda device=None: 1 / 0)
    monkeypatch.setattr(clock_module, "perf_counter", VirtualTime.perf_counter)
    VirtualTime.now = 10.0
    clock.resume()
    VirtualTime.now = 12.5
    with pytest.raises(ZeroDivisionError):
        clock.pause()
    assert not clock.running and clock.elapsed == 2.5 and clock.pause() == 2.5  # the second: no raise


def test_a_harness_failure_keeps_what_was_reached(smoke_cfg, virtual, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = runner.evaluate, []

    def broken_second(workload, model, split):
        calls.append(split)
        if len(calls) == 2:
            raise OSError("disk gone")
        return real(workload, model, split)

    monkeypatch.setattr(runner, "evaluate", broken_second)
    summary = run(smoke_cfg, UNREACHABLE, "workload.sizes.smoke.eval_every_steps=5")
    assert summary["status"] == "failed" and summary["error_in"] == "harness" and "disk gone" in summary["error"]
    assert summary["steps"] == 10 and summary["submission_time_s"] == 10 * STEP_S
    [first] = evals(summary)
    assert summary["best_validation"] == first["metrics"]["validation/accuracy"]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_validation_value_is_never_the_best(smoke_cfg, virtual, monkeypatch: pytest.MonkeyPatch,
                                                         bad: float) -> None:
    real, calls = runner.evaluate, []

    def bad_second(workload, model, split):  # accuracy: higher is better, so inf would beat anything
        calls.append(split)
        metrics = real(workload, model, split)
        return {k: bad for k in metrics} if len(calls) == 2 else metrics

    monkeypatch.setattr(runner, "evaluate", bad_second)
    summary = run(smoke_cfg, UNREACHABLE, "max_steps=10", "workload.sizes.smoke.eval_every_steps=5")
    first = evals(summary)[0]["metrics"]["validation/accuracy"]
    assert summary["best_validation"] == first  # the bad value was the trial's last


def test_a_diverged_trial_keeps_its_best_so_far(smoke_cfg, virtual, monkeypatch: pytest.MonkeyPatch) -> None:
    NanAtStep.steps = 0
    monkeypatch.setattr(NanAtStep, "from_step", 8)
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: NanAtStep)
    summary = run(smoke_cfg, UNREACHABLE, "workload.sizes.smoke.eval_every_steps=5")
    [row] = evals(summary)
    assert summary["status"] == "diverged" and summary["steps"] == 8
    assert summary["best_validation"] == row["metrics"]["validation/accuracy"]


def test_a_reached_trial_reports_its_best(smoke_cfg, virtual) -> None:
    summary = run(smoke_cfg, AT_ONCE, "workload.sizes.smoke.eval_every_steps=8")
    [row] = evals(summary)
    assert summary["status"] == "reached" and summary["best_validation"] == row["metrics"]["validation/accuracy"]
