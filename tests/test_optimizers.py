"""The leaderboard optimizers: Shampoo's maths, NAdamW's first step, schedule-free evaluation with BatchNorm."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from harness.config.compose import compose_config, to_plain
from harness.config.registry import workload_class
from harness.errors import UserError
from harness.workload import WorkloadInfo
from submissions._hparams import AdamHparams
from submissions._shampoo import GraftedShampoo, inverse_root, preconditioned
from submissions.nadamw import NAdamW, NAdamWOptimizer
from submissions.schedule_free_adamw import BN_BATCHES, ScheduleFreeAdamW, ScheduleFreeHparams


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


def toy_info() -> WorkloadInfo:
    return WorkloadInfo(name="toy", size="cpu", step_hint=100, max_runtime_s=10.0, num_train_examples=100,
                        batch_size=4, min_batch_size=1, max_batch_size=100, device=torch.device("cpu"),
                        output_parameters=())


def schedule_free(model: nn.Module) -> ScheduleFreeAdamW:
    hparams = ScheduleFreeHparams(lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, batch_size=4,
                                  warmup_fraction=0.0, decay="constant", decay_fraction=1.0, final_lr_fraction=0.0)
    return ScheduleFreeAdamW(model, hparams, toy_info())


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


@pytest.mark.parametrize("decay", ["cosine", "linear"])
def test_schedule_free_refuses_a_decay_schedule_it_would_not_apply(decay: str) -> None:
    """The method replaces the decay schedule: a decay set for it was never applied, while the trial's
    record said it was (a run with decay=cosine ended with the default run's loss, to the last bit)."""
    defaults = to_plain(compose_config("trial", ["submission=schedule_free_adamw"]).submission.hparams)
    with pytest.raises(UserError, match=rf"decay='{decay}'.*no decay schedule"):
        ScheduleFreeHparams.from_mapping({**defaults, "decay": decay}, "schedule_free_adamw")
    assert ScheduleFreeHparams.from_mapping(defaults, "schedule_free_adamw").decay == "constant"


# ------------------------------------------------------------------------------------ NAdamW
def first_step(optimizer_class, **options) -> float:
    """How far one step on a unit gradient moves a parameter at 0 (lr 1, no decay)."""
    weight = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    weight.grad = torch.ones(1, dtype=torch.float64)
    optimizer_class([weight], lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **options).step()
    return -weight.item()


def test_nadamw_first_step_is_algoperfs_not_torchs_nadam() -> None:
    """AlgoPerf: (b1 m + (1 - b1) g) / (1 - b1) / (sqrt(v_hat) + eps) = 0.19 / 0.1 = 1.9 (to 1e-6);
    torch.optim.NAdam's momentum schedule (mu_1 = 0.45...) moves 1.056: a different algorithm."""
    assert first_step(NAdamWOptimizer) == pytest.approx(1.9, abs=1e-6)
    assert first_step(torch.optim.NAdam, decoupled_weight_decay=True) == pytest.approx(1.056, abs=1e-3)


def test_nadamw_submission_takes_the_same_first_step() -> None:
    model = nn.Linear(1, 1, bias=False).double()
    nn.init.zeros_(model.weight)
    hparams = AdamHparams(lr=1.0, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, batch_size=1,
                          warmup_fraction=0.0, decay="constant", decay_fraction=1.0, final_lr_fraction=0.0)
    submission = NAdamW(model, hparams, toy_info())
    submission.update(torch.ones(1, 1, dtype=torch.float64), lambda x: model(x).sum())  # gradient 1
    assert model.weight.item() == pytest.approx(-1.9, abs=1e-6)


# ------------------------------------------------------------------------------------ schedule-free + BatchNorm
def bn_statistics(model: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
            for t in (m.running_mean, m.running_var)]


def direct_statistics(workload, model: nn.Module, batches: list) -> list[torch.Tensor]:
    """Each BatchNorm's input mean and unbiased variance per channel, averaged over ``batches``, at the
    model's current weights (train mode: every layer normalises by its batch, as in training)."""
    probe = copy.deepcopy(model).train()
    norms = [m for m in probe.modules() if isinstance(m, nn.BatchNorm2d)]
    sums = [[torch.zeros(m.num_features), torch.zeros(m.num_features)] for m in norms]

    def hook(index: int):
        def record(module: nn.Module, inputs: tuple[torch.Tensor]) -> None:
            x = inputs[0].detach()
            sums[index][0] += x.mean(dim=(0, 2, 3))
            sums[index][1] += x.transpose(0, 1).flatten(1).var(dim=1, unbiased=True)
        return record

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(norms)]
    with torch.no_grad():
        for batch in batches:
            workload.loss(probe, batch)
    for h in handles:
        h.remove()
    return [t / len(batches) for pair in sums for t in pair]


