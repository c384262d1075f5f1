"""Measuring a workload's cost: step time, time spent producing batches, peak memory.

Used by ``optbench info`` and ``scripts/bench_batches.py``. Batch production and whole steps
are timed in separate loops (with a device sync at the ends on CUDA), so the fraction of
submission time spent producing batches is ``batch_time / step_time``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from harness.core.compile import compile_before_clock
from harness.core.memory import peak_rss_bytes
from harness.core.parts import build_submission, model_and_info, training_stream
from harness.errors import SubmissionFailed
from harness.routing import routing_report
from harness.submission import Submission, TrainingHparams
from harness.workload import Workload


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_steps(
    workload: Workload,
    submission_cls: type[Submission],
    hparams: TrainingHparams,
    steps: int = 50,
    warmup: int = 5,
    seed: int = 0,
    compile_setting: Any = False,
) -> dict[str, Any]:
    """Mean seconds per training step and per batch, their ratio, peak memory, and the routing report.

    The steps are a trial's: in the size's precision, and compiled where ``compile_setting`` makes a
    trial compile (its warm-up's seconds are ``compile_s``, outside the step time, as in a trial).

    Peak memory is CUDA's peak allocation on a GPU; on the CPU it is the process's peak
    resident set (which includes the dataset held in memory and the Python runtime).

    ``prepare_for_eval`` runs once after the timed steps, untimed, as a trial runs it before its first
    evaluation. An exception of the submission's code (its construction, ``update``, ``prepare_for_eval``,
    ``routing``) is a :class:`SubmissionFailed` naming the part, as a trial's record does.
    """
    device = workload.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model, info = model_and_info(workload, hparams.batch_size, seed)
    submission = _submission_code("submission.__init__", build_submission, submission_cls, model, hparams,
                                  info, seed)
    batches, compute_loss = training_stream(workload, model, hparams.batch_size, seed)
    compile_s = compile_before_clock(model, workload, hparams.batch_size, seed, compile_setting)
    for _ in range(warmup):
        _submission_code("submission.update", submission.update, next(batches), compute_loss)
    _sync(device)

    start = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
    _sync(device)
    batch_s = (time.perf_counter() - start) / steps
    del batch

    start = time.perf_counter()
    for _ in range(steps):
        _submission_code("submission.update", submission.update, next(batches), compute_loss)
    _sync(device)
    step_s = (time.perf_counter() - start) / steps
    _submission_code("submission.prepare_for_eval", submission.prepare_for_eval)

    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
    return {
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "routing": _submission_code("submission.routing", routing_report, model, submission),
        "compile_s": compile_s,
        "step_time_s": step_s,
        "steps_per_s": 1.0 / step_s,
        "batch_time_s": batch_s,
        "batch_fraction": batch_s / step_s,
        "peak_memory_bytes": peak,
        "peak_memory_kind": ("cuda max_memory_allocated" if device.type == "cuda"
                             else "process peak RSS, dataset included"),
    }


def _submission_code(part: str, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, the submission's code: what it raises is a :class:`SubmissionFailed` in
    ``part`` (exit status 3), not a failure of the harness. Only ``function`` itself is inside: the
    caller evaluates ``args`` (the next batch: the workload's) before."""
    try:
        return function(*args)
    except Exception as error:
        raise SubmissionFailed.raised_in(part, error) from None
