"""A trial, as ``optbench trial``, sweeps and tools ask for one: in this process, or as the N ranks
of a data-parallel trial (``nproc=N``), which this module starts (:mod:`harness.core.ranks`) and
each of which runs :func:`harness.core.runner.run_here` or follows rank 0's
(:mod:`harness.core.distributed`). It sits above both, so that neither imports the other's caller.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from harness.config.compose import compose_config, validate_trial_config
from harness.core.ranks import launch, started_as_a_rank
from harness.core.runner import check_before_ranks, run_here
from harness.core.team import current_team, processes


def run_trial(cfg: DictConfig) -> dict[str, Any]:
    """Run (or, when already finished, look up) the trial described by ``cfg``; return its summary."""
    validate_trial_config(cfg)
    if current_team().size == 1 and (processes(cfg) > 1 or started_as_a_rank()):  # data parallel: N ranks
        check_before_ranks(cfg, as_a_rank=started_as_a_rank())
        return launch(cfg)
    return run_here(cfg)


def run_trial_command(overrides: list[str]) -> dict[str, Any]:
    """``optbench trial``: the trial the overrides describe; its summary without the traceback of
    a failure (that is in its record)."""
    summary = run_trial(compose_config("trial", overrides))
    return {k: v for k, v in summary.items() if k != "error"}
