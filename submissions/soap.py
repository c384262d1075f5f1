"""SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"): Adam run in
the eigenbasis of Shampoo's preconditioner, refreshed every ``precondition_frequency`` steps.
Implementation: ``pytorch_optimizer.SOAP`` (a maintained collection; the reference SOAP code is
not published on PyPI), given one parameter per group so that it counts steps per parameter as
the authors' code does (:class:`PerParameterSOAP`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import torch
from pytorch_optimizer import SOAP as SOAPOptimizer
from torch import nn

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class SOAPHparams(TrainingHparams):
    lr: float
    beta1: float
    beta2: float
    shampoo_beta: float
    weight_decay: float
    precondition_frequency: int

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")
        for name in ("beta1", "beta2", "shampoo_beta"):
            require(0 <= getattr(self, name) < 1, name, getattr(self, name), "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        require(self.precondition_frequency >= 1, "precondition_frequency", self.precondition_frequency,
                "must be at least 1")


class PerParameterSOAP(SOAPOptimizer):
    """``pytorch_optimizer.SOAP`` with the authors' step count: theirs is per parameter, the port's per
    parameter group. A parameter whose first gradient comes late (a branch, an expert, a head trained
    later) must only gather statistics at that step, and its bias correction and basis refreshes count
    its own updates, also after steps without a gradient. Built with one parameter per group, a group
    whose parameter has no gradient is left out of the step (its count included), so the group's count is
    the parameter's."""

    def __init__(self, params: Iterable[nn.Parameter], **options: object) -> None:
        super().__init__([{"params": [p]} for p in params], **options)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        every = self.param_groups
        self.param_groups = [g for g in every if any(p.grad is not None for p in g["params"])]
        try:
            return super().step(closure)
        finally:
            self.param_groups = every


class SOAP(TorchOptimSubmission):
    Hparams = SOAPHparams
    special_component = "soap"
    revision = 2  # 2: steps counted per parameter, as the authors' code (1: per group, pytorch_optimizer's)

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: SOAPHparams) -> torch.optim.Optimizer:
        return PerParameterSOAP(params, lr=hp.lr, betas=(hp.beta1, hp.beta2), shampoo_beta=hp.shampoo_beta,
                                weight_decay=hp.weight_decay, precondition_frequency=hp.precondition_frequency)

    def routing(self) -> dict[str, list[nn.Parameter]]:
        """Tensors of >= 2 dimensions with a side <= max_precondition_dim take Adam in Shampoo's
        eigenbasis; 1-D parameters (biases, norm gains) take plain Adam (``precondition_1d`` off)."""
        groups: dict[str, list[nn.Parameter]] = {"soap": [], "adam": []}
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                rotated = p.ndim >= 2 and min(p.shape) <= group["max_precondition_dim"]
                groups["soap" if rotated else "adam"].append(p)
        return groups


SUBMISSION = SOAP
