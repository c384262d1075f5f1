"""Typed config schemas of every command (and of a trial), registered in Hydra's ConfigStore.

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

from harness.specs import SizeSpec, VariantSpec, WorkloadConfig  # noqa: F401 (schemas of the workload group)

DEVICES = ("auto", "cpu", "cuda")
ISOLATION = ("inprocess", "process")


@dataclass
class SubmissionConfig:
    """A submission: its default hyperparameters and its AlgoPerf-format search space."""

    name: str = MISSING
    hparams: dict[str, Any] = field(default_factory=dict)
    search_space: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # an external submission's module or file (harness/config/plugins.py); None: built in
    config_from: str | None = None  # an external submission's config: its YAML, or its class's own defaults


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
    progress_interval_s: float = 5.0  # at most one progress line per this many seconds of submission time
    divergence_check_every: int | None = None  # steps between loss checks; default 1 (cpu), 25 (cuda)
    threads: int | None = None  # torch CPU threads; default torch's. 1 is steadier on a busy machine
    checkpoint_every_s: float | None = 30.0  # wall seconds between checkpoints (0: every eval; null: never)
    record_dir: str | None = None  # the record folder; default <results>/<workload>-<size>/<submission>/seed..
    rerun: bool = False  # run a finished trial again (optbench trial): its old record is kept beside it
    study: int | None = None  # set by a tuning sweep: the study and trial this run fills
    trial: int | None = None
    ruleset: str = "single"  # single | external | self
    prune: bool = True  # stop a sweep trial once it cannot change any score or rank (harness/core/pruning.py)
    prune_peers: str | None = None  # set by `optbench suite`: the competing sweeps of this workload (JSON)
    compile: str = "auto"  # true | false | auto (on for CUDA trials of gpu sizes): torch.compile before the clock
    charge_compile: bool = False  # compile in the first steps, under the clock, instead (AlgoPerf's rule)
    nproc: int = 1  # data parallel: processes of one trial (DDP; batch_size is the global batch)
    isolation: str = "inprocess"  # inprocess | process: the submission in a trainer process (docs/decisions.md)
    sandbox: str = "auto"  # auto | true | false: a trainer process confined by Landlock (harness/core/sandbox.py)


@dataclass
class SweepSettings:
    """What shapes a sweep: with the trial config, its identity (the hash that names its folder)."""

    ruleset: str = "external"  # external (quasirandom search) | self (defaults, longer budget)
    studies: int = 3
    trials: int = 5  # per study (external only)
    search_seed: int = 0  # seeds the Halton scrambling and, with the slot, every trial's seed
    self_tuning_factor: float = 3.0  # budget multiplier of the self-tuning ruleset


@dataclass
class TuneConfig(SweepSettings):
    """``optbench tune``'s own keys; ``hydra.*`` overrides go to the launcher, the rest to each trial."""

    launcher: str = "inline"  # inline | parallel (joblib pool) | local (submitit_local) | slurm (job array)
    launch_dir: str | None = None  # plans, job folders, submitit logs; default <results>/launches
    poll_s: float = 5.0  # seconds between progress reports while trials run


@dataclass
class SuiteConfig(TuneConfig):
    """``optbench suite``: a preset (``suite=cpu|smoke|gpu``, configs/suite/) of workloads and
    tuning settings; every other override goes to each trial."""

    name: str = "cpu"  # the preset's name (set by configs/suite/<name>.yaml)
    workloads: list[str] = field(default_factory=lambda: ["fashion_mnist"])
    submissions: list[str] = field(default_factory=list)  # empty: every registered submission
    size: str = "cpu"  # workload size of every trial
    trial_settings: list[str] = field(default_factory=list)  # extra trial overrides of the preset
    out: str | None = None  # where the table and plots go; default <results>/suite-<name>
    baselines: list[str] = field(default_factory=lambda: ["adamw", "momentum"])  # run first: they set caps early
    tau_max: float = 4.0  # of the leaderboard, and of the pruning that keeps it exact


