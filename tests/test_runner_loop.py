"""The training loop's decisions on virtual time: each step of the submission below costs exactly 0.125 s
of charged time (a binary fraction: sums are exact), so when the loop evaluates, stops for the budget,
counts a target as reached and what it records are checked to the step, with no real time involved."""

from __future__ import annotations

import math
import types
from pathlib import Path

import pytest

import harness.core.clock as clock_module
import harness.core.runner as runner
from harness.core.records import read_jsonl
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
    monkeypatch.setattr(clock_module, "time", types.SimpleNamespace(perf_counter=VirtualTime.perf_counter))
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: TimedSGD)


def evals(summary: dict) -> list[dict]:
    return [e for e in read_jsonl(Path(summary["record_dir"]) / "evals.jsonl") if e["event"] == "eval"]


def run(smoke_cfg, *overrides: str) -> dict:
    return runner.run_trial(smoke_cfg("submission=sgd", "checkpoint_every_s=null", *overrides))


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
    """Returns a nan loss from step 3 on."""

    steps = 0

    def update(self, batch, compute_loss):
        loss = super().update(batch, compute_loss)
        NanAtStep.steps += 1
        return loss * math.nan if NanAtStep.steps >= 3 else loss


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
