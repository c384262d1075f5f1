"""SGD with heavy-ball or Nesterov momentum (torch.optim.SGD); ``nesterov`` picks which."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class MomentumHparams(TrainingHparams):
    lr: float
    momentum: float  # beta of the velocity buffer
    nesterov: bool  # False: heavy ball; True: Nesterov's look-ahead form
    weight_decay: float

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")
        require(0 < self.momentum < 1, "momentum", self.momentum, "must be in (0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class Momentum(TorchOptimSubmission):
    Hparams = MomentumHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: MomentumHparams) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            params, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
        )


SUBMISSION = Momentum
