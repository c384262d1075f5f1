"""The Rosenbrock workload and `optbench trajectories`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.cli import main
from workloads.rosenbrock import rosenbrock


def test_rosenbrock_function() -> None:
    assert rosenbrock(torch.tensor([1.0, 1.0, 1.0])).item() == 0.0
    assert rosenbrock(torch.tensor([-1.5, 2.0])).item() == pytest.approx(100 * 0.25**2 + 2.5**2)


def test_gradient_noise_only_in_the_stochastic_size(smoke_cfg) -> None:
    from harness.config.registry import workload_class

    grads = {}
    for size in ("smoke", "cpu"):
        cfg = smoke_cfg("workload=rosenbrock", f"workload.size={size}")
        workload = workload_class("rosenbrock")(cfg.workload, torch.device("cpu"))
        workload.load()
        model = workload.build_model(0)
        batch = next(workload.train_batches(4, 0))
        workload.loss(model, batch).backward()
        exact = model.x.detach().clone().requires_grad_(True)
        rosenbrock(exact).backward()
        grads[size] = (model.x.grad - exact.grad).abs().max().item()
    assert grads["smoke"] == 0.0 and grads["cpu"] > 0.01


def test_trajectories_png_with_six_optimizers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "paths.png"
    names = ["sgd", "momentum", "adagrad", "rmsprop", "adam", "lion"]
    assert main(["trajectories", f"submissions=[{','.join(names)}]", "steps=60", f"out={out}"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(result["optimizers"]) == sorted(names)
    assert all(v["steps"] == 60 for v in result["optimizers"].values())
    assert out.stat().st_size > 30_000
    finals = {tuple(v["final"]) for v in result["optimizers"].values()}
    assert len(finals) == 6  # six different paths


def test_trajectories_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["trajectories", "submissions=[nope]"]) == 2
    assert "Unknown submission 'nope'" in capsys.readouterr().err
    # was: "Unknown setting ... or submission.hparams.<name>=...", a setting this command does not have
    assert main(["trajectories", "submissions=[sgd]", "hparams.sgd.lrr=0.1"]) == 2
    assert "+hparams.sgd.lrr=" in capsys.readouterr().err


def test_trajectories_of_a_submission_in_a_file_of_the_user_s(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Only built-in names were accepted ("Unknown submission(s) ...", listing the built-ins)."""
    (tmp_path / "slow_sgd.py").write_text("from submissions.sgd import SGD\n\n\nclass SlowSGD(SGD):\n"
                                          "    name = 'slow_sgd'\n")
    out = tmp_path / "paths.png"
    assert main(["trajectories", f"submissions=[sgd,{tmp_path / 'slow_sgd.py'}:SlowSGD]", "steps=20", f"out={out}",
                 "+hparams.slow_sgd={lr: 1.0e-4, decay: constant, warmup_fraction: 0.0, weight_decay: 0.0}"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["optimizers"]
    assert sorted(result) == ["sgd", "slow_sgd"] and result["slow_sgd"]["steps"] == 20
    assert result["slow_sgd"]["final"] != result["sgd"]["final"]  # its own learning rate
