"""The leaderboard optimizers: Shampoo's maths, Muon's routing, schedule-free evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from harness.errors import UserError
from harness.workload import WorkloadInfo
from submissions._shampoo import GraftedShampoo, inverse_root, preconditioned
from submissions.muon import ROUTING, Rule, route
from submissions.schedule_free_adamw import ScheduleFreeAdamW, ScheduleFreeHparams


def test_shampoo_update_matches_explicit_matrix_roots() -> None:
    rng = np.random.default_rng(0)
    for m, n in ((5, 3), (8, 8), (4, 9)):
        grads = [rng.normal(size=(m, n)) for _ in range(6)]
        left = sum(g @ g.T for g in grads) / 6
        right = sum(g.T @ g for g in grads) / 6
        g = rng.normal(size=(m, n))
        eps = 1e-4
        expected = (scipy.linalg.fractional_matrix_power(left + eps * np.eye(m), -0.25) @ g
                    @ scipy.linalg.fractional_matrix_power(right + eps * np.eye(n), -0.25)).real
        t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
        got = preconditioned(t(g), inverse_root(t(left), 4, eps), inverse_root(t(right), 4, eps))
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 4), (5, 5), (3, 7)])
def test_shampoo_without_accumulation_is_the_orthogonalised_gradient(shape: tuple[int, int]) -> None:
    """beta = 0, no grafting, eps -> 0: one step moves the weights by U V^T of the gradient."""
    torch.manual_seed(0)
    weight = nn.Parameter(torch.randn(shape, dtype=torch.float64))
    before = weight.detach().clone()
    grad = torch.randn(shape, dtype=torch.float64)
    weight.grad = grad.clone()
    optimizer = GraftedShampoo([weight], lr=1.0, betas=(0.0, 0.999), shampoo_beta=0.0, matrix_eps=1e-12,
                               graft=False)
    optimizer.step()
    u, _, vt = torch.linalg.svd(grad, full_matrices=False)
    torch.testing.assert_close(before - weight.detach(), u @ vt, rtol=1e-6, atol=1e-6)


def test_grafting_takes_adams_step_size() -> None:
    torch.manual_seed(1)
    weight = nn.Parameter(torch.randn(5, 4, dtype=torch.float64))
    before = weight.detach().clone()
    weight.grad = torch.randn(5, 4, dtype=torch.float64)
    GraftedShampoo([weight], lr=0.1, eps=1e-8).step()
    # Adam's first step is the sign of the gradient (up to eps): norm sqrt(numel).
    assert (before - weight.detach()).norm().item() == pytest.approx(0.1 * 20**0.5, rel=1e-6)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.hidden = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 3)


def test_muon_routes_hidden_matrices_to_muon_and_the_rest_to_adamw() -> None:
    model = Tiny()
    groups = route(model)
    assert [p is model.hidden.weight for p in groups["muon"]] == [True]
    assert len(groups["adamw"]) == len(list(model.parameters())) - 1


def test_muon_refuses_unclaimed_and_doubly_claimed_parameters() -> None:
    without_vectors = tuple(r for r in ROUTING if r.ndim != (0, 1))
    with pytest.raises(UserError, match=r"hidden.bias \(8,\): claimed by no rule"):
        route(Tiny(), without_vectors)
    overlapping = (*ROUTING, Rule("muon", ndim=(2,)))
    with pytest.raises(UserError, match=r"hidden.weight \(8, 8\): claimed by 2 rules"):
        route(Tiny(), overlapping)


def schedule_free(model: nn.Module) -> ScheduleFreeAdamW:
    hparams = ScheduleFreeHparams(lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, batch_size=4,
                                  warmup_fraction=0.0, decay="constant", decay_fraction=1.0, final_lr_fraction=0.0)
    info = WorkloadInfo(name="toy", size="cpu", step_hint=100, max_runtime_s=10.0, num_train_examples=100,
                        batch_size=4, min_batch_size=1, max_batch_size=100, device=torch.device("cpu"))
    return ScheduleFreeAdamW(model, hparams, info)


def test_schedule_free_evaluates_the_average_and_resumes_training_exactly() -> None:
    torch.manual_seed(0)
    data = [(torch.randn(4, 3), torch.randn(4, 2)) for _ in range(12)]
    loss = lambda model: (lambda batch: ((model(batch[0]) - batch[1]) ** 2).mean())  # noqa: E731
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    sa, sb = schedule_free(a), schedule_free(b)
    for batch in data[:6]:
        sa.update(batch, loss(a))
        sb.update(batch, loss(b))
    y = a.weight.detach().clone()
    z = sa.optimizer.state[a.weight]["z"].clone()
    sa.prepare_for_eval()
    x = a.weight.detach()
    assert not torch.allclose(x, y)  # evaluation sees other weights than training ...
    torch.testing.assert_close(x, (y - 0.1 * z) / 0.9)  # ... the average x, from y = (1 - b1) z + b1 x
    for batch in data[6:]:
        sa.update(batch, loss(a))
        sb.update(batch, loss(b))
    torch.testing.assert_close(a.weight, b.weight)  # the evaluation changed nothing in training
