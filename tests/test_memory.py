"""Memory accounting: optimizer state per parameter in fp32, and peak memory, in every record."""

from __future__ import annotations

import pytest

import harness.core.runner as runner
from harness.core.memory import tensor_bytes


@pytest.mark.parametrize(("submission", "overrides", "expected"), [
    ("sgd", [], 0.0),
    ("momentum", ["submission.hparams.nesterov=false"], 4.0),
    ("momentum", [], 4.0),
    ("adam", [], 8.0),
    ("adamw", [], 8.0),
])
def test_optimizer_state_bytes_per_parameter(smoke_cfg, submission: str, overrides: list[str],
                                             expected: float) -> None:
    summary = runner.run_trial(smoke_cfg(f"submission={submission}", "max_steps=5", *overrides))
    memory = summary["memory"]
    assert memory["parameters"] == 79_510
    # Adam's per-tensor step counters add a few bytes: 8 bytes per parameter to within 0.1%.
    assert memory["optimizer_state_bytes_per_parameter"] == pytest.approx(expected, abs=1e-3 * max(expected, 1))
    assert memory["peak_memory_kind"] == "cpu_rss_growth" and memory["peak_memory_bytes"] >= 0


def test_tensor_bytes_walks_nested_state() -> None:
    import torch

    state = {"a": torch.zeros(10), "b": [torch.zeros(2, 3, dtype=torch.float64), None], "c": {"d": torch.zeros(4,
             dtype=torch.int8)}, "e": 3.0}
    assert tensor_bytes(state) == 10 * 4 + 6 * 8 + 4
