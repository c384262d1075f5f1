"""NAdamW, AlgoPerf's baseline: Adam with Nesterov momentum and decoupled weight decay
(torch.optim.NAdam with ``decoupled_weight_decay=True``), under the shared warmup + cosine schedule."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from harness.submission import TorchOptimSubmission
from submissions.adamw import AdamHparams


class NAdamW(TorchOptimSubmission):
    Hparams = AdamHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: AdamHparams) -> torch.optim.Optimizer:
        return torch.optim.NAdam(params, lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps,
                                 weight_decay=hp.weight_decay, decoupled_weight_decay=True)


SUBMISSION = NAdamW
