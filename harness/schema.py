"""Typed config schemas, registered in Hydra's ConfigStore.

The YAML files under ``configs/`` extend these dataclasses, so a misspelt key or a value of the
wrong type fails at composition time. Values whose meaning depends on a plugin (a submission's
hyperparameters, a workload's options) are plain mappings here and are validated by the plugin
itself (see :meth:`harness.submission.TrainingHparams.from_mapping`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

SIZES = ("smoke", "cpu", "gpu")
DEVICES = ("auto", "cpu", "cuda")


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
    options: dict[str, Any] = field(default_factory=dict)  # workload-specific (split sizes, ...)
    calibration: dict[str, Any] = field(default_factory=dict)  # where the numbers came from


@dataclass
class WorkloadConfig:
    """A workload family with its sizes; ``size`` picks one."""

    name: str = MISSING
    size: str = "cpu"
    model: str = MISSING
    sizes: dict[str, SizeSpec] = field(default_factory=dict)


@dataclass
class SubmissionConfig:
    """A submission: its default hyperparameters and its AlgoPerf-format search space."""

    name: str = MISSING
    hparams: dict[str, Any] = field(default_factory=dict)
    search_space: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrialConfig:
    """One trial: a workload, a submission, a seed and where to write records."""

    workload: WorkloadConfig = MISSING
    submission: SubmissionConfig = MISSING
    seed: int = 0
    data_dir: str | None = None  # where the workload looks for its data first
    results: str = "results"  # root folder of the records
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    max_runtime_s: float | None = None  # override the workload's budget (benchmarks, debugging)
    max_steps: int | None = None  # stop after this many steps (benchmarks, debugging)
    progress: bool = True  # live progress lines on stderr
    progress_interval_s: float = 5.0  # at most one progress line per this many wall seconds
    divergence_check_every: int | None = None  # steps between loss checks; default 1 (cpu), 25 (cuda)


@dataclass
class SuiteConfig:
    """The suite's own keys; every other override on its command line goes to each trial."""

    workloads: list[str] = field(default_factory=lambda: ["fashion_mnist"])
    submissions: list[str] = field(default_factory=list)  # empty: every registered submission
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    out: str | None = None  # where the table and plot go; default <results>/suite


def register_schemas() -> None:
    """Store the schemas so that ``configs/*.yaml`` can extend them by name."""
    store = ConfigStore.instance()
    store.store(name="trial_schema", node=TrialConfig)
    store.store(name="suite_schema", node=SuiteConfig)
    store.store(group="workload", name="workload_schema", node=WorkloadConfig)
    store.store(group="submission", name="submission_schema", node=SubmissionConfig)
