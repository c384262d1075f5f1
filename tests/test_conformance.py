"""Conformance suite: every registered workload and submission must pass these.

Parametrized over the registries, so a new workload or submission is tested without a new test.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from harness.config.compose import compose_config
from harness.config.names import submission_names, workload_names
from harness.config.registry import submission_class, workload_class
from harness.core.trial import run_trial
from harness.submission import Submission
from harness.tools import check
from harness.workload import Workload, WorkloadInfo

CPU = torch.device("cpu")


def smoke_workload(name: str) -> Workload:
    cfg = compose_config("trial", [f"workload={name}", "workload.size=smoke"])
    workload = workload_class(name)(cfg.workload, CPU)
    workload.load()
    return workload


@pytest.fixture(scope="module", params=workload_names())
def workload(request: pytest.FixtureRequest) -> Workload:
    return smoke_workload(request.param)


# ------------------------------------------------------------------------ workloads
def test_workload_declares_its_contract(workload: Workload) -> None:
    assert isinstance(workload.metric, str) and isinstance(workload.higher_is_better, bool)
    assert workload.config.model in workload.models
    assert workload.num_train_examples > 0
    for size, spec in workload.config.sizes.items():
        assert math.isfinite(spec.target), size
        assert spec.min_batch_size <= spec.max_batch_size


def test_model_is_deterministic_in_its_seed(workload: Workload) -> None:
    a, b, c = workload.build_model(0), workload.build_model(0), workload.build_model(1)
    pa, pb, pc = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_batch_order_is_owned_by_the_workload_seed(workload: Workload) -> None:
    def first(seed: int, n: int = 3) -> list:
        return list(itertools.islice(workload.train_batches(16, seed), n))

    same, again, other = first(0), first(0), first(1)
    for x, y in zip(same, again):
        assert all(torch.equal(u, v) for u, v in zip(x, y))
    assert not torch.equal(same[0][0], other[0][0])
    assert same[0][0].shape[0] == 16


def test_loss_and_evaluation(workload: Workload) -> None:
    model = workload.build_model(0)
    loss = workload.loss(model, next(workload.train_batches(16, 0)))
    assert loss.ndim == 0 and loss.requires_grad and torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        for split in ("validation", "test"):
            metrics = workload.evaluate(model, split)
            assert {workload.metric, "loss"} <= set(metrics)
            assert all(math.isfinite(v) for v in metrics.values())


def test_public_info_hides_target_and_data() -> None:
    fields = {f.name for f in dataclasses.fields(WorkloadInfo)}
    assert not fields & {"target", "test_target", "validation", "test", "clock"}


# ------------------------------------------------------------------------ submissions
@pytest.mark.parametrize("name", submission_names())
def test_submission_defaults_and_search_space(name: str) -> None:
    cfg = compose_config("trial", [f"submission={name}"])
    assert issubclass(submission_class(name), Submission) and cfg.submission.name == name
    assert cfg.submission.search_space, f"{name} declares no search space"
    check.defaults_build(cfg)
    check.search_space_valid(cfg)  # every corner of the space (and its centre) is a valid setting


@pytest.mark.parametrize("name", submission_names())
def test_submission_updates_parameters_and_resumes_exactly(name: str) -> None:
    cfg = compose_config("trial", [f"submission={name}"])
    workload = check.smoke_workload(workload_names()[0])
    check.updates_parameters(cfg, workload)
    check.resumes_exactly(cfg, workload)


@pytest.mark.parametrize("workload_name", workload_names())
@pytest.mark.parametrize("name", submission_names())
def test_smoke_trial_completes(workload_name: str, name: str, smoke_cfg) -> None:
    """Every submission trains every workload's smoke size through the runner: 20 steps (two
    evaluations where the size evaluates every 10), or its first 3 s of submission time."""
    summary = run_trial(smoke_cfg(f"workload={workload_name}", f"submission={name}", "max_runtime_s=3",
                                  "max_steps=20"))
    if workload_name == "rosenbrock" and summary["status"] == "diverged":
        return  # a legitimate outcome there: rates tuned for networks blow up in Rosenbrock's valley
    assert summary["status"] in ("reached", "not_reached"), summary.get("error")
    assert summary["best_validation"] is not None


# ------------------------------------------------------------------------ cpu sizes, real data
@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("name", workload_names())
def test_cpu_size_on_real_data_with_every_submission(name: str, real_data_root) -> None:
    """The cpu size loads the real data, and every submission takes steps on it and evaluates."""
    cfg = compose_config("trial", [f"workload={name}", "workload.size=cpu", f"data_dir={real_data_root}"])
    workload = workload_class(name)(cfg.workload, CPU, cfg.data_dir)
    workload.load()
    assert workload.num_train_examples > 0
    for submission in submission_names():
        sub_cfg = compose_config("trial", [f"submission={submission}"]).submission
        cls = submission_class(submission)
        hparams = cls.Hparams.from_mapping(sub_cfg.hparams, submission)
        workload.check_batch_size(hparams.batch_size)
        model = workload.build_model(0)
        instance = cls(model, hparams, workload.public_info(hparams.batch_size, model))
        batches = workload.train_batches(hparams.batch_size, 0)
        for _ in range(2):
            loss = instance.update(next(batches), lambda b, m=model: workload.loss(m, b))
            assert torch.isfinite(loss), (name, submission)
    model.eval()
    with torch.no_grad():
        metrics = workload.evaluate(model, "validation")
    assert math.isfinite(metrics[workload.metric])
