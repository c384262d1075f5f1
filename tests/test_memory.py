"""Memory accounting: optimizer state per parameter in fp32, and peak memory, in every record."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

import harness.core.runner as runner
from harness.core.memory import MemoryMeter, tensor_bytes
from harness.core.trial import run_trial


@pytest.mark.parametrize(("submission", "overrides", "expected"), [
    ("sgd", [], 0.0),
    ("momentum", ["submission.hparams.nesterov=false"], 4.0),
    ("momentum", [], 4.0),
    ("adam", [], 8.0),
    ("adamw", [], 8.0),
])
def test_optimizer_state_bytes_per_parameter(smoke_cfg, submission: str, overrides: list[str],
                                             expected: float) -> None:
    summary = run_trial(smoke_cfg(f"submission={submission}", "max_steps=5", *overrides))
    memory = summary["memory"]
    assert memory["parameters"] == 79_510
    # Adam's per-tensor step counters add a few bytes: 8 bytes per parameter to within 0.1%.
    assert memory["optimizer_state_bytes_per_parameter"] == pytest.approx(expected, abs=1e-3 * max(expected, 1))
    assert memory["peak_memory_kind"] == "cpu_rss_growth" and memory["peak_memory_bytes"] >= 0


def test_tensor_bytes_walks_nested_state() -> None:
    import torch

    state = {"a": torch.zeros(10), "b": [torch.zeros(2, 3, dtype=torch.float64), None], "c": {"d": torch.zeros(4,
             dtype=torch.int8)}, "e": 3.0}
    assert tensor_bytes(state) == 10 * 4 + 6 * 8 + 4


def test_the_cuda_peak_is_what_the_trial_allocated_not_the_data_already_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA's peak restarts, at a reset, from what is allocated then: the workload's device-resident
    data (cifar10's gpu size: about 400 MB) and what an earlier trial left loaded. The trial's figure
    is its growth above that, as the CPU's is of the resident set."""
    import torch

    allocated = {"now": 400 * 2**20, "peak": 400 * 2**20}
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device: allocated.update(peak=allocated["now"]))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: allocated["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: allocated["peak"])
    meter = MemoryMeter(torch.device("cuda"))
    allocated["peak"] += 96 * 2**20  # the model, the optimizer's state, the activations
    report = meter.report(torch.nn.Linear(3, 2), None)
    assert report["peak_memory_bytes"] == 96 * 2**20 and report["peak_memory_kind"] == "cuda_allocated_growth"


def test_evaluation_s_allocations_are_not_the_trial_s_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    """cifar10 evaluates in chunks of 1000 images against training batches of 128: its evaluation's
    peak was the trial's figure, the same for every optimizer. The harness's evaluations (between the
    trainer's runs, :meth:`MemoryMeter.excluded`) are left out; peaks of training before and after count."""
    import torch

    allocated = {"now": 400 * 2**20, "peak": 400 * 2**20}
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device: allocated.update(peak=allocated["now"]))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: allocated["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: allocated["peak"])
    meter = MemoryMeter(torch.device("cuda"))
    allocated["peak"] += 96 * 2**20  # training's first steps
    with meter.excluded():
        allocated["peak"] += 300 * 2**20  # the evaluation's chunk, freed at its end
    assert meter.report(torch.nn.Linear(3, 2), None)["peak_memory_bytes"] == 96 * 2**20
    allocated["peak"] += 120 * 2**20  # training goes on and grows (a submission's lazily built state)
    assert meter.report(torch.nn.Linear(3, 2), None)["peak_memory_bytes"] == 120 * 2**20


def test_the_runner_evaluates_outside_the_memory_peak(smoke_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every evaluation of an in-process trial runs inside its meter's :meth:`MemoryMeter.excluded`."""
    inside, seen = [], []
    excluded = getattr(MemoryMeter, "excluded", None)

    @contextlib.contextmanager
    def watched(self: MemoryMeter) -> Iterator[None]:
        inside.append(True)
        try:
            with excluded(self) if excluded else contextlib.nullcontext():
                yield
        finally:
            inside.pop()

    evaluate = runner.evaluate
    monkeypatch.setattr(MemoryMeter, "excluded", watched, raising=False)
    monkeypatch.setattr(runner, "evaluate", lambda *args: seen.append(bool(inside)) or evaluate(*args))
    run_trial(smoke_cfg("max_steps=20", "workload.sizes.smoke.eval_every_steps=10"))
    assert seen and all(seen), seen  # validation at steps 10 and 20, and the test split at the end


def test_the_model_counts_and_its_warm_ups_do_not(smoke_cfg, loaded_parts, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CUDA trial warms its model up before the clock (parts.warm_up: a training step's activations
    and a copy of the weights to put back). The model it builds meanwhile stays in the trial's figure;
    the warm-up's temporaries are not (the trial's own steps reach their own peak)."""
    import torch

    from harness.core import inprocess
    from harness.core.interrupts import UserInterrupts

    allocated = {"now": 400 * 2**20, "peak": 400 * 2**20}
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device: allocated.update(peak=allocated["now"]))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: allocated["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: allocated["peak"])
    workload, hparams = loaded_parts(smoke_cfg())
    real_model_and_info = inprocess.model_and_info

    def built_and_warmed(*args: object) -> object:  # as on CUDA: the model stays, the warm-up's 50 MiB go
        allocated["now"] += 10 * 2**20
        allocated["peak"] = max(allocated["peak"], allocated["now"] + 50 * 2**20)
        return real_model_and_info(*args)

    monkeypatch.setattr(inprocess, "model_and_info", built_and_warmed)
    monkeypatch.setattr(inprocess, "MemoryMeter", lambda device: MemoryMeter(torch.device("cuda")))  # as on CUDA
    trainer = inprocess.InProcessTrainer(workload, runner.submission_class("adamw"), hparams, 0, torch.device("cpu"),
                                         1, None, UserInterrupts())
    assert trainer.meter.report(trainer.model, None)["peak_memory_bytes"] == 10 * 2**20
