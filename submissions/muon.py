"""Muon (Jordan et al. 2024) for hidden matrices and conv filters, AdamW for the rest.

Muon orthogonalises the momentum of each weight matrix (Newton-Schulz iterations toward U V^T:
Shampoo without accumulation, as the course slides derive); conv filters are orthogonalised as
(out, in * kh * kw) matrices, as in the reference (``submissions/_muon.py``). Parameters are
routed by ``ROUTING``: declarative rules on a parameter's *role* (the output layer, an embedding
table, or a hidden parameter), its number of dimensions and, optionally, its name. The role is
decided by what the parameter does, not by names or registration order: the output layer is the
one whose output feeds the loss (the workload names it in ``WorkloadInfo.output_parameters``),
an embedding is a parameter of an ``nn.Embedding``. Every rule is evaluated against every
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
from harness.routing import embedding_names
from harness.submission import Submission, TrainingHparams, lr_multiplier, require
from harness.workload import Batch, WorkloadInfo
from submissions._muon import MatrixMuon


@dataclasses.dataclass(frozen=True)
class Rule:
    """Claims the parameters that satisfy every condition given (None: no condition)."""

    optimizer: str  # "muon" or "adamw"
    role: str | None = None  # "output" (the output layer), "embedding" (nn.Embedding tables) or "hidden"
    ndim: tuple[int, ...] | None = None
    name: str | None = None  # regex the parameter name must contain
    not_name: str | None = None  # regex the parameter name must not contain

    def claims(self, name: str, param: nn.Parameter, role: str) -> bool:
        return ((self.role is None or self.role == role)
                and (self.ndim is None or param.ndim in self.ndim)
                and (self.name is None or re.search(self.name, name) is not None)
                and (self.not_name is None or re.search(self.not_name, name) is None))


ROUTING: tuple[Rule, ...] = (
    Rule("adamw", role="output"),  # the layer whose output feeds the loss: its weight and bias
    Rule("adamw", role="embedding"),  # lookup tables: a row per token, not a linear map of activations
    Rule("muon", role="hidden", ndim=(2, 3, 4, 5)),  # hidden matrices and conv filters (as out x fan-in)
    Rule("adamw", role="hidden", ndim=(0, 1)),  # biases, norm gains
)


def roles(model: nn.Module, info: WorkloadInfo) -> dict[str, str]:
    """Each parameter name's role; the output layer wins over embedding (a tied head is both)."""
    output, embeddings = set(info.output_parameters), set(embedding_names(model))
    return {name: "output" if name in output else "embedding" if name in embeddings else "hidden"
            for name, _ in model.named_parameters()}


def route(model: nn.Module, info: WorkloadInfo, rules: Sequence[Rule] = ROUTING) -> dict[str, list[nn.Parameter]]:
    """Parameters per optimizer; UserError naming every unclaimed or multiply claimed parameter."""
    role_of = roles(model, info)
    groups: dict[str, list[nn.Parameter]] = {"muon": [], "adamw": []}
    problems = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        matches = [r for r in rules if r.claims(name, param, role_of[name])]
        if len(matches) != 1:
            problems.append(f"{name} {tuple(param.shape)} ({role_of[name]}): " + (
                "claimed by no rule" if not matches else f"claimed by {len(matches)} rules ({matches})"))
            continue
        groups.setdefault(matches[0].optimizer, []).append(param)
    if problems:
        raise UserError("Muon's parameter routing must claim every trainable parameter exactly once: "
                        + "; ".join(problems))
    return groups


@dataclasses.dataclass(kw_only=True)
class MuonHparams(TrainingHparams):
    lr: float  # Muon's rate, scaled by 0.2 sqrt(max(rows, cols)) per matrix ("match_rms_adamw": on AdamW's scale)
    momentum: float
    nesterov: bool
    ns_steps: int
    adamw_lr: float
    beta1: float
    beta2: float
    weight_decay: float  # decoupled, for both optimizers

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lr", "adamw_lr"):
            require(getattr(self, name) > 0, name, getattr(self, name), "must be positive")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "must be in [0, 1)")
        require(self.ns_steps >= 1, "ns_steps", self.ns_steps, "must be at least 1")
        for name in ("beta1", "beta2"):
            require(0 <= getattr(self, name) < 1, name, getattr(self, name), "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class Muon(Submission):
    Hparams = MuonHparams
    revision = 2  # 1 routed conv filters to AdamW and found the head by registration order
    rules: Sequence[Rule] = ROUTING
    special_component = "muon"

    def __init__(self, model: nn.Module, hparams: MuonHparams, info: WorkloadInfo):
        super().__init__(model, hparams, info)
        self.groups = route(model, info, self.rules)
        self.optimizers = []
        if self.groups["muon"]:
            self.optimizers.append(MatrixMuon(
                self.groups["muon"], lr=hparams.lr, momentum=hparams.momentum, nesterov=hparams.nesterov,
                ns_steps=hparams.ns_steps, weight_decay=hparams.weight_decay))
        if self.groups["adamw"]:
            self.optimizers.append(torch.optim.AdamW(self.groups["adamw"], lr=hparams.adamw_lr,
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

    def routing(self) -> dict[str, list[nn.Parameter]]:
        return self.groups


SUBMISSION = Muon
