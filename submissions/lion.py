"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the sign of an
interpolated momentum, with decoupled weight decay; one moment, so 4 bytes of state per
parameter. Implementation: the maintained ``lion-pytorch`` package."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from lion_pytorch import Lion as LionOptimizer
from torch import nn

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class LionHparams(TrainingHparams):
    lr: float
    beta1: float
    beta2: float
    weight_decay: float

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")
        require(0 <= self.beta1 < 1, "beta1", self.beta1, "must be in [0, 1)")
        require(0 <= self.beta2 < 1, "beta2", self.beta2, "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class Lion(TorchOptimSubmission):
    Hparams = LionHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: LionHparams) -> torch.optim.Optimizer:
        return LionOptimizer(params, lr=hp.lr, betas=(hp.beta1, hp.beta2), weight_decay=hp.weight_decay)


SUBMISSION = Lion
