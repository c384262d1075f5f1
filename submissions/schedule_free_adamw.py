"""Schedule-free AdamW (Defazio et al. 2024, "The Road Less Scheduled"; ``schedulefree`` package).

No learning-rate schedule: the optimizer interpolates between a fast iterate and a running
average. Training steps evaluate gradients at the interpolation ``y``; evaluation must see the
average ``x``. So :meth:`prepare_for_eval` switches the optimizer to eval mode (the parameters
become ``x``, charged as part of the algorithm) and the next :meth:`update` switches back to
train mode (the parameters become ``y`` again) before stepping. Warmup is the optimizer's own
(``warmup_fraction`` of the step hint); ``decay`` settings are ignored.
"""

from __future__ import annotations

from collections.abc import Callable

import schedulefree
import torch
from torch import nn

from harness.submission import Submission
from harness.workload import Batch, WorkloadInfo
from submissions.adamw import AdamHparams

ScheduleFreeHparams = AdamHparams  # the same hyperparameters as AdamW; no decay schedule is applied


class ScheduleFreeAdamW(Submission):
    Hparams = ScheduleFreeHparams

    def __init__(self, model: nn.Module, hparams: ScheduleFreeHparams, info: WorkloadInfo):
        super().__init__(model, hparams, info)
        self.optimizer = schedulefree.AdamWScheduleFree(
            [p for p in model.parameters() if p.requires_grad], lr=hparams.lr, betas=(hparams.beta1, hparams.beta2),
            eps=hparams.eps, weight_decay=hparams.weight_decay,
            warmup_steps=round(hparams.warmup_fraction * info.step_hint))
        self.optimizer.train()

    def update(self, batch: Batch, compute_loss: Callable[[Batch], torch.Tensor]) -> torch.Tensor:
        if not self.optimizer.param_groups[0]["train_mode"]:
            self.optimizer.train()  # back from evaluation: parameters return to the interpolation y
        self.optimizer.zero_grad(set_to_none=True)
        loss = compute_loss(batch)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def prepare_for_eval(self) -> None:
        self.optimizer.eval()  # parameters become the average x


SUBMISSION = ScheduleFreeAdamW
