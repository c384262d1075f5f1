"""NAdamW, AlgoPerf's baseline: Adam with Nesterov's look-ahead on the first moment and decoupled
weight decay, under the shared warmup + cosine schedule.

The update of AlgoPerf's PyTorch baseline (``reference_algorithms/paper_baselines/nadamw``;
Dozat's NAdam as written in Table 1 of Choi et al. 2019, arXiv:1910.05446), at step t >= 1 with
the scheduled rate lr:

    W <- W (1 - lr wd)                                     decoupled weight decay
    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
    m_nesterov = b1 m + (1 - b1) g                         the look-ahead: the next step's momentum
    W <- W - lr (m_nesterov / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

with b1 constant. ``torch.optim.NAdam`` is a different algorithm (Dozat's momentum schedule
mu_t = b1 (1 - 0.5 * 0.96^(0.004 t)), 0.45 at step 1): on a unit gradient with lr 1, b1 0.9, the
first step here moves 1.9, torch's 1.056.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from harness.submission import TorchOptimSubmission
from submissions._hparams import AdamHparams
from submissions._optimizer import ParameterwiseOptimizer


class NAdamWOptimizer(ParameterwiseOptimizer):
    """The NAdamW update above, with a constant b1."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def update_parameter(self, p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        p.mul_(1 - lr * group["weight_decay"])
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        look_ahead = g.lerp(m, beta1)  # b1 m + (1 - b1) g
        denominator = (v / (1 - beta2**t)).sqrt_().add_(eps)
        p.addcdiv_(look_ahead, denominator, value=-lr / (1 - beta1**t))


class NAdamW(TorchOptimSubmission):
    Hparams = AdamHparams
    revision = 2  # 1 was torch.optim.NAdam: another algorithm

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: AdamHparams) -> torch.optim.Optimizer:
        return NAdamWOptimizer(params, lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps,
                               weight_decay=hp.weight_decay)


SUBMISSION = NAdamW
