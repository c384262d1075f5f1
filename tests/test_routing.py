"""Parameter roles by what parameters do (output layer, embeddings), Muon's routing, the routing report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.config.compose import compose_config, to_plain
from harness.config.registry import submission_class, workload_class
from harness.core.runner import config_hash, trial_identity
from harness.core.trial import run_trial
from harness.errors import UserError
from harness.routing import embedding_names, output_layer_names, routing_report
from harness.tools.info import run_info
from harness.workload import WorkloadInfo
from scoring.leaderboard import build
from scoring.records import load_trials
from scoring.report import markdown_table
from submissions.muon import ROUTING, Rule, route

CPU = torch.device("cpu")


class HeadFirst(nn.Module):
    """Registers its head before its body and calls its embedding ``tok``: names and order mislead."""

    def __init__(self, tie: bool = False) -> None:
        super().__init__()
        self.head = nn.Linear(8, 10)
        self.tok = nn.Embedding(10, 8)
        self.body = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        if tie:
            self.head.weight = self.tok.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(torch.relu(self.body(self.tok(idx)))))


def loss_of(model: nn.Module) -> torch.Tensor:
    idx = torch.arange(6) % 10
    return F.cross_entropy(model(idx), idx)


def info_for(model: nn.Module) -> WorkloadInfo:
    return WorkloadInfo(name="toy", size="cpu", step_hint=100, max_runtime_s=10.0, num_train_examples=100,
                        batch_size=6, min_batch_size=1, max_batch_size=100, device=CPU,
                        output_parameters=output_layer_names(loss_of(model), model))


def test_output_layer_is_what_feeds_the_loss_not_the_last_registered_linear() -> None:
    model = HeadFirst()
    assert output_layer_names(loss_of(model), model) == ("head.weight", "head.bias")
    assert embedding_names(model) == ("tok.weight",)


def test_a_tied_head_is_the_output_layer_and_is_claimed_once() -> None:
    model = HeadFirst(tie=True)
    # One tensor, named once (under the name registered first): the head's weight is the token table.
    assert output_layer_names(loss_of(model), model) == ("head.weight", "head.bias")
    assert embedding_names(model) == ("head.weight",)
    groups = route(model, info_for(model))
    assert [id(p) for p in groups["muon"]] == [id(model.body.weight)]
    assert sorted(map(id, groups["adamw"])) == sorted(id(p) for p in model.parameters() if p is not model.body.weight)


def test_a_conv_layer_feeding_the_loss_is_the_output_layer() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    loss = F.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.arange(4))
    assert output_layer_names(loss, model) == ("2.weight", "2.bias")


def test_muon_routes_by_role_whatever_the_names_and_order() -> None:
    model = HeadFirst()
    groups = route(model, info_for(model))
    assert [id(p) for p in groups["muon"]] == [id(model.body.weight)]  # not the head, not the embedding
    assert len(groups["adamw"]) == len(list(model.parameters())) - 1


def test_muon_refuses_unclaimed_and_doubly_claimed_parameters() -> None:
    model = HeadFirst()
    without_vectors = tuple(r for r in ROUTING if r.ndim != (0, 1))
    with pytest.raises(UserError, match=r"body.bias \(8,\) \(hidden\): claimed by no rule"):
        route(model, info_for(model), without_vectors)
    overlapping = (*ROUTING, Rule("muon", ndim=(2,)))
    with pytest.raises(UserError, match=r"body.weight \(8, 8\) \(hidden\): claimed by 2 rules"):
        route(model, info_for(model), overlapping)


@pytest.mark.parametrize(("workload", "expected"), [
    ("fashion_mnist", lambda m: [n for n, _ in m.named_parameters()][-2:]),  # the MLP's last Linear
    ("cifar10", lambda m: [n for n, _ in m.named_parameters()][-1:]),  # the classifier (no bias)
    ("gpt", lambda m: ["token_embedding.weight"]),  # the head is tied to the token table
    ("rosenbrock", lambda m: []),  # a point, no matrix
])
def test_every_workload_names_its_output_layer(workload: str, expected) -> None:
    cfg = compose_config("trial", [f"workload={workload}", "workload.size=smoke"])
    instance = workload_class(workload)(cfg.workload, CPU)
    instance.load()
    model = instance.build_model(0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    assert list(instance.public_info(16, model).output_parameters) == expected(model)
    # Finding it trained nothing, moved no BatchNorm statistic and drew nothing from the global RNG.
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def smoke_submission(workload: str, submission: str, **overrides):
    cfg = compose_config("trial", [f"workload={workload}", "workload.size=smoke", f"submission={submission}"])
    instance = workload_class(workload)(cfg.workload, CPU)
    instance.load()
    cls = submission_class(submission)
    hparams = cls.Hparams.from_mapping({**to_plain(cfg.submission.hparams), "batch_size": 32, **overrides},
                                       submission)
    model = instance.build_model(0)
    return instance, model, cls(model, hparams, instance.public_info(32, model))


def test_muon_owns_the_conv_filters_of_cifar10_and_no_longer_equals_adamw() -> None:
    workload, model, muon = smoke_submission("cifar10", "muon", lr=2e-3, adamw_lr=2e-3, weight_decay=0.01)
    filters = [p for p in model.parameters() if p.ndim == 4]
    assert filters and sorted(map(id, muon.routing()["muon"])) == sorted(map(id, filters))
    report = routing_report(model, muon)
    assert report["special_parameters"] == sum(p.numel() for p in filters)
    _, twin, adamw = smoke_submission("cifar10", "adamw", lr=2e-3, weight_decay=0.01, eps=1e-8)
    batches = list(zip(range(3), workload.train_batches(32, 0)))
    for _, batch in batches:
        muon.update(batch, lambda b: workload.loss(model, b))
        adamw.update(batch, lambda b: workload.loss(twin, b))
    gap = max((a - b).abs().max().item() for a, b in zip(model.parameters(), twin.parameters()))
    assert gap > 1e-4  # before: conv filters went to AdamW and the trajectories were identical


def test_info_prints_the_routing(capsys: pytest.CaptureFixture[str]) -> None:
    info = run_info(["workload=cifar10", "workload.size=smoke", "submission=muon", "steps=2", "warmup=1"])
    err = capsys.readouterr().err
    assert "routing       muon (the method's own step): 5 tensors, 18,624 parameters" in err
    assert info["routing"]["components"]["adamw"]["names"][-1] == "6.weight"


def test_the_leaderboard_marks_a_method_that_was_a_no_op(results: Path) -> None:
    """On Rosenbrock (one parameter vector) Muon has no matrix: it is AdamW there, and says so."""
    for name in ("muon", "adamw"):
        cfg = compose_config("trial", ["workload=rosenbrock", "workload.size=smoke", f"submission={name}",
                                       f"results={results}", "progress=false", "max_steps=20"])
        summary = run_trial(cfg)
        assert summary["status"] in ("reached", "not_reached", "diverged")
    trials = load_trials(results)
    row = trials.set_index("submission").loc["muon"]
    assert row["special_component"] == "muon" and row["special_parameters"] == 0
    assert pd.isna(trials.set_index("submission").loc["adamw"]["special_parameters"])
    board = build(trials, samples=0)
    text = markdown_table(board)
    assert "muon (no-op on rosenbrock-smoke)" in text
    assert "muon: its muon step updated no parameter of rosenbrock-smoke" in text


def test_a_changed_algorithm_gets_new_records_and_is_never_scored_with_the_old(results: Path) -> None:
    """nadamw was torch's NAdam (revision 1): its records must not be reused or mixed with AlgoPerf's NAdamW."""
    cfg = compose_config("trial", ["workload=rosenbrock", "workload.size=smoke", "submission=nadamw",
                                   f"results={results}", "progress=false", "max_steps=10"])
    summary = run_trial(cfg)
    manifest = json.loads((Path(summary["record_dir"]) / "manifest.json").read_text())
    assert manifest["submission_revision"] == submission_class("nadamw").revision == 2
    workload = workload_class("rosenbrock")(cfg.workload, CPU)
    hparams = submission_class("nadamw").Hparams.from_mapping(to_plain(cfg.submission.hparams))
    old, new = (config_hash(trial_identity(cfg, workload, hparams, CPU, revision)) for revision in (1, 2))
    assert old != new and new == manifest["config_hash"]
    assert "submission_revision" not in trial_identity(cfg, workload, hparams, CPU, 1)  # old hashes hold
    trials = load_trials(results)
    stale = trials.assign(submission_revision=1, record_dir="elsewhere")
    with pytest.raises(UserError, match="nadamw on rosenbrock-smoke come from different revisions"):
        build(pd.concat([trials, stale]), samples=0)
