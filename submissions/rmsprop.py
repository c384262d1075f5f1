"""RMSprop: steps scaled by an exponential moving average of squared gradients."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class RMSpropHparams(TrainingHparams):
    lr: float
    alpha: float  # EMA coefficient of the squared gradients
    eps: float
    momentum: float
    centered: bool
    weight_decay: float

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")
        require(0 < self.alpha < 1, "alpha", self.alpha, "must be in (0, 1)")
        require(self.eps > 0, "eps", self.eps, "must be positive")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class RMSprop(TorchOptimSubmission):
    Hparams = RMSpropHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: RMSpropHparams) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(
            params, lr=hp.lr, alpha=hp.alpha, eps=hp.eps, momentum=hp.momentum,
            centered=hp.centered, weight_decay=hp.weight_decay,
        )


SUBMISSION = RMSprop
