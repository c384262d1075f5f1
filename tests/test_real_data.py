"""Integration on the real Fashion-MNIST files: the documented target is reachable in budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.compose import compose_config
from harness.core.runner import run_trial


@pytest.mark.realdata
@pytest.mark.slow
def test_adamw_defaults_reach_the_cpu_target(real_data: Path, results: Path) -> None:
    cfg = compose_config("trial", [f"data_dir={real_data}", f"results={results}", "device=cpu", "progress=false"])
    summary = run_trial(cfg)
    assert summary["status"] == "reached", summary
    assert summary["time_to_target_s"] <= cfg.workload.sizes.cpu.max_runtime_s
    assert summary["best_validation"] >= cfg.workload.sizes.cpu.target
