"""Template of a submission: copy this file anywhere (your own package, or ``submissions/``).

1. Rename the classes; declare every hyperparameter in the ``Hparams`` dataclass and validate it in
   ``__post_init__``. Batch size and the learning-rate schedule (warmup, cosine/linear decay) are
   inherited from ``TrainingHparams``.
2. Build your optimizer in ``build_optimizer``. For anything beyond one torch.optim optimizer
   (several optimizers, closures, parameter routing) subclass ``Submission`` and implement
   ``update(batch, compute_loss)``, returning the step's loss detached; implement
   ``prepare_for_eval`` when evaluation must see other weights (weight averaging, schedule-free).
3. Beside it, a YAML of the same stem (copy ``_template.yaml``, which goes with this file): the
   default ``hparams`` and the AlgoPerf-format ``search_space``.
4. ``optbench check submission=mypkg.my_optimizer:MyOptimizer`` (or ``submission=path/to/file.py``),
   then ``optbench trial`` / ``tune`` / ``suite`` with the same ``submission=``.

docs/writing-a-submission.md has the whole contract. A submission is not handed validation/test
data, the clock or the target, and must not reach for them; the harness owns them.
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
