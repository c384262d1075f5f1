"""A compact Shampoo with Adam grafting, as on the course slides (no maintained implementation
installs here: Meta's distributed_shampoo is not on PyPI; see docs/optimizers.md).

For a weight matrix W with gradient G (m x n):

    L <- beta L + (1 - beta) G G^T          R <- beta R + (1 - beta) G^T G     (bias-corrected)
    every k steps: P_L = (L + eps I)^(-1/4),  P_R = (R + eps I)^(-1/4)   (eigendecomposition)
    direction D = P_L M P_R  with M Adam's bias-corrected first moment
    grafting: D <- D * ||A|| / ||D||  with A Adam's direction for this matrix (the per-layer
    step size is Adam's, the shape of the step is Shampoo's)
    W <- W (1 - lr wd) - lr D

A parameter of more than two dimensions (a conv filter, out x in x kh x kw) is preconditioned as
the matrix (out, in * kh * kw), as Muon orthogonalises it (submissions/_muon.py). A side longer
than ``max_preconditioner_dim`` keeps the identity (one-sided Shampoo), which is what keeps the
784-wide input layer of the Fashion-MNIST MLP affordable on a CPU. Parameters of fewer than two
dimensions (biases, norm gains) take Adam's step.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from submissions._optimizer import ParameterwiseOptimizer


def inverse_root(matrix: torch.Tensor, root: int, eps: float) -> torch.Tensor:
    """(matrix + eps I)^(-1/root) of a symmetric positive semi-definite matrix, via eigh in float64."""
    a = matrix.double()
    a = 0.5 * (a + a.T) + eps * torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    values, vectors = torch.linalg.eigh(a)
    values = values.clamp_min(eps)
    return ((vectors * values.pow(-1.0 / root)) @ vectors.T).to(matrix.dtype)


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The matrix a parameter of ``shape`` is preconditioned as: (shape[0], everything else), so a
    conv filter's (out, in * kh * kw); None for fewer than two dimensions (Adam's step)."""
    if len(shape) < 2:
        return None
    return shape[0], math.prod(shape[1:])


def preconditioned_sides(shape: tuple[int, ...], max_dim: int) -> tuple[bool, bool]:
    """Whether a parameter of ``shape`` gets a left and a right preconditioner (on its matrix view)."""
    matrix = matrix_shape(shape)
    if matrix is None:
        return False, False
    return matrix[0] <= max_dim, matrix[1] <= max_dim


def preconditioned(grad: torch.Tensor, left: torch.Tensor | None, right: torch.Tensor | None) -> torch.Tensor:
    """P_L G P_R (a missing side is the identity)."""
    out = grad
    if left is not None:
        out = left @ out
    if right is not None:
        out = out @ right
    return out


class GraftedShampoo(ParameterwiseOptimizer):
    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), shampoo_beta: float = 0.95,
                 eps: float = 1e-8, matrix_eps: float = 1e-6, precondition_every: int = 10,
                 max_preconditioner_dim: int = 1024, weight_decay: float = 0.0, graft: bool = True):
        defaults = {"lr": lr, "betas": betas, "shampoo_beta": shampoo_beta, "eps": eps, "matrix_eps": matrix_eps,
                    "precondition_every": precondition_every, "max_preconditioner_dim": max_preconditioner_dim,
                    "weight_decay": weight_decay, "graft": graft}
        super().__init__(params, defaults)

    def update_parameter(self, p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            left, right = preconditioned_sides(tuple(p.shape), group["max_preconditioner_dim"])
            rows, cols = matrix_shape(tuple(p.shape)) or (0, 0)
            if left:
                state["left_stat"] = torch.zeros(rows, rows, dtype=p.dtype, device=p.device)
            if right:
                state["right_stat"] = torch.zeros(cols, cols, dtype=p.dtype, device=p.device)
        state["step"] += 1
        t = state["step"]
        state["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        momentum = state["exp_avg"] / (1 - beta1**t)
        adam = momentum / ((state["exp_avg_sq"] / (1 - beta2**t)).sqrt() + group["eps"])
        direction = adam
        if "left_stat" in state or "right_stat" in state:
            matrix = (p.shape[0], -1)
            direction = self._shampoo_direction(state, group, g.reshape(matrix), momentum.reshape(matrix), t)
            direction = direction.reshape(p.shape)
            if group["graft"]:
                direction = direction * (adam.norm() / direction.norm().clamp_min(1e-30))
        if group["weight_decay"]:
            p.mul_(1 - group["lr"] * group["weight_decay"])
        p.add_(direction, alpha=-group["lr"])

    def _shampoo_direction(self, state: dict, group: dict, g: torch.Tensor, momentum: torch.Tensor,
                           t: int) -> torch.Tensor:
        beta, eps = group["shampoo_beta"], group["matrix_eps"]
        correction = 1 - beta**t if beta > 0 else 1.0
        refresh = (t - 1) % group["precondition_every"] == 0
        roots = {}
        for side, product in (("left", lambda: g @ g.T), ("right", lambda: g.T @ g)):
            if f"{side}_stat" not in state:
                continue
            stat = state[f"{side}_stat"]
            stat.mul_(beta).add_(product(), alpha=1 - beta)
            if refresh or f"{side}_root" not in state:
                state[f"{side}_root"] = inverse_root(stat / correction, 4, eps)
            roots[side] = state[f"{side}_root"]
        return preconditioned(momentum, roots.get("left"), roots.get("right"))
