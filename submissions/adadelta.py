"""Adadelta: RMSprop-style scaling with a unit-correcting running average of past updates."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class AdadeltaHparams(TrainingHparams):
    lr: float  # multiplies the Adadelta step; 1.0 is the method as published
    rho: float
    eps: float
    weight_decay: float

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")
        require(0 < self.rho < 1, "rho", self.rho, "must be in (0, 1)")
        require(self.eps > 0, "eps", self.eps, "must be positive")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class Adadelta(TorchOptimSubmission):
    Hparams = AdadeltaHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: AdadeltaHparams) -> torch.optim.Optimizer:
        return torch.optim.Adadelta(params, lr=hp.lr, rho=hp.rho, eps=hp.eps, weight_decay=hp.weight_decay)


SUBMISSION = Adadelta
