"""Template: copy to ``submissions/<name>.py`` and ``configs/submission/<name>.yaml``.

Steps to add an optimizer:

1. Copy this file to ``submissions/my_optimizer.py``; rename the classes.
2. Declare every hyperparameter your optimizer needs in the ``Hparams`` dataclass (no
   defaults here; the YAML holds them) and validate it in ``__post_init__``. Batch size and
   the learning-rate schedule (warmup, cosine/linear decay) are inherited from
   ``TrainingHparams``.
3. Build your optimizer in ``build_optimizer``. For anything beyond one torch.optim optimizer
   (several optimizers, closures, parameter routing) subclass ``Submission`` instead and
   implement ``update(batch, compute_loss)``; implement ``prepare_for_eval`` when evaluation
   must see other weights (weight averaging, schedule-free).
4. Write ``configs/submission/my_optimizer.yaml`` (copy ``adamw.yaml``): ``name``, the default
   ``hparams`` and the AlgoPerf-format ``search_space``.
5. Run ``pytest tests/test_conformance.py``: the conformance suite picks the new submission up
   by itself. Then ``optbench trial submission=my_optimizer``.

A submission never sees validation/test data, the clock or the target; the harness owns them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class TemplateHparams(TrainingHparams):
    lr: float  # base learning rate (the schedule multiplies it)
    weight_decay: float

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


class Template(TorchOptimSubmission):
    Hparams = TemplateHparams

    def build_optimizer(self, params: Iterable[nn.Parameter], hp: TemplateHparams) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=hp.lr, weight_decay=hp.weight_decay)


SUBMISSION = Template
