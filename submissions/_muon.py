"""Muon's update for parameters of two or more dimensions (weight matrices and conv filters).

Per parameter W with gradient G (Jordan et al. 2024; the course slides derive it as Shampoo
without accumulation):

    B <- mu B + (1 - mu) G                       momentum (an EMA, as torch.optim.Muon keeps it)
    U = (1 - mu) G + mu B  if nesterov, else B   Nesterov's look-ahead
    O = NS_k(U as a matrix)                      k quintic Newton-Schulz steps toward U V^T
    W <- W (1 - lr wd) - lr * 0.2 * sqrt(max(rows, cols)) * O

A conv filter (out, in, kh, kw) is the matrix (out, in * kh * kw), as in Keller Jordan's
reference and airbench's Muon runs: orthogonalised as that matrix, reshaped back. The step-size
factor 0.2 * sqrt(max(rows, cols)) (Moonshot's "match_rms_adamw", torch's
``adjust_lr_fn="match_rms_adamw"``) gives the update the RMS of a typical AdamW update, so ``lr``
is on AdamW's scale; rows and cols are those of the matrix view. For 2-D parameters this is
exactly ``torch.optim.Muon(adjust_lr_fn="match_rms_adamw")`` when the iteration runs in bfloat16
(tests/test_references.py checks it bit for bit), which refuses anything but 2-D parameters;
hence this short class.

Precision of the iteration: bfloat16 on CUDA, as the reference (a speed trick for GPU tensor
cores, which the iteration tolerates); the parameter's own dtype on other devices, because CPUs
without bfloat16 units emulate it ~25x slower than float32 (measured here: 6.6 ms against
0.27 ms for a 100x100 @ 100x784 product), which would charge Muon for an emulation rather than
for its algorithm. ``ns_bf16`` forces either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from submissions._optimizer import ParameterwiseOptimizer

#: the quintic iteration's coefficients (Keller Jordan's, also torch.optim.Muon's)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    """A parameter's matrix view: (shape[0], everything else) — a conv filter's (out, in * kh * kw)."""
    return tensor.reshape(tensor.shape[0], -1)


def orthogonalise(matrix: torch.Tensor, steps: int, dtype: torch.dtype, eps: float = 1e-7) -> torch.Tensor:
    """Approximately U V^T of ``matrix`` = U S V^T, by ``steps`` quintic Newton-Schulz iterations in ``dtype``.

    The singular values come out roughly in [0.7, 1.2] rather than exactly 1, which the method's
    authors found harmless. Works on the wide orientation (rows <= cols) so the Gram matrix is
    the small one.
    """
    a, b, c = NS_COEFFICIENTS
    x = matrix.to(dtype)
    tall = matrix.shape[0] > matrix.shape[1]
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)  # spectral norm <= Frobenius norm <= 1: inside the iteration's basin
    for _ in range(steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # b A + c A^2
        x = torch.addmm(x, poly, x, beta=a)  # a X + (b A + c A^2) X
    return x.T if tall else x


class MatrixMuon(ParameterwiseOptimizer):
    """Muon over parameters of >= 2 dimensions; see the module docstring for the update."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, weight_decay: float = 0.0, ns_bf16: bool | None = None):
        """``ns_bf16``: run the iteration in bfloat16 (None: on CUDA only; see the module docstring)."""
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
                                  "weight_decay": weight_decay, "ns_bf16": ns_bf16})
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim < 2:
                    raise ValueError(f"Muon updates matrices and filters only; got a parameter of shape "
                                     f"{tuple(p.shape)} (route it to the fallback optimizer)")

    def update_parameter(self, p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, mu = group["lr"], group["momentum"]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(g, memory_format=torch.preserve_format)
        buffer = state["momentum_buffer"]
        buffer.lerp_(g, 1 - mu)
        update = g.lerp(buffer, mu) if group["nesterov"] else buffer
        matrix = as_matrix(update)
        bf16 = group["ns_bf16"] if group["ns_bf16"] is not None else p.is_cuda
        direction = orthogonalise(matrix, group["ns_steps"], torch.bfloat16 if bf16 else p.dtype).reshape(p.shape)
        p.mul_(1 - lr * group["weight_decay"])
        p.add_(direction, alpha=-lr * 0.2 * math.sqrt(max(matrix.shape)))
