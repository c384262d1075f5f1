"""Every submission is the algorithm it names: its parameter trajectory against an independent reference.

Each test trains a small float64 model for 25 steps through the submission (built from its YAML
defaults, with a 2-step warmup and a cosine decay over a step hint of 20 so the schedule is
exercised, and weight decay switched on where the method has it), and the same model through a
reference written here from the published update rule in NumPy (or, for Muon, through
``torch.optim.Muon``, code this project does not own), fed the gradients at the reference's own
parameters. The trajectories must agree at every step to ``TOLERANCE`` (relative to the largest
parameter), which is float64 rounding (SOAP: float32, see ``TOLERANCES``): a changed coefficient,
order of operations or bias correction moves them by 1e-4 or more within a few steps.

Where a submission deliberately differs from its paper, the reference follows the submission and
the test's docstring says what differs (docs/optimizers.md says it in one line).
Every submission in this repository has a reference here (``test_every_submission_has_a_reference``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from harness.config.compose import compose_config, to_plain
from harness.config.names import submission_names
from harness.config.registry import submission_class
from harness.routing import output_layer_names
from harness.submission import Submission, TrainingHparams
from harness.workload import WorkloadInfo

STEPS = 25
STEP_HINT = 20
BATCH = 16
CLASSES = 5
TOLERANCE = 1e-9
SCHEDULE = {"warmup_fraction": 0.1, "decay": "cosine", "decay_fraction": 1.0, "final_lr_fraction": 0.0}

Reference = Callable[[list[np.ndarray], list[np.ndarray], int, dict[str, Any], Any, float], None]


# ------------------------------------------------------------------------------------ the driver
def mlp(hidden: int = 5) -> nn.Module:
    """5 -> hidden -> 5 with tanh; square matrices by default (SOAP's eigenbases are then unique)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, hidden), nn.Tanh(), nn.Linear(hidden, CLASSES)).double()


def batches(inputs: tuple[int, ...] = (5,), seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn((BATCH, *inputs), generator=generator, dtype=torch.float64),
             torch.randint(0, CLASSES, (BATCH,), generator=generator)) for _ in range(STEPS)]


