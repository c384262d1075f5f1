"""A base for the optimizers written in this repository: one update rule per parameter.

``torch.optim.Optimizer.step`` must accept a closure, run without autograd and visit every
parameter with a gradient in every group; that is stated here once, so NAdamW, Muon and Shampoo
each write only their update rule.
"""

from __future__ import annotations

from typing import Any

import torch


class ParameterwiseOptimizer(torch.optim.Optimizer):
    """Subclasses implement :meth:`update_parameter`; ``step`` handles the closure and the loops."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update_parameter(p, p.grad, self.state[p], group)
        return loss

    def update_parameter(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                         group: dict[str, Any]) -> None:
        """Update ``p`` in place from ``grad``; ``state`` is its (initially empty) optimizer state."""
        raise NotImplementedError