def cifar10_schedule_free():
    cfg = compose_config("trial", ["workload=cifar10", "workload.size=smoke", "submission=schedule_free_adamw"])
    workload = workload_class("cifar10")(cfg.workload, torch.device("cpu"))
    workload.load()
    hparams = ScheduleFreeHparams.from_mapping({**to_plain(cfg.submission.hparams), "batch_size": 16})

    def make() -> tuple[nn.Module, ScheduleFreeAdamW]:
        model = workload.build_model(0)
        return model, ScheduleFreeAdamW(model, hparams, workload.public_info(16, model))

    return workload, make, list(itertools.islice(workload.train_batches(16, 0), 40))


def train(workload, runs: list[tuple[nn.Module, ScheduleFreeAdamW]], batches: list) -> None:
    """Each (model, submission) of ``runs`` takes one step on each batch."""
    for batch in batches:
        for model, submission in runs:
            submission.update(batch, lambda b, m=model: workload.loss(m, b))


def test_schedule_free_recomputes_batchnorm_statistics_at_x_and_restores_them_for_training() -> None:
    workload, make, batches = cifar10_schedule_free()
    (model, submission), (twin, uninterrupted) = make(), make()
    train(workload, [(model, submission), (twin, uninterrupted)], batches[:25])
    at_y = bn_statistics(model)
    submission.prepare_for_eval()
    at_x = bn_statistics(model)
    expected = direct_statistics(workload, model, batches[25 - BN_BATCHES:25])  # the last 20 of 25 batches
    assert all(not torch.allclose(a, b, atol=1e-4) for a, b in zip(at_x, at_y))  # they were stale
    for got, want in zip(at_x, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # training resumes at y with y's statistics, as if nothing happened
    train(workload, [(model, submission), (twin, uninterrupted)], batches[25:])
    # (the package's y -> x -> y round trip is exact up to float32 rounding, ~1e-8 here)
    for a, b in zip(model.state_dict().values(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_schedule_free_uses_only_batches_since_the_last_evaluation_and_resumes_exactly() -> None:
    """Checkpoints happen at evaluations: a submission rebuilt from its state there continues the same."""
    workload, make, batches = cifar10_schedule_free()
    (model, submission), (twin, uninterrupted) = make(), make()
    train(workload, [(model, submission), (twin, uninterrupted)], batches[:10])
    submission.prepare_for_eval()
    uninterrupted.prepare_for_eval()
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(submission.state_dict())
    resumed_model, resumed = make()
    resumed_model.load_state_dict(saved_model)
    resumed.load_state_dict(saved_state)
    train(workload, [(resumed_model, resumed), (twin, uninterrupted)], batches[10:16])
    resumed.prepare_for_eval()
    uninterrupted.prepare_for_eval()
    expected = direct_statistics(workload, twin, batches[10:16])  # 6 batches since the last evaluation
    for got, want in zip(bn_statistics(twin), expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for a, b in zip(resumed_model.state_dict().values(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
