"""Mixed precision: a workload size's ``precision`` (``fp32`` or ``bf16``) and what it means.

``bf16`` runs the forward pass and the loss that the submission calls (``compute_loss``), and
evaluation, under ``torch.autocast(device.type, dtype=torch.bfloat16)``. The parameters stay
float32 (the master weights), so their gradients are float32 and the optimizer never sees a
bfloat16 tensor; the loss handed back is float32. ``fp32`` changes nothing.

The precision is recorded in the manifest and joins a trial's identity only when it is not
``fp32``, so the hashes of records made before precisions existed stay valid
(docs/decisions.md, "Mixed precision").
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch

from harness.errors import UserError
from harness.workload import Batch, Workload

PRECISIONS = ("fp32", "bf16")
_DTYPES = {"bf16": torch.bfloat16}


def size_precision(workload: Workload) -> str:
    """The precision the workload's size declares, refused with the valid ones when unknown."""
    return precision_setting(workload.spec.precision, workload.name, workload.size)


def precision_setting(value: Any, workload: str, size: str) -> str:
    """``value``, the precision of ``workload``'s ``size``, checked: refused with the valid ones when unknown."""
    if str(value) not in PRECISIONS:
        raise UserError(f"precision={value} of workload '{workload}' (size {size}) is not valid. "
                        f"Valid precisions: {', '.join(PRECISIONS)} (workload.sizes.{size}.precision=...).")
    return str(value)


def precision_identity(workload: Workload) -> dict[str, Any]:
    """The precision's part of a trial's identity: nothing for fp32 (old hashes hold)."""
    return precision_entry(size_precision(workload))


def precision_entry(value: str) -> dict[str, Any]:
    """``{"precision": value}``, or nothing for fp32: what an identity (a trial's, a sweep's) holds."""
    return {} if value == "fp32" else {"precision": value}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context that computes in ``precision`` on ``device`` (nothing for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


LossFunction = Callable[[Batch], torch.Tensor]


def with_precision(compute_loss: LossFunction, workload: Workload) -> LossFunction:
    """``compute_loss`` run in the workload size's precision, returning a float32 loss.

    fp32 returns ``compute_loss`` itself: no wrapper, no cost.
    """
    precision = size_precision(workload)
    if precision == "fp32":
        return compute_loss
    return functools.partial(_loss_in, compute_loss, precision, workload.device)


def _loss_in(compute_loss: LossFunction, precision: str, device: torch.device,
             batch: Batch) -> torch.Tensor:
    with autocast(precision, device):
        loss = compute_loss(batch)
    return loss.float()  # a no-op when autocast already computed it in float32 (cross-entropy does)


def evaluation_precision(workload: Workload) -> contextlib.AbstractContextManager:
    """The context evaluation runs in: the size's precision, as training."""
    return autocast(size_precision(workload), workload.device)
