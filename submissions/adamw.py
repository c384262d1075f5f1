"""AdamW (torch.optim.AdamW): Adam with weight decay decoupled from the gradient."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class AdamHparams(TrainingHparams):
    """Shared by ``adam`` and ``adamw``."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")
        require(0 <= self.beta1 < 1, "beta1", self.beta1, "must be in [0, 1)")
        require(0 <= self.beta2 < 1, "beta2", self.beta2, "must be in [0, 1)")
        require(self.eps > 0, "eps", self.eps, "must be positive")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class AdamW(TorchOptimSubmission):
    Hparams = AdamHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: AdamHparams) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            params, lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps, weight_decay=hp.weight_decay
        )


SUBMISSION = AdamW
