"""Hyperparameter classes that several submissions share (a helper module: not a submission)."""

from __future__ import annotations

import dataclasses

from harness.submission import TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class AdamHparams(TrainingHparams):
    """Adam's hyperparameters: shared by ``adam``, ``adamw``, ``nadamw`` and ``schedule_free_adamw``."""

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
