"""Which parameters play which part in a model, and which inner optimizer a submission gave each.

Two facts that optimizers with per-parameter rules (Muon, Shampoo, SOAP) need, decided by what a
parameter *does* rather than by what it is called or where it was registered:

- the **output layer**: the parameters of the layer whose output feeds the loss, found by
  walking the autograd graph back from one loss (:func:`output_layer_names`);
- the **embeddings**: parameters owned by an ``nn.Embedding`` (a lookup table, not a linear map
  of activations), by module type (:func:`embedding_names`).

And the **routing report** (:func:`routing_report`) that ``optbench info`` prints and every trial
records: per inner optimizer of a submission, how many tensors and parameters it updates and
their shapes, so that a method that is a no-op on a workload (Muon on a net with no hidden
matrices) shows at a glance and is marked on the leaderboard.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import nn


def parameter_names(model: nn.Module) -> dict[int, str]:
    """``id(parameter) -> name`` for every parameter, a tied one under its first name."""
    return {id(p): name for name, p in model.named_parameters()}


def output_layer_names(loss: torch.Tensor, model: nn.Module) -> tuple[str, ...]:
    """Names of the parameters of the layer whose output feeds ``loss``.

    Walks the autograd graph from ``loss`` breadth first; the first parameters of two or more
    dimensions that the walk meets (the fewest operations away from the loss) are the output
    layer's weight, and every parameter of the module(s) holding that weight (its bias, and a
    tied embedding's table) belongs to the output layer too. Registration order and names play
    no part. Empty when no matrix feeds the loss (e.g. a bare parameter vector).
    """
    names = parameter_names(model)
    frontier = [loss.grad_fn] if loss.grad_fn is not None else []
    seen: set[Any] = set()
    while frontier:
        found, deeper = [], []
        for node in frontier:
            for child, _ in node.next_functions:
                if child is None or child in seen:
                    continue
                seen.add(child)
                variable = getattr(child, "variable", None)  # AccumulateGrad: a leaf tensor
                if variable is None:
                    deeper.append(child)
                elif id(variable) in names and variable.ndim >= 2:
                    found.append(variable)
        if found:
            return _layer_of(model, found)
        frontier = deeper
    return ()


def _layer_of(model: nn.Module, weights: list[torch.Tensor]) -> tuple[str, ...]:
    """Every parameter of the modules that hold any of ``weights`` directly, in model order."""
    wanted = {id(w) for w in weights}
    members = set(wanted)
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if any(id(p) in wanted for p in own):
            members.update(id(p) for p in own)
    return tuple(name for name, p in model.named_parameters() if id(p) in members)


def embedding_names(model: nn.Module) -> tuple[str, ...]:
    """Names of the parameters owned by ``nn.Embedding`` modules (whatever they are called)."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return tuple(name for name, p in model.named_parameters() if id(p) in tables)


def routing_report(model: nn.Module, submission: Any) -> dict[str, Any] | None:
    """Per inner optimizer of ``submission``: tensors, parameters and shapes it updates.

    None for a submission with one optimizer over every parameter (``routing()`` returns None).
    ``special`` names the component that makes the method what it is (Muon's orthogonalised
    step, Shampoo's preconditioners); ``special_parameters`` is how many parameters it got:
    0 means the submission ran only its fallback on this model.
    """
    groups = submission.routing()
    if groups is None:
        return None
    names = parameter_names(model)
    components = {}
    for component, params in groups.items():
        shapes = Counter(tuple(p.shape) for p in params)
        components[component] = {
            "tensors": len(params),
            "parameters": sum(p.numel() for p in params),
            "shapes": [{"shape": list(shape), "count": count} for shape, count in shapes.items()],
            "names": [names.get(id(p), "?") for p in params],
        }
    special = getattr(submission, "special_component", None)
    return {
        "components": components,
        "special": special,
        "special_parameters": components.get(special, {}).get("parameters", 0) if special else None,
    }


def describe_routing(report: dict[str, Any]) -> list[str]:
    """One human line per component: ``muon: 5 tensors, 150,912 parameters: 2x (48, 48, 3, 3), ...``."""
    lines = []
    for component, facts in report["components"].items():
        shapes = ", ".join(f"{s['count']}x {tuple(s['shape'])}" if s["count"] > 1 else str(tuple(s["shape"]))
                           for s in facts["shapes"]) or "none"
        mark = " (the method's own step)" if component == report.get("special") else ""
        tensors = f"{facts['tensors']} tensor" + ("" if facts["tensors"] == 1 else "s")
        lines.append(f"{component}{mark}: {tensors}, {facts['parameters']:,} parameters: {shapes}")
    special = report.get("special")
    if special and not report.get("special_parameters"):
        lines.append(f"warning: '{special}' updates no parameter of this model: here the submission is only "
                     f"its fallback")
    return lines
