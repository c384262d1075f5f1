"""The submission clock on a fake time source: what is charged, when, and the CUDA synchronisation at
pause(). No real time passes, so a clock that stops advancing fails here at once (the runner's tests,
which train until a budget runs out, would only meet the per-test timeout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import harness.core.clock as clock_module
from harness.core.clock import SubmissionClock

REPO = Path(__file__).resolve().parent.parent


class FakeTime:
    """A perf_counter that moves only when told to."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(clock_module, "perf_counter", fake.perf_counter)
    return fake


def test_only_time_between_resume_and_pause_is_charged(fake_time: FakeTime) -> None:
    clock = SubmissionClock(torch.device("cpu"))
    assert not clock.running and clock.peek() == 0.0 and clock.elapsed == 0.0
    fake_time.advance(5.0)  # before the first resume: not charged
    clock.resume()
    assert clock.running
    fake_time.advance(3.0)
    assert clock.peek() == 3.0 and clock.elapsed == 0.0  # peek sees the running interval, elapsed does not
    assert clock.pause() == 3.0
    assert not clock.running and clock.elapsed == 3.0
    fake_time.advance(10.0)  # paused (an evaluation): not charged
    assert clock.peek() == 3.0 and clock.pause() == 3.0  # pausing a paused clock changes nothing
    clock.resume()
    fake_time.advance(1.5)
    assert clock.peek() == 4.5
    assert clock.pause() == 4.5 and clock.elapsed == 4.5


def test_resuming_a_running_clock_keeps_its_start(fake_time: FakeTime) -> None:
    clock = SubmissionClock(torch.device("cpu"))
    clock.resume()
    fake_time.advance(2.0)
    clock.resume()
    fake_time.advance(1.0)
    assert clock.pause() == 3.0


def test_restore_continues_from_a_checkpoint(fake_time: FakeTime) -> None:
    clock = SubmissionClock(torch.device("cpu"))
    clock.restore(7)
    assert clock.elapsed == 7.0 and isinstance(clock.elapsed, float) and clock.peek() == 7.0
    clock.resume()
    fake_time.advance(0.5)
    assert clock.peek() == 7.5
    with pytest.raises(RuntimeError, match=r"^restore\(\) needs a paused clock$"):
        clock.restore(1.0)
    assert clock.pause() == 7.5


def test_on_cuda_pause_waits_for_the_device_before_reading_the_time(
        fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[torch.device] = []

    def synchronize(device: torch.device) -> None:
        synced.append(device)
        fake_time.advance(2.0)  # the queued GPU work finishes: that time is the submission's

    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    device = torch.device("cuda", 1)
    clock = SubmissionClock(device)
    clock.resume()
    fake_time.advance(1.0)
    assert clock.peek() == 1.0 and synced == []  # a per-step read never synchronises
    assert clock.pause() == 3.0 and synced == [device]
    assert clock.pause() == 3.0 and synced == [device]  # already paused: nothing to wait for
    cpu = SubmissionClock(torch.device("cpu"))
    cpu.resume()
    cpu.pause()
    assert synced == [device]  # never on the CPU


def test_constructing_a_submission_imports_nothing_the_clock_would_charge() -> None:
    """torch.optim imports torch._dynamo (about 900 modules, 1.3-2.7 s here) when the first
    optimizer is constructed: the first trial of a process was charged that as the submission's
    construction. Whatever a trial imports before its clock, constructing every submission of
    the zoo imports nothing more."""
    script = """
import sys
import harness.core.runner  # what a trial has imported when its clock starts
import torch
from harness.config.compose import compose_config
from harness.config.registry import submission_class, workload_class
from harness.core.parts import build_submission, model_and_info
for name in sys.argv[1:]:
    cfg = compose_config("trial", [f"submission={name}", "workload=rosenbrock", "workload.size=smoke", "device=cpu"])
    cls = submission_class(name, None)
    hparams = cls.Hparams.from_mapping(cfg.submission.hparams, submission=name)
    workload = workload_class("rosenbrock", None)(cfg.workload, torch.device("cpu"), None)
    workload.load()
    model, info = model_and_info(workload, hparams.batch_size, 0)
    before = set(sys.modules)
    build_submission(cls, model, hparams, info, 0)
    print(name, sorted(set(sys.modules) - before)[:3])
"""
    names = sorted(path.stem for path in (REPO / "configs" / "submission").glob("*.yaml"))
    done = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [f"{name} []" for name in names]
