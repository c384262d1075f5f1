"""Plain stochastic gradient descent (torch.optim.SGD, no momentum)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class SGDHparams(TrainingHparams):
    lr: float
    weight_decay: float  # L2 penalty added to the gradient

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class SGD(TorchOptimSubmission):
    Hparams = SGDHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: SGDHparams) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=hp.lr, weight_decay=hp.weight_decay)


SUBMISSION = SGD
