"""Muon (Jordan et al. 2024; ``torch.optim.Muon``) for hidden weight matrices, AdamW for the rest.

Muon orthogonalises the momentum of each weight matrix (Newton-Schulz iterations toward U V^T:
Shampoo without accumulation, as the course slides derive) — meant for hidden 2-D weights only.
Parameters are routed by ``ROUTING``: declarative rules on the parameter's name, number of
dimensions and whether it is the output layer's weight. Every rule is evaluated against every
trainable parameter and each parameter must be claimed by exactly one rule: an unclaimed or
doubly claimed parameter stops the submission before training (a silent fallback would train
part of the model with the wrong optimizer).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import torch
from torch import nn

from harness.errors import UserError
from harness.submission import Submission, TrainingHparams, lr_multiplier, require
from harness.workload import Batch, WorkloadInfo

EMBEDDING_OR_HEAD = r"(embed|wte|wpe|lm_head|head|classifier)"


@dataclasses.dataclass(frozen=True)
class Rule:
    """Claims the parameters that satisfy every condition given (None: no condition)."""

    optimizer: str  # "muon" or "adamw"
    name: str | None = None  # regex the parameter name must contain
    not_name: str | None = None  # regex the parameter name must not contain
    ndim: tuple[int, ...] | None = None
    output_layer: bool | None = None  # is it the weight of the model's last nn.Linear?

    def claims(self, name: str, param: nn.Parameter, is_output: bool) -> bool:
        return ((self.name is None or re.search(self.name, name) is not None)
                and (self.not_name is None or re.search(self.not_name, name) is None)
                and (self.ndim is None or param.ndim in self.ndim)
                and (self.output_layer is None or self.output_layer == is_output))


ROUTING: tuple[Rule, ...] = (
    Rule("muon", ndim=(2,), not_name=EMBEDDING_OR_HEAD, output_layer=False),  # hidden matrices
    Rule("adamw", ndim=(2,), not_name=EMBEDDING_OR_HEAD, output_layer=True),  # the output layer
    Rule("adamw", ndim=(2,), name=EMBEDDING_OR_HEAD),  # embeddings and named heads
    Rule("adamw", ndim=(0, 1)),  # biases, norm gains
    Rule("adamw", ndim=(3, 4, 5)),  # convolution filters (Muon here is for matrices only)
)


def route(model: nn.Module, rules: Sequence[Rule] = ROUTING) -> dict[str, list[nn.Parameter]]:
    """Parameters per optimizer; UserError naming every unclaimed or multiply claimed parameter."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    output = linears[-1].weight if linears else None
    groups: dict[str, list[nn.Parameter]] = {}
    problems = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        matches = [r for r in rules if r.claims(name, param, param is output)]
        if len(matches) != 1:
            problems.append(f"{name} {tuple(param.shape)}: " + (
                "claimed by no rule" if not matches else f"claimed by {len(matches)} rules ({matches})"))
            continue
        groups.setdefault(matches[0].optimizer, []).append(param)
    if problems:
        raise UserError("Muon's parameter routing must claim every trainable parameter exactly once: "
                        + "; ".join(problems))
    return groups


@dataclasses.dataclass(kw_only=True)
class MuonHparams(TrainingHparams):
    lr: float  # Muon's rate, with torch's "match_rms_adamw" scaling (comparable to an AdamW rate)
    momentum: float
    nesterov: bool
    ns_steps: int
    adamw_lr: float
    beta1: float
    beta2: float
    weight_decay: float  # decoupled, for both optimizers

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0 and self.adamw_lr > 0, "lr", (self.lr, self.adamw_lr), "must be positive")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "must be in [0, 1)")
        require(self.ns_steps >= 1, "ns_steps", self.ns_steps, "must be at least 1")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1/beta2", (self.beta1, self.beta2),
                "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class Muon(Submission):
    Hparams = MuonHparams
    rules: Sequence[Rule] = ROUTING

    def __init__(self, model: nn.Module, hparams: MuonHparams, info: WorkloadInfo):
        super().__init__(model, hparams, info)
        groups = route(model, self.rules)
        self.optimizers = []
        if groups.get("muon"):
            self.optimizers.append(torch.optim.Muon(
                groups["muon"], lr=hparams.lr, momentum=hparams.momentum, nesterov=hparams.nesterov,
                ns_steps=hparams.ns_steps, weight_decay=hparams.weight_decay, adjust_lr_fn="match_rms_adamw"))
        if groups.get("adamw"):
            self.optimizers.append(torch.optim.AdamW(groups["adamw"], lr=hparams.adamw_lr,
                                                     betas=(hparams.beta1, hparams.beta2),
                                                     weight_decay=hparams.weight_decay))
        schedule = lr_multiplier(hparams, info.step_hint)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in self.optimizers]

    def update(self, batch: Batch, compute_loss: Callable[[Batch], torch.Tensor]) -> torch.Tensor:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss = compute_loss(batch)
        loss.backward()
        for optimizer, scheduler in zip(self.optimizers, self.schedulers):
            optimizer.step()
            scheduler.step()
        return loss.detach()


SUBMISSION = Muon
