"""One evaluation of a trial's model, as the harness runs it: eval mode, no autograd, the size's
precision, and the workload's answer checked to be its metrics.

The runner evaluates with it at each evaluation, and a compiled trial's warm-up once before the
clock (harness/core/compile.py), so that Dynamo compiles the evaluation's code there too.
"""

from __future__ import annotations

import torch

from harness.core.precision import evaluation_precision
from harness.workload import Workload


class EvaluationFailed(Exception):
    """The workload's ``evaluate`` returned what is not its metrics (no metric, a value that is not a
    number): the workload's failure, not the submission's (``error_in: workload.evaluate``; a rerun
    retries it, once it is fixed). An exception raised inside ``evaluate`` is not: it may come from
    the submission's doing (its hooks on the model, the memory its state holds)."""


@torch.inference_mode()  # like no_grad, minus autograd's version counters: ~10% faster evaluations
def evaluate(workload: Workload, model: torch.nn.Module, split: str) -> dict[str, float]:
    """The metrics of one split as ``<split>/<name>`` (never charged), with the model in eval mode."""
    model.eval()
    call = f"{type(workload).__name__}.evaluate(model, '{split}')"
    try:
        with evaluation_precision(workload):  # mixed precision: the size's autocast (core/precision.py)
            metrics = workload.evaluate(model, split)
    finally:
        model.train()
    if not isinstance(metrics, dict) or workload.metric not in metrics:
        found = ", ".join(map(repr, metrics)) if isinstance(metrics, dict) else type(metrics).__name__
        raise EvaluationFailed(f"{call} returned no '{workload.metric}' (the workload's metric); it returned "
                               f"{found or 'nothing'}")
    values = {}
    for name, value in metrics.items():
        try:
            values[f"{split}/{name}"] = float(value)
        except (TypeError, ValueError):
            raise EvaluationFailed(f"{call} returned '{name}' = {value!r}, which is not a number (every value is a "
                                   f"metric)") from None
    return values
