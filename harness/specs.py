"""What a workload declares: its sizes (target, budget, step hint, ...), its held-out variants and
its model, as typed dataclasses. Part of the Workload contract (harness/workload.py reads them);
the trial config (harness/config/schema.py) holds one, and ``configs/workload/*.yaml`` extend
them, so a misspelt key or a value of the wrong type fails when the config is composed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class SizeSpec:
    """What a workload declares for one size: target, budget, step hint, eval cadence."""

    target: float = MISSING  # validation target of the workload's metric
    test_target: float | None = None  # test-split target (reported, not used to stop)
    max_runtime_s: float = MISSING  # budget in seconds of submission time
    step_hint: int = MISSING  # steps a well-tuned baseline needs; schedules are sized by it
    eval_every_steps: int | None = None  # evaluate every N steps (tiny workloads) ...
    eval_period_s: float | None = None  # ... or every this many seconds of submission time
    min_batch_size: int = 1
    max_batch_size: int = 65536
    device_class: str = "cpu"  # the hardware the budget was measured on
    precision: str = "fp32"  # fp32 | bf16: autocast of forward, loss and evaluation (harness/core/precision.py)
    options: dict[str, Any] = field(default_factory=dict)  # workload-specific (split sizes, ...)
    calibration: dict[str, Any] = field(default_factory=dict)  # where the numbers came from


@dataclass
class VariantSpec:
    """A held-out variant (AlgoPerf's sense): another architecture or preprocessing, own targets."""

    description: str = MISSING
    model: str | None = None  # another model of the family, if the variant changes it
    model_options: dict[str, Any] = field(default_factory=dict)  # merged over the base options
    sizes: dict[str, dict[str, Any]] = field(default_factory=dict)  # per size: SizeSpec fields to override


@dataclass
class WorkloadConfig:
    """A workload family with its sizes; ``size`` picks one, ``variant`` an optional variant."""

    name: str = MISSING
    size: str = "cpu"
    model: str = MISSING
    model_options: dict[str, Any] = field(default_factory=dict)  # e.g. activation, width
    sizes: dict[str, SizeSpec] = field(default_factory=dict)
    variant: str = "base"  # "base" or a key of ``variants``
    variants: dict[str, VariantSpec] = field(default_factory=dict)
    source: str | None = None  # an external workload's module or file (harness/config/plugins.py); None: built in
    config_from: str | None = None  # an external workload's config file