@dataclass
class CalibrateConfig:
    """``optbench calibrate``'s own keys; other overrides select the workload (size, variant, data)."""

    baselines: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"adamw": {}, "momentum": {"nesterov": True}}
    )  # reference submissions, each with hyperparameters held fixed during the search
    points: int = 8  # per baseline: its defaults + (points - 1) scrambled Halton points
    # schedule lengths to search; empty: the last calibration's, else the step hint
    step_hints: list[int] = field(default_factory=list)
    search_seed: int = 0  # seed of the Halton scrambling and of the search runs
    confirm_seeds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    reliability: float = 0.8  # fraction of confirming seeds that must reach the target
    target_grid: float = 0.005  # the target is a multiple of this
    margin: float = 2.0  # budget = margin x the slowest confirming seed's time-to-target
    budget_round_s: float = 5.0
    max_run_s: float | None = None  # cap per run; default 4 x the current budget
    hint_share: float | None = 0.75  # step hint = steps the reference runs in this share of the budget; null: its own
    results: str | None = None  # default results/calibration/<workload>-<size>
    out: str | None = None  # folder of the raw-figures JSON; default workloads/calibration (write=false: results)
    write: bool = True  # write the numbers into configs/workload/<family>.yaml (an external workload: its own YAML)


@dataclass
class InfoConfig:
    """``optbench info``'s own keys; other overrides select workload and reference submission."""

    steps: int = 30  # timed steps
    warmup: int = 5  # untimed steps first


@dataclass
class StatusConfig:
    """``optbench status``'s keys."""

    results: str = "results"
    scheduler: bool = True  # ask squeue/sacct about SLURM jobs when they are installed
    strict: bool = False  # exit 1 unless every trial has ended with a readable record that score can rank


@dataclass
class TrajectoriesConfig:
    """``optbench trajectories``'s keys."""

    submissions: list[str] = field(default_factory=list)  # empty: every registered submission
    steps: int = 500
    start: list[float] = field(default_factory=lambda: [-1.5, 2.0])
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)  # per submission overrides
    out: str = "trajectories.png"


@dataclass
class ScoreConfig:
    """``optbench score``'s keys."""

    results: str = "results"
    out: str | None = None  # default <results>/leaderboard
    format: str = "optbench"  # optbench | algoperf
    targets: str | None = None  # AlgoPerf workload_targets.json (format=algoperf)
    compat: bool = False  # AlgoPerf v0.5's official rules instead of ours (format=algoperf)
    ruleset: str | None = None  # score only records of this ruleset (external, self, single)
    tau_max: float = 4.0
    bootstrap: int = 1000  # resamples over studies; 0 turns the uncertainty off
    seed: int = 0
    strict: bool = False  # refuse (exit 1, nothing written) when a trial is missing, unfinished or damaged
    index: bool = True  # keep and use each sweep's .score-index.json (scoring/record_index.py); false: records only
    mix_precisions: bool = False  # rank records of one workload trained in different precisions (fp32, bf16) together


@dataclass
class CheckConfig:
    """``optbench check``'s own keys; the other overrides choose the submission and its settings."""

    workloads: list[str] | None = None  # smoke trials' workloads (names, module:Class, .py); default: every built-in
    trial_seconds: float = 3.0  # each smoke trial's budget


def register_schemas() -> None:
    """Store the schemas so that ``configs/*.yaml`` can extend them by name."""
    store = ConfigStore.instance()
    store.store(name="trial_schema", node=TrialConfig)
    store.store(name="suite_schema", node=SuiteConfig)
    store.store(name="tune_schema", node=TuneConfig)
    store.store(name="calibrate_schema", node=CalibrateConfig)
    store.store(name="info_schema", node=InfoConfig)
    store.store(name="status_schema", node=StatusConfig)
    store.store(name="trajectories_schema", node=TrajectoriesConfig)
    store.store(name="score_schema", node=ScoreConfig)
    store.store(name="check_schema", node=CheckConfig)
    store.store(group="workload", name="workload_schema", node=WorkloadConfig)
    store.store(group="submission", name="submission_schema", node=SubmissionConfig)
