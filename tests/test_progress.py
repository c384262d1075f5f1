"""The progress line's ETA (harness/core/progress.py): paced by the steps alone, not by the
uncharged setup before them (torch.compile's warm-up) nor by a resumed attempt's earlier time."""

from __future__ import annotations

import io
import re

import pytest

from harness.core import progress as progress_module
from harness.core.progress import Progress


class FakeWall:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> FakeWall:
    fake = FakeWall()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


def eta_after(progress: Progress, stream: io.StringIO, step: int, submission_s: float) -> float:
    progress.tick(step, submission_s)
    return float(re.findall(r"ETA to budget\s+([\d.]+)s", stream.getvalue())[-1])


def new_progress(stream: io.StringIO) -> Progress:
    return Progress("t", "accuracy", 0.9, True, budget_s=100.0, interval_s=1.0, stream=stream)


def test_the_eta_ignores_the_setup_before_the_steps(wall: FakeWall) -> None:
    stream = io.StringIO()
    progress = new_progress(stream)
    progress.start("setup")
    wall.now += 30.0  # data, model, a compile warm-up: not charged
    progress.loop_started(0.0)
    wall.now += 10.0  # 5 s charged in 10 s of wall time: 2 wall seconds per charged one
    assert eta_after(progress, stream, 50, 5.0) == pytest.approx(190.0, abs=0.1)  # 95 s left x 2, not x 8


def test_the_eta_of_a_resumed_attempt_is_paced_by_its_own_steps(wall: FakeWall) -> None:
    stream = io.StringIO()
    progress = new_progress(stream)
    progress.start("resuming")
    progress.loop_started(50.0)  # 50 s charged before the interruption, in another process
    wall.now += 20.0  # 10 s charged in 20 s of wall time
    assert eta_after(progress, stream, 500, 60.0) == pytest.approx(80.0, abs=0.1)  # 40 s left x 2, not x 1/3


def test_progress_false_hides_the_steps_but_not_why_a_trial_failed() -> None:
    """`progress=false` left a failed trial's exit status 3 without a word on stderr (the error was in
    the record and stdout's JSON only)."""
    stream = io.StringIO()
    quiet = Progress("t", "accuracy", 0.9, True, budget_s=100.0, interval_s=1.0, enabled=False, stream=stream)
    quiet.start("details")
    quiet.tick(10, 5.0)
    quiet.end({"status": "not_reached", "steps": 10, "best_validation": 0.5, "record_dir": "r"})
    assert stream.getvalue() == ""
    quiet.end({"status": "failed", "steps": 3, "error_in": "submission.update", "error_message": "ValueError: lr",
               "record_dir": "r"})
    assert "FAILED: the submission raised in submission.update: ValueError: lr" in stream.getvalue()
