"""Memory accounting of a trial: optimizer state size and peak memory.

The course's point: the optimizer's state is part of its cost (Adam keeps two fp32 moments, 8
bytes per parameter; in mixed precision with fp32 master weights the total is 16). Every trial
records, at its end:

- ``optimizer_state_bytes``: every tensor in ``Submission.state_dict()`` (optimizer moments,
  step counters, preconditioners, averaged weights kept in optimizer state), and that divided by
  the model's trainable parameter count;
- ``peak_memory_bytes``: on CUDA the peak allocation since the trial started, less what was
  allocated then (``torch.cuda.max_memory_allocated`` - ``memory_allocated``): the model, the
  optimizer's state and the activations, not the workload's device-resident data nor what an
  earlier trial of the process left loaded, nor the harness's evaluations and the model's warm-up
  before the clock (:meth:`MemoryMeter.excluded`: cifar10's chunks of 1000 images took more than
  its training batches of 128); on the CPU the growth of the resident set from the start of
  training to the process's peak (``ru_maxrss``), which bounds from above what training added (it
  is 0 when the process peaked earlier, e.g. while decoding a dataset), evaluations included.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from harness.core.records import COMPILED_ON_CPU


def tensor_bytes(obj: Any) -> int:
    """Total bytes of the tensors nested anywhere in ``obj`` (dicts, lists, tuples)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def current_rss_bytes() -> int:
    """Resident set size now (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """High-water mark of this process's resident set (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class MemoryMeter:
    """Started when training starts; :meth:`report` at the end of the trial."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda_start = 0
        self.cuda_peak = 0  # the peak before the last excluded interval (its own was forgotten)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)  # the peak restarts from what is allocated now
            self.cuda_start = torch.cuda.memory_allocated(device)
        self.rss_start = current_rss_bytes()
        #: the trial compiles its model on the CPU: TorchInductor's own memory (~100 MB) is in the process's
        #: resident set and cannot be told from training's, so the CPU peak is not measured
        self.compiler_in_process = False

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """The harness's own work (evaluation; the model's warm-up before the clock): its passing
        allocations are not the trial's, what it leaves allocated (the model) is. On CUDA the peak so
        far is kept and the counter restarts after it from what is allocated then; the CPU's (the
        process's resident set high-water mark) cannot restart, and keeps it."""
        if self.device.type != "cuda":
            yield
            return
        self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated(self.device))
        try:
            yield
        finally:
            torch.cuda.reset_peak_memory_stats(self.device)  # from what training holds now

    def report(self, model: nn.Module, submission: Any) -> dict[str, Any]:
        state = tensor_bytes(submission.state_dict()) if submission is not None else 0
        params = trainable_parameters(model)
        if self.device.type == "cuda":
            highest = max(self.cuda_peak, torch.cuda.max_memory_allocated(self.device))
            peak, kind = max(0, highest - self.cuda_start), "cuda_allocated_growth"
        elif self.compiler_in_process:
            peak, kind = None, COMPILED_ON_CPU
        else:
            peak, kind = max(0, peak_rss_bytes() - self.rss_start), "cpu_rss_growth"
        return {"parameters": params, "optimizer_state_bytes": state,
                "optimizer_state_bytes_per_parameter": state / params if params else None,
                "peak_memory_bytes": peak, "peak_memory_kind": kind}
