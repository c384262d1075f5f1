"""Adagrad: per-coordinate steps scaled by the root of the summed squared gradients."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class AdagradHparams(TrainingHparams):
    lr: float
    eps: float
    initial_accumulator_value: float
    weight_decay: float

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")
        require(self.eps > 0, "eps", self.eps, "must be positive")
        require(self.initial_accumulator_value >= 0, "initial_accumulator_value",
                self.initial_accumulator_value, "must be >= 0")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class Adagrad(TorchOptimSubmission):
    Hparams = AdagradHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: AdagradHparams) -> torch.optim.Optimizer:
        return torch.optim.Adagrad(
            params, lr=hp.lr, eps=hp.eps, weight_decay=hp.weight_decay,
            initial_accumulator_value=hp.initial_accumulator_value,
        )


SUBMISSION = Adagrad
