"""Variants (AlgoPerf's held-out sense): own model settings and own targets, kept apart in records."""

from __future__ import annotations

import pytest
import torch

from harness.config.compose import compose_config
from harness.config.names import workload_names
from harness.config.registry import workload_class
from harness.core.trial import run_trial
from harness.errors import UserError

CPU = torch.device("cpu")


def build(*overrides: str):
    cfg = compose_config("trial", ["workload.size=smoke", *overrides])
    return workload_class(cfg.workload.name)(cfg.workload, CPU)


@pytest.mark.parametrize("name", workload_names())
def test_every_family_has_a_variant_with_its_own_targets(name: str) -> None:
    cfg = compose_config("trial", [f"workload={name}"]).workload
    assert cfg.variants, f"{name} declares no variant"
    for variant, spec in cfg.variants.items():
        assert spec.model or spec.model_options, f"{name}.{variant} changes nothing"
        for size in cfg.sizes:
            assert "target" in spec.sizes.get(size, {}), f"{name}.{variant} has no target for {size}"
            workload = workload_class(name)(
                compose_config("trial", [f"workload={name}", f"workload.size={size}",
                                         f"workload.variant={variant}"]).workload, CPU)
            assert workload.label == f"{name}.{variant}" and workload.target == spec.sizes[size]["target"]


def test_variant_changes_the_model_and_the_target() -> None:
    base, gelu, cnn = build(), build("workload.variant=gelu"), build("workload.variant=cnn")
    assert base.label == "fashion_mnist" and gelu.label == "fashion_mnist.gelu"
    assert any(isinstance(m, torch.nn.GELU) for m in gelu.build_model(0).modules())
    assert not any(isinstance(m, torch.nn.GELU) for m in base.build_model(0).modules())
    assert any(isinstance(m, torch.nn.Conv2d) for m in cnn.build_model(0).modules())
    cpu_cnn = build("workload.size=cpu", "workload.variant=cnn")
    assert cpu_cnn.spec.step_hint == 2000 and cpu_cnn.spec.eval_every_steps == 200


def test_unknown_variant_lists_the_valid_ones() -> None:
    with pytest.raises(UserError, match="Valid variants: base, cnn, gelu"):
        build("workload.variant=swish")


def test_variant_without_a_target_is_refused() -> None:
    with pytest.raises(UserError, match="needs its own target"):
        build("workload.variant=gelu", "~workload.variants.gelu.sizes.smoke")


def test_variant_records_are_kept_apart(smoke_cfg) -> None:
    base = run_trial(smoke_cfg())
    gelu = run_trial(smoke_cfg("workload.variant=gelu"))
    assert "fashion_mnist-smoke" in base["record_dir"] and "fashion_mnist.gelu-smoke" in gelu["record_dir"]
    assert gelu["workload"] == "fashion_mnist.gelu"


def test_a_changed_target_is_a_different_trial(smoke_cfg) -> None:
    first = run_trial(smoke_cfg())
    other = run_trial(smoke_cfg("workload.sizes.smoke.target=0.5"))
    assert other["record_dir"] != first["record_dir"] and other.get("cached") is None
