"""Rosenbrock: the optimizer's classic test function, as a workload (no data).

    f(x) = sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2,  minimum 0 at x = (1, ..., 1)

The "model" is the point x itself (an ``nn.Module`` holding one parameter vector), started at
the classic point plus a seeded jitter (``start_jitter``, 0 for the exact start). The
stochastic version adds noise to the gradient: each "batch" is ``batch_size`` standard normal
draws (batch_size x dim, from the workload's seeded generator), e = noise x their mean, and
the training loss is f(x) + e . x, whose gradient is grad f(x) + e (noise 0: exact gradients).
Evaluation reports the exact f(x) ("loss", lower is better). Sizes: smoke (2-D, exact
gradients: the course's contour picture) and cpu (10-D with gradient noise). Variant ``steep``:
curvature 1000 (a narrower, harder valley). Also used by ``optbench trajectories``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from harness.workload import Workload
from workloads._tensors import to_device

NOMINAL_EXAMPLES = 1_000_000  # no data: "examples" are noise draws; an epoch never ends


def rosenbrock(x: torch.Tensor, curvature: float = 100.0) -> torch.Tensor:
    """f(x) for a vector x of length >= 2 (``curvature`` is the classic 100)."""
    return (curvature * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


class Point(nn.Module):
    def __init__(self, start: torch.Tensor, curvature: float = 100.0):
        super().__init__()
        self.x = nn.Parameter(start.clone())
        self.curvature = curvature

    def forward(self, tilt: torch.Tensor | None = None) -> torch.Tensor:
        """f(x), plus ``tilt . x`` when given (the gradient noise: its gradient is ``tilt``).

        The noise goes through the call, not through ``self.x`` read by the loss: in a
        data-parallel trial the loss runs the model through DDP, which averages over the ranks
        the gradients of what its forward computed."""
        value = rosenbrock(self.x, self.curvature)
        return value if tilt is None else value + (tilt * self.x).sum()


def start_point(dim: int, start: list[float] | None) -> torch.Tensor:
    """The given start, or the classic one: (-1.5, 2) in 2-D, (-1.2, 1, -1.2, 1, ...) otherwise."""
    if start is not None:
        if len(start) != dim:
            raise ValueError(f"start has {len(start)} coordinates, dim is {dim}")
        return torch.tensor(start, dtype=torch.float32)
    if dim == 2:
        return torch.tensor([-1.5, 2.0])
    return torch.tensor([-1.2 if i % 2 == 0 else 1.0 for i in range(dim)])


class Rosenbrock(Workload):
    name = "rosenbrock"
    metric = "loss"
    higher_is_better = False
    metric_range = (0.0, math.inf)
    models = ("point",)
    options = {"dim": (int,), "noise": (int, float), "start": (list, type(None)), "start_jitter": (int, float)}

    def load(self) -> None:
        options = self.spec.options
        self.dim = int(options.get("dim", 2))
        if self.dim < 2:
            raise ValueError(f"rosenbrock needs dim >= 2, got {self.dim}")
        self.noise = float(options.get("noise", 0.0))
        self.start = start_point(self.dim, options.get("start"))
        self.jitter = float(options.get("start_jitter", 0.0))

    def load_training_data(self) -> None:
        self.load()  # no data: nothing is held out

    @property
    def num_train_examples(self) -> int:
        return NOMINAL_EXAMPLES

    def describe_data(self) -> str:
        return f"no data: {self.dim}-D Rosenbrock, gradient noise {self.noise:g}"

    def build_model(self, seed: int) -> nn.Module:
        jitter = torch.randn(self.dim, generator=torch.Generator().manual_seed(seed)) * self.jitter
        return Point(self.start + jitter, float(self.model_options.get("curvature", 100.0))).to(self.device)

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor]]:
        generator = torch.Generator().manual_seed(seed)
        while True:
            yield (to_device(torch.randn(batch_size, self.dim, generator=generator), self.device),)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor]) -> torch.Tensor:
        if self.noise == 0:
            return model()
        return model(self.noise * batch[0].mean(dim=0))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        value = float(model())
        return {"loss": value, "distance_to_minimum": float((model.x - 1.0).norm())}


WORKLOAD = Rosenbrock
