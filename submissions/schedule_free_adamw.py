"""Schedule-free AdamW (Defazio et al. 2024, "The Road Less Scheduled"; ``schedulefree`` package).

No learning-rate schedule: the optimizer interpolates between a fast iterate and a running
average. Training steps evaluate gradients at the interpolation ``y``; evaluation must see the
average ``x``. So :meth:`prepare_for_eval` switches the optimizer to eval mode (the parameters
become ``x``, charged as part of the algorithm) and the next :meth:`update` switches back to
train mode (the parameters become ``y`` again) before stepping. Warmup is the optimizer's own
(``warmup_fraction`` of the step hint); a ``decay`` other than ``constant`` is refused
(:class:`ScheduleFreeHparams`): the method replaces the decay schedule, so one set here would
never be applied while the trial's record said it was.

BatchNorm: the running statistics were accumulated while training at ``y``; evaluated at ``x``
they would describe other weights. As the method's authors do, :meth:`prepare_for_eval`
re-estimates them at ``x`` (charged: it is part of the algorithm) from the training batches of
the last :data:`BN_BATCHES` steps since the previous evaluation: forward passes only, in train
mode, with the statistics reset and averaged with equal weight (BatchNorm's ``momentum=None``).
The statistics of ``y`` are put back before the next training step, so training continues
exactly as if no evaluation had happened, and they travel in the checkpoint so a resumed trial
does too. Why 20 batches: BatchNorm's running average (momentum 0.1) has the noise of a plain
average over (2 - 0.1) / 0.1 = 19 batches, so 20 re-estimate ``x``'s statistics as precisely as
training kept ``y``'s, at the cost of ~20 forward passes (~7 steps of compute) per evaluation.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Any

import schedulefree
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from harness.submission import Submission, require
from harness.workload import Batch, WorkloadInfo
from submissions._hparams import AdamHparams


@dataclasses.dataclass(kw_only=True)
class ScheduleFreeHparams(AdamHparams):
    """AdamW's hyperparameters; the schedule is the optimizer's own warmup and no decay."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.decay == "constant", "decay", self.decay,
                "schedule_free_adamw applies no decay schedule (the method replaces it; only warmup_fraction "
                "is used, as the optimizer's own warmup), so it must be constant: remove the setting")


#: training batches (at most; those since the previous evaluation) that re-estimate BatchNorm statistics at x
BN_BATCHES = 20
_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


class ScheduleFreeAdamW(Submission):
    Hparams = ScheduleFreeHparams
    revision = 2  # 1 evaluated BatchNorm models with y's statistics

    def __init__(self, model: nn.Module, hparams: ScheduleFreeHparams, info: WorkloadInfo):
        super().__init__(model, hparams, info)
        self.optimizer = schedulefree.AdamWScheduleFree(
            [p for p in model.parameters() if p.requires_grad], lr=hparams.lr, betas=(hparams.beta1, hparams.beta2),
            eps=hparams.eps, weight_decay=hparams.weight_decay,
            warmup_steps=round(hparams.warmup_fraction * info.step_hint))
        self.optimizer.train()
        self.batch_norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        self.recent_batches: deque[tuple[Batch, Callable[[Batch], torch.Tensor]]] = deque(maxlen=BN_BATCHES)
        self.training_statistics: list[dict[str, torch.Tensor]] | None = None  # y's, while x is evaluated

    def update(self, batch: Batch, compute_loss: Callable[[Batch], torch.Tensor]) -> torch.Tensor:
        if not self.optimizer.param_groups[0]["train_mode"]:
            self.optimizer.train()  # back from evaluation: parameters return to the interpolation y
            self._restore_training_statistics()
        self.optimizer.zero_grad(set_to_none=True)
        loss = compute_loss(batch)
        loss.backward()
        self.optimizer.step()
        if self.batch_norms:
            self.recent_batches.append((batch, compute_loss))
        return loss.detach()

    def prepare_for_eval(self) -> None:
        self.optimizer.eval()  # parameters become the average x
        if self.batch_norms and self.recent_batches:
            self.training_statistics = [{k: getattr(m, k).clone() for k in _STATISTICS} for m in self.batch_norms]
            self._recompute_statistics()
        self.recent_batches.clear()

    @torch.no_grad()
    def _recompute_statistics(self) -> None:
        """BatchNorm statistics of the current weights: the equal-weight average over the recent batches."""
        saved = [(m.momentum, m.training) for m in self.batch_norms]
        for m in self.batch_norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: every batch weighs the same
            m.train()
        devices = [self.info.device] if self.info.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # dropout here must not shift training's randomness
            for batch, compute_loss in self.recent_batches:
                compute_loss(batch)
        for m, (momentum, training) in zip(self.batch_norms, saved):
            m.momentum = momentum
            m.train(training)

    def _restore_training_statistics(self) -> None:
        if self.training_statistics is None:
            return
        with torch.no_grad():
            for m, stats in zip(self.batch_norms, self.training_statistics):
                for key, value in stats.items():
                    getattr(m, key).copy_(value)
        self.training_statistics = None

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "bn_training_statistics": self.training_statistics}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.training_statistics = state.pop("bn_training_statistics", None)
        super().load_state_dict(state)


SUBMISSION = ScheduleFreeAdamW