def loss_of(model: nn.Module) -> Callable[[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Cross-entropy; a model with ``regression = True`` fits the one-hot labels by squared error.

    Why regression for SOAP: softmax cross-entropy is blind to adding one vector to every row of
    the output layer, so those gradients have an exact null direction; SOAP's float32 QR leaves
    ~1e-7 of noise in it, which Adam's normalisation then blows up to a full-size step (along a
    direction the loss cannot see), differently in any two codes.
    """
    if getattr(model, "regression", False):
        return lambda batch: F.mse_loss(model(batch[0]), F.one_hot(batch[1], CLASSES).double())
    return lambda batch: F.cross_entropy(model(batch[0]), batch[1])


def info_for(model: nn.Module, data: list) -> WorkloadInfo:
    return WorkloadInfo(name="reference", size="test", step_hint=STEP_HINT, max_runtime_s=1.0,
                        num_train_examples=BATCH * STEPS, batch_size=BATCH, min_batch_size=1,
                        max_batch_size=BATCH * STEPS, device=torch.device("cpu"),
                        output_parameters=output_layer_names(loss_of(model)(data[0]), model))


def hparams(name: str, **overrides: Any) -> TrainingHparams:
    defaults = to_plain(compose_config("trial", [f"submission={name}"]).submission.hparams)
    return submission_class(name).Hparams.from_mapping({**defaults, "batch_size": BATCH, **SCHEDULE, **overrides},
                                                       name)


def build(name: str, model: nn.Module, data: list, **overrides: Any) -> tuple[Submission, Any]:
    hp = hparams(name, **overrides)
    return submission_class(name)(model, hp, info_for(model, data)), hp


def scheduled(step: int, hp: Any) -> float:
    """The documented schedule, written from its description: warmup from lr/W, cosine to the end."""
    warmup = round(hp.warmup_fraction * STEP_HINT)
    end = round(hp.decay_fraction * STEP_HINT)
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / (end - warmup))
    return hp.final_lr_fraction + (1 - hp.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def gradients(model: nn.Module, params: list[np.ndarray], batch: tuple) -> list[np.ndarray]:
    """The loss gradients of ``model`` at ``params`` (autograd is not under test here)."""
    with torch.no_grad():
        for p, value in zip(model.parameters(), params):
            p.copy_(torch.from_numpy(value))
    model.zero_grad(set_to_none=True)
    loss_of(model)(batch).backward()
    return [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]


def disagreement(model: nn.Module, params: list[np.ndarray]) -> float:
    ours = [p.detach().numpy() for p in model.parameters()]
    scale = max(np.abs(r).max() for r in params)
    return max(np.abs(a - r).max() for a, r in zip(ours, params)) / scale


def trajectory_gap(name: str, reference: Reference, model: nn.Module | None = None, scale_lr: bool = True,
                   inputs: tuple[int, ...] = (5,), **overrides: Any) -> float:
    """Largest relative gap between the submission's and the reference's parameters over STEPS steps.

    ``reference(params, grads, step, state, hp, lr)`` updates ``params`` in place; ``lr`` is the
    base rate times the schedule at ``step`` (counting from 0), or the base rate if not ``scale_lr``.
    """
    model = model if model is not None else mlp()
    twin = copy.deepcopy(model)
    data = batches(inputs)
    submission, hp = build(name, model, data, **overrides)
    params = [p.detach().numpy().copy() for p in twin.parameters()]
    start = [p.copy() for p in params]
    state: dict[str, Any] = {}
    worst = 0.0
    for step, batch in enumerate(data):
        submission.update(batch, loss_of(model))
        grads = gradients(twin, params, batch)
        reference(params, grads, step, state, hp, hp.lr * (scheduled(step, hp) if scale_lr else 1.0))
        worst = max(worst, disagreement(model, params))
    assert math.isfinite(worst)
    assert max(np.abs(p - s).max() for p, s in zip(params, start)) > 1e-4, "the reference barely moved"
    return worst


def moments(state: dict, i: int, shape: tuple[int, ...], *keys: str) -> list[np.ndarray]:
    """Per-parameter reference state, zeros on first use."""
    slot = state.setdefault(i, {})
    return [slot.setdefault(k, np.zeros(shape)) for k in keys]


# ------------------------------------------------------------------------------------ the course's
def sgd(params, grads, step, state, hp, lr):
    """SGD with an L2 penalty: p <- p - lr (g + wd p)."""
    for p, g in zip(params, grads):
        p -= lr * (g + hp.weight_decay * p)


def momentum(params, grads, step, state, hp, lr):
    """Heavy ball b <- mu b + g (b = g at the first step); Nesterov steps along g + mu b."""
    for i, (p, g) in enumerate(zip(params, grads)):
        g = g + hp.weight_decay * p
        slot = state.setdefault(i, {})
        slot["b"] = g.copy() if step == 0 else hp.momentum * slot["b"] + g
        p -= lr * (g + hp.momentum * slot["b"] if hp.nesterov else slot["b"])


def adagrad(params, grads, step, state, hp, lr):
    """Duchi et al.: s <- s + g^2 (s starts at initial_accumulator_value); p <- p - lr g / (sqrt(s) + eps)."""
    for i, (p, g) in enumerate(zip(params, grads)):
        g = g + hp.weight_decay * p
        slot = state.setdefault(i, {})
        slot["s"] = slot.get("s", np.full(p.shape, hp.initial_accumulator_value)) + g * g
        p -= lr * g / (np.sqrt(slot["s"]) + hp.eps)


def rmsprop(params, grads, step, state, hp, lr):
    """Hinton's RMSprop: v <- a v + (1 - a) g^2; p <- p - lr g / (sqrt(v) + eps); optional centring, momentum."""
    for i, (p, g) in enumerate(zip(params, grads)):
        g = g + hp.weight_decay * p
        v, mean, buf = moments(state, i, p.shape, "v", "mean", "buf")
        v[:] = hp.alpha * v + (1 - hp.alpha) * g * g
        variance = v
        if hp.centered:
            mean[:] = hp.alpha * mean + (1 - hp.alpha) * g
            variance = v - mean * mean
        direction = g / (np.sqrt(variance) + hp.eps)
        if hp.momentum > 0:
            buf[:] = hp.momentum * buf + direction
            direction = buf
        p -= lr * direction


def adadelta(params, grads, step, state, hp, lr):
    """Zeiler: v <- r v + (1 - r) g^2; d = sqrt(u + eps) / sqrt(v + eps) g; u <- r u + (1 - r) d^2; p -= lr d."""
    for i, (p, g) in enumerate(zip(params, grads)):
        g = g + hp.weight_decay * p
        v, u = moments(state, i, p.shape, "v", "u")
        v[:] = hp.rho * v + (1 - hp.rho) * g * g
        d = np.sqrt(u + hp.eps) / np.sqrt(v + hp.eps) * g
        u[:] = hp.rho * u + (1 - hp.rho) * d * d
        p -= lr * d


def adam_direction(state, i, g, step, b1, b2, eps) -> np.ndarray:
    """Kingma & Ba's bias-corrected m_hat / (sqrt(v_hat) + eps); step counts from 0."""
    m, v = moments(state, i, g.shape, "m", "v")
    m[:] = b1 * m + (1 - b1) * g
    v[:] = b2 * v + (1 - b2) * g * g
    t = step + 1
    return (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)


def adam(params, grads, step, state, hp, lr):
    """Adam with the L2 penalty added to the gradient (coupled weight decay)."""
    for i, (p, g) in enumerate(zip(params, grads)):
        p -= lr * adam_direction(state, i, g + hp.weight_decay * p, step, hp.beta1, hp.beta2, hp.eps)


def adamw(params, grads, step, state, hp, lr):
    """Loshchilov & Hutter: p <- p (1 - lr wd), then Adam's step."""
    for i, (p, g) in enumerate(zip(params, grads)):
        p *= 1 - lr * hp.weight_decay
        p -= lr * adam_direction(state, i, g, step, hp.beta1, hp.beta2, hp.eps)


# ------------------------------------------------------------------------------------ the leaderboard's
def nadamw(params, grads, step, state, hp, lr):
    """AlgoPerf's NAdamW: constant b1, Nesterov look-ahead (b1 m_t + (1 - b1) g_t) / (1 - b1^t), decoupled decay."""
    b1, b2, t = hp.beta1, hp.beta2, step + 1
    for i, (p, g) in enumerate(zip(params, grads)):
        m, v = moments(state, i, p.shape, "m", "v")
        m[:] = b1 * m + (1 - b1) * g
        v[:] = b2 * v + (1 - b2) * g * g
        p *= 1 - lr * hp.weight_decay
        p -= lr * ((b1 * m + (1 - b1) * g) / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + hp.eps)


def lion(params, grads, step, state, hp, lr):
    """Chen et al. 2023, Algorithm 2: p <- p - lr (sign(b1 m + (1 - b1) g) + wd p); m <- b2 m + (1 - b2) g."""
    for i, (p, g) in enumerate(zip(params, grads)):
        (m,) = moments(state, i, p.shape, "m")
        p -= lr * (np.sign(hp.beta1 * m + (1 - hp.beta1) * g) + hp.weight_decay * p)
        m[:] = hp.beta2 * m + (1 - hp.beta2) * g


def shampoo(params, grads, step, state, hp, lr):
    """Shampoo with Adam grafting, dense: explicit matrix powers (scipy) instead of eigendecompositions.

    Deliberate differences from Gupta et al. 2018: EMA statistics (shampoo_beta) with bias
    correction instead of sums; the preconditioners act on Adam's bias-corrected momentum, not the
    raw gradient; the step is rescaled to the norm of Adam's step (grafting); roots are refreshed
    every ``precondition_every`` steps; a side longer than ``max_preconditioner_dim`` keeps the
    identity; a conv filter is the matrix (out, in * kh * kw); vectors take Adam's step.
    """
    t, beta = step + 1, hp.shampoo_beta
    for i, (p, g) in enumerate(zip(params, grads)):
        adam_step = adam_direction(state, i, g, step, hp.beta1, hp.beta2, 1e-8)
        direction = adam_step
        slot = state[i]
        g = g.reshape(p.shape[0], -1) if p.ndim >= 2 else g
        if p.ndim >= 2 and min(g.shape) <= hp.max_preconditioner_dim:
            momentum = (slot["m"] / (1 - hp.beta1**t)).reshape(g.shape)
            roots = []
            for side, product in (("left", g @ g.T), ("right", g.T @ g)):
                n = product.shape[0]
                if n > hp.max_preconditioner_dim:
                    roots.append(np.eye(n))
                    continue
                stat = slot[side] = beta * slot.get(side, np.zeros((n, n))) + (1 - beta) * product
                if step % hp.precondition_every == 0:
                    slot[side + "_root"] = scipy.linalg.fractional_matrix_power(
                        stat / (1 - beta**t) + hp.matrix_eps * np.eye(n), -0.25).real
                roots.append(slot[side + "_root"])
            direction = (roots[0] @ momentum @ roots[1]).reshape(p.shape)
            direction = direction * np.linalg.norm(adam_step) / np.linalg.norm(direction)
        p *= 1 - lr * hp.weight_decay
        p -= lr * direction


def soap(params, grads, step, state, hp, lr):
    """Vyas et al. 2024: Adam in the eigenbasis of Shampoo's statistics L = E[G G^T], R = E[G^T G].

    As in the authors' code: the first step only gathers statistics and takes the eigenbases
    (eigenvectors by decreasing eigenvalue), no update; afterwards Adam's second moment lives in
    the rotated coordinates and the momentum in the original ones; weight decay after the step;
    every ``precondition_frequency`` updates the bases are refreshed by one power-iteration step
    and a QR decomposition (in float32, as both codes do), with the second moment reordered by
    the estimated eigenvalues.
    1-D parameters take plain Adam (with the same skipped first step).
    """
    beta, eps = hp.shampoo_beta, 1e-8
    for i, (p, g) in enumerate(zip(params, grads)):
        if g is None:  # the authors' code skips a parameter without a gradient, its step count too
            continue
        slot = state.setdefault(i, {})
        matrix = p.ndim == 2
        if "m" not in slot:  # the parameter's first gradient, at whatever step it comes
            slot["m"], slot["v"], slot["k"] = np.zeros(p.shape), np.zeros(p.shape), 0
            if matrix:
                slot["L"], slot["R"] = (1 - beta) * g @ g.T, (1 - beta) * g.T @ g
                slot["QL"], slot["QR"] = (np.linalg.eigh(slot[k])[1][:, ::-1] for k in ("L", "R"))
            continue
        slot["k"] += 1
        k = slot["k"]  # this parameter's updates so far, this one included
        left, right = (slot["QL"], slot["QR"]) if matrix else (None, None)
        slot["m"] = hp.beta1 * slot["m"] + (1 - hp.beta1) * g
        slot["v"] = hp.beta2 * slot["v"] + (1 - hp.beta2) * rotated(g, left, right) ** 2
        step_size = lr * math.sqrt(1 - hp.beta2**k) / (1 - hp.beta1**k)
        adam_step = rotated(slot["m"], left, right) / (np.sqrt(slot["v"]) + eps)
        p -= step_size * (adam_step if left is None else left @ adam_step @ right.T)
        p *= 1 - lr * hp.weight_decay
        if matrix:
            slot["L"] = beta * slot["L"] + (1 - beta) * g @ g.T
            slot["R"] = beta * slot["R"] + (1 - beta) * g.T @ g
            if k % hp.precondition_frequency == 0:
                for axis, (stat, basis) in enumerate((("L", "QL"), ("R", "QR"))):
                    power = slot[stat] @ slot[basis]
                    order = np.argsort(-(slot[basis] * power).sum(axis=0), kind="stable")
                    slot["v"] = np.take(slot["v"], order, axis=axis)
                    slot[basis] = np.linalg.qr(power[:, order].astype(np.float32))[0].astype(np.float64)


def rotated(a: np.ndarray, left: np.ndarray | None, right: np.ndarray | None) -> np.ndarray:
    """``a`` in the eigenbases' coordinates, Q_L^T a Q_R (unchanged for a vector)."""
    return a if left is None else left.T @ a @ right


def schedule_free_adamw(params, grads, step, state, hp, lr):
    """Defazio et al. 2024, Algorithm 1 (AdamW form), kept as the paper's x and z; the model holds y.

    z <- z - lr_t (g / (sqrt(v_hat) + eps) + wd y);  x <- (1 - c) x + c z;  y = (1 - b1) z + b1 x,
    with lr_t the optimizer's own linear warmup (no decay), and c = lr_max^2 / sum of lr_max^2
    over steps so far (the authors' default weighting, weight_lr_power 2).
    """
    b1, b2 = hp.beta1, hp.beta2
    warmup = round(hp.warmup_fraction * STEP_HINT)
    lr_t = lr * ((step + 1) / warmup if step < warmup else 1.0)
    state["lr_max"] = max(state.get("lr_max", 0.0), lr_t)
    state["weight_sum"] = state.get("weight_sum", 0.0) + state["lr_max"] ** 2
    c = state["lr_max"] ** 2 / state["weight_sum"]
    for i, (p, g) in enumerate(zip(params, grads)):
        slot = state.setdefault(i, {"x": p.copy(), "z": p.copy(), "v": np.zeros(p.shape)})
        slot["v"] = b2 * slot["v"] + (1 - b2) * g * g
        slot["z"] = slot["z"] - lr_t * (g / (np.sqrt(slot["v"] / (1 - b2 ** (step + 1))) + hp.eps)
                                        + hp.weight_decay * p)
        slot["x"] = (1 - c) * slot["x"] + c * slot["z"]
        p[:] = (1 - b1) * slot["z"] + b1 * slot["x"]


REFERENCES: dict[str, tuple[Reference, dict[str, Any]]] = {
    "sgd": (sgd, {"weight_decay": 1e-3}),
    "momentum": (momentum, {"weight_decay": 1e-3}),
    "adagrad": (adagrad, {"weight_decay": 1e-3, "initial_accumulator_value": 0.1}),
    "rmsprop": (rmsprop, {"weight_decay": 1e-3}),
    "adadelta": (adadelta, {"weight_decay": 1e-3}),
    "adam": (adam, {"weight_decay": 1e-2}),
    "adamw": (adamw, {}),
    "nadamw": (nadamw, {}),
    "lion": (lion, {}),
    "shampoo": (shampoo, {"precondition_every": 3, "max_preconditioner_dim": 6}),
    "soap": (soap, {"precondition_frequency": 4}),
}
VARIANTS = [  # settings the defaults leave off, so they are checked too
    ("momentum", {"nesterov": False, "weight_decay": 1e-3}),
    ("rmsprop", {"momentum": 0.9, "centered": True}),
]
def regression_mlp() -> nn.Module:
    model = mlp()
    model.regression = True  # see loss_of
    return model


class SometimesUsed(nn.Module):
    """5 -> 5 -> 5 with a side layer used only at some steps (a branch, an expert, a head trained later):
    at the others its parameters have no gradient (``grad`` None). The step is told by its batch (the
    driver's :func:`batches`), so that the submission's model and the reference's twin agree."""

    def __init__(self, used_at: Iterable[int]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first, self.side, self.out = nn.Linear(5, 5), nn.Linear(5, 5), nn.Linear(5, CLASSES)
        self.double()
        steps = set(used_at)
        self.used = {float(x[0, 0]) for step, (x, _) in enumerate(batches()) if step in steps}
        self.regression = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.first(x))
        if float(x[0, 0]) in self.used:
            hidden = hidden + torch.tanh(self.side(hidden))
        return self.out(hidden)


MODELS = {
    "shampoo": lambda: mlp(hidden=7),  # 7 > max_preconditioner_dim 6: one-sided matrices too
    "soap": regression_mlp,
}


#: SOAP's QR runs in float32 in both codes (LAPACK's sgeqrf here, torch's there): float32 rounding
TOLERANCES = {"soap": 1e-6}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_trajectory_matches_the_reference(name: str) -> None:
    reference, overrides = REFERENCES[name]
    model = MODELS.get(name, mlp)()
    assert trajectory_gap(name, reference, model, **overrides) < TOLERANCES.get(name, TOLERANCE)


@pytest.mark.parametrize("used_at", [range(3, STEPS), [*range(0, 3), *range(6, STEPS)]],
                         ids=["first-gradient-at-step-3", "no-gradient-at-steps-3-to-5"])
def test_soap_counts_each_parameter_s_own_steps(used_at: range | list[int]) -> None:
    """The authors' SOAP counts steps per parameter: a parameter's first gradient only gathers its
    statistics, whenever it comes, and its bias correction and basis refreshes count its own updates.
    pytorch_optimizer's port counts per parameter group: a layer whose gradient came late was
    updated with the gradient its eigenbasis was just taken from (0.0044 where the authors' code had
    not moved), and one whose gradient paused got the others' bias correction afterwards."""
    model = SometimesUsed(used_at)
    gap = trajectory_gap("soap", soap, model, precondition_frequency=4)
    assert gap < TOLERANCES["soap"]


@pytest.mark.parametrize(("name", "overrides"), VARIANTS)
def test_trajectory_matches_the_reference_in_other_settings(name: str, overrides: dict[str, Any]) -> None:
    assert trajectory_gap(name, REFERENCES[name][0], **overrides) < TOLERANCE


def test_schedule_free_trajectory_and_evaluation_point_match_the_paper() -> None:
    """Training iterates y match; the point evaluated after ``prepare_for_eval`` is the paper's x.
    (No decay: the method has none, and the submission refuses one.)"""
    model, data = mlp(), batches()
    twin = copy.deepcopy(model)
    submission, hp = build("schedule_free_adamw", model, data, weight_decay=1e-2, decay="constant")
    params = [p.detach().numpy().copy() for p in twin.parameters()]
    state: dict[str, Any] = {}
    worst = 0.0
    for step, batch in enumerate(data):
        submission.update(batch, loss_of(model))
        schedule_free_adamw(params, gradients(twin, params, batch), step, state, hp, hp.lr)
        worst = max(worst, disagreement(model, params))
    assert worst < TOLERANCE
    submission.prepare_for_eval()
    assert disagreement(model, [state[i]["x"] for i in range(len(params))]) < TOLERANCE


# ------------------------------------------------------------------------------------ Muon
class ConvNet(nn.Module):
    """A conv filter, a hidden matrix and an output layer: each of Muon's routes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 4, 3)
        self.hidden = nn.Linear(4 * 4 * 4, 6)
        self.out = nn.Linear(6, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(torch.tanh(self.conv(x)).flatten(1))))


def newton_schulz(u: np.ndarray, steps: int) -> np.ndarray:
    """Keller Jordan's quintic iteration X <- a X + (b A + c A^2) X, A = X X^T, from X = U / ||U||_F."""
    a, b, c = 3.4445, -4.7750, 2.0315
    tall = u.shape[0] > u.shape[1]
    x = u.T if tall else u
    x = x / max(np.linalg.norm(x), 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def muon(params, grads, step, state, hp, lr):
    """Muon on the conv filter (as an out x in*kh*kw matrix) and the hidden matrix, AdamW on the rest:
    B <- mu B + (1 - mu) G; U = (1 - mu) G + mu B (Nesterov); W <- W (1 - lr wd) - lr 0.2 sqrt(max(r, c)) NS(U).

    Deliberate difference from Keller Jordan's Muon: the step is scaled by 0.2 sqrt(max(rows, cols))
    (Moonshot's rule, so lr is on AdamW's scale) instead of sqrt(max(1, rows / cols)).
    """
    adamw_lr = lr * hp.adamw_lr / hp.lr
    for i, (p, g) in enumerate(zip(params, grads)):
        if i not in (0, 2):  # ConvNet: conv.weight and hidden.weight are Muon's, the rest AdamW's
            p *= 1 - adamw_lr * hp.weight_decay
            p -= adamw_lr * adam_direction(state, i, g, step, hp.beta1, hp.beta2, 1e-8)
            continue
        (b,) = moments(state, i, p.shape, "b")
        b[:] = hp.momentum * b + (1 - hp.momentum) * g
        u = ((1 - hp.momentum) * g + hp.momentum * b if hp.nesterov else b).reshape(p.shape[0], -1)
        p *= 1 - lr * hp.weight_decay
        p -= lr * 0.2 * math.sqrt(max(u.shape)) * newton_schulz(u, hp.ns_steps).reshape(p.shape)


def test_muon_trajectory_matches_the_formula_on_filters_and_matrices() -> None:
    """On the CPU the iteration runs in the parameters' dtype (float64 here): float64 rounding."""
    gap = trajectory_gap("muon", muon, ConvNet().double(), inputs=(2, 6, 6), weight_decay=1e-2, adamw_lr=3e-3)
    assert gap < TOLERANCE


def test_muon_matches_torch_muon_on_matrices_and_reshaped_filters() -> None:
    """Reference: torch.optim.Muon (match_rms_adamw) on the hidden matrix and on the conv filter as the
    (out, in*kh*kw) matrix Keller Jordan's reference uses, torch.optim.AdamW on the rest; the iteration
    in bfloat16 as torch's (and ours on CUDA)."""
    if not hasattr(torch.optim, "Muon"):
        pytest.skip("torch.optim.Muon needs torch >= 2.9")
    model = ConvNet().double()
    twin = copy.deepcopy(model)
    data = batches(inputs=(2, 6, 6))
    submission, hp = build("muon", model, data, weight_decay=1e-2, adamw_lr=3e-3)
    assert [id(p) for p in submission.routing()["muon"]] == [id(model.conv.weight), id(model.hidden.weight)]
    submission.optimizers[0].param_groups[0]["ns_bf16"] = True
    filters = nn.Parameter(twin.conv.weight.detach().reshape(4, -1).clone())
    muon = torch.optim.Muon([filters, twin.hidden.weight], lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov,
                            ns_steps=hp.ns_steps, weight_decay=hp.weight_decay, adjust_lr_fn="match_rms_adamw")
    rest = [twin.conv.bias, twin.hidden.bias, twin.out.weight, twin.out.bias]
    adamw_ = torch.optim.AdamW(rest, lr=hp.adamw_lr, betas=(hp.beta1, hp.beta2), weight_decay=hp.weight_decay)
    worst = 0.0
    for step, batch in enumerate(data):
        submission.update(batch, loss_of(model))
        with torch.no_grad():
            twin.conv.weight.copy_(filters.view_as(twin.conv.weight))
        twin.zero_grad(set_to_none=True)
        loss_of(twin)(batch).backward()
        filters.grad = twin.conv.weight.grad.reshape(4, -1)
        for optimizer, base in ((muon, hp.lr), (adamw_, hp.adamw_lr)):
            optimizer.param_groups[0]["lr"] = base * scheduled(step, hp)
            optimizer.step()
        with torch.no_grad():
            twin.conv.weight.copy_(filters.view_as(twin.conv.weight))
        worst = max(worst, max((a - b).abs().max().item() for a, b in zip(model.parameters(), twin.parameters())))
    assert worst < 1e-12  # the same bfloat16 iteration on the same numbers: bit for bit


@pytest.mark.parametrize("max_dim", [6, 64], ids=["one-sided", "two-sided"])
def test_shampoo_preconditions_conv_filters_as_matrices(max_dim: int) -> None:
    """The conv filter (4, 2, 3, 3) is the matrix (4, 18): with max_preconditioner_dim 6 its left side
    is preconditioned and its right keeps the identity (the hidden (6, 64) likewise), with 64 both
    sides are; the output layer (5, 6) on both sides either way. Revision 1 gave the filter Adam's
    step: 0.015 apart within 25 steps."""
    gap = trajectory_gap("shampoo", shampoo, ConvNet().double(), inputs=(2, 6, 6), precondition_every=3,
                         max_preconditioner_dim=max_dim)
    assert gap < TOLERANCE


# ------------------------------------------------------------------------------------ the registry
def test_every_submission_has_a_reference() -> None:
    """A submission that joins this repository's zoo brings its reference test (a user's own need not)."""
    covered = set(REFERENCES) | {"schedule_free_adamw", "muon"}  # (those two have tests of their own)
    assert set(submission_names()) <= covered, sorted(set(submission_names()) - covered)
