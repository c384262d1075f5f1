"""Adam (torch.optim.Adam); ``weight_decay`` is an L2 penalty coupled to the gradient."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from harness.submission import TorchOptimSubmission
from submissions._hparams import AdamHparams


class Adam(TorchOptimSubmission):
    Hparams = AdamHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: AdamHparams) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            params, lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps, weight_decay=hp.weight_decay
        )


SUBMISSION = Adam
