"""One evaluation of a trial's model, as the harness runs it: eval mode, no autograd, the size's
precision, and the workload's answer checked to be its metrics.

The runner evaluates with it at each evaluation, and a compiled trial's warm-up once before the
clock (harness/core/compile.py), so that Dynamo compiles the evaluation's code there too.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import OrderedDict
from collections.abc import Iterator

import torch
import torch.nn.modules.module as torch_module

from harness.core.precision import evaluation_precision
from harness.workload import Workload


class EvaluationFailed(Exception):
    """The workload's ``evaluate`` returned what is not its metrics (no metric, a value that is not a
    number): the workload's failure, not the submission's (``error_in: workload.evaluate``; a rerun
    retries it, once it is fixed). An exception raised inside ``evaluate`` is not: it may come from
    the submission's doing (its hooks on the model, the memory its state holds)."""


#: where a module keeps its forward hooks (torch.nn.Module's attributes; the ``_with_kwargs`` and
#: ``_always_called`` ones only mark hooks of these, and run none of their own)
FORWARD_HOOKS = ("_forward_pre_hooks", "_forward_hooks")
#: the same for the hooks registered for every module (``register_module_forward_hook``), torch's globals
GLOBAL_FORWARD_HOOKS = ("_global_forward_pre_hooks", "_global_forward_hooks")


#: per module of a model the harness built, the forward hooks it came with (the workload's own:
#: ``spectral_norm``'s, the old ``weight_norm``'s, which recompute a weight before every forward)
_BUILT_WITH: weakref.WeakKeyDictionary[torch.nn.Module, frozenset[tuple[str, int, int]]] = \
    weakref.WeakKeyDictionary()


def build_model(workload: Workload, seed: int) -> torch.nn.Module:
    """``workload.build_model(seed)``, noting the forward hooks the model comes with: evaluations keep
    those (:func:`without_forward_hooks`) and set aside any added later."""
    model = workload.build_model(seed)
    for module in model.modules():
        _BUILT_WITH[module] = frozenset(_hooks_of(module))
    return model


def _hooks_of(module: torch.nn.Module) -> Iterator[tuple[str, int, int]]:
    for name in FORWARD_HOOKS:
        for key, hook in module.__dict__.get(name, {}).items():
            yield name, key, id(hook)


@contextlib.contextmanager
def without_forward_hooks(model: torch.nn.Module) -> Iterator[None]:
    """The model runs as the workload built it: the forward hooks added to its modules since
    :func:`build_model` (a submission's), and those registered for every module, are set aside while
    the block runs and put back after; the hooks the model was built with stay.

    A submission registers hooks on the model it trains (K-FAC's statistics, ...), and in the
    harness's process they ran inside every evaluation, which is not charged: a pre-hook that
    trained the model there whenever it ran in eval mode (a name built at run time, so the source
    audit did not see it) took a fashion_mnist smoke trial from 22.5 % to 64.5 % accuracy in the
    same 400 charged steps, unflagged; it also saw every validation input. The workload's own hooks
    are part of its model: ``spectral_norm`` without its pre-hook would evaluate a stale weight.
    """
    saved: list[tuple[dict, str, object]] = []
    for module in model.modules():
        own = _BUILT_WITH.get(module, frozenset())
        for name in FORWARD_HOOKS:
            if hooks := module.__dict__.get(name):
                kept = OrderedDict((key, hook) for key, hook in hooks.items() if (name, key, id(hook)) in own)
                if len(kept) < len(hooks):
                    saved.append((module.__dict__, name, hooks))
                    module.__dict__[name] = kept
    for name in GLOBAL_FORWARD_HOOKS:
        if hooks := getattr(torch_module, name, None):
            saved.append((vars(torch_module), name, hooks))
            setattr(torch_module, name, OrderedDict())
    try:
        yield
    finally:
        for namespace, name, hooks in saved:
            namespace[name] = hooks


@torch.inference_mode()  # like no_grad, minus autograd's version counters: ~10% faster evaluations
def evaluate(workload: Workload, model: torch.nn.Module, split: str) -> dict[str, float]:
    """The metrics of one split as ``<split>/<name>`` (never charged), with the model in eval mode."""
    model.eval()
    call = f"{type(workload).__name__}.evaluate(model, '{split}')"
    try:
        # the size's autocast (core/precision.py); the model's own forward, without the submission's hooks
        with without_forward_hooks(model), evaluation_precision(workload):
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
