"""``optbench score``'s entry: the settings read and checked, the reading of the records started,
then the scoring code imported and run (:func:`scoring.report.score`).

Why a module of its own: on a large results folder, reading the records is most of the command's
time, and the scoring code's imports (pandas, matplotlib: 0.6-0.8 s of one CPU) do not need them.
This module imports neither, so the forked processes that read the records
(:class:`scoring.record_walk.Reading`) start before those imports and read while this process
makes them; ``tests/test_record_walk.py`` checks that it stays so.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from harness.errors import UserError
from scoring.record_walk import Reading

MIN_BOOTSTRAP = 40  # 1 / 40 = 2.5%: the fewest resamples whose 2.5th percentile is not their minimum


def check_tau_max(tau_max: float) -> None:
    """Refuse a ``tau_max`` that is not a finite number above 1 (the profile's range is [1, tau_max]:
    inf or nan make every score nan or 0; at most 1 leaves no range)."""
    if not (math.isfinite(tau_max) and tau_max > 1):
        raise UserError(f"tau_max={tau_max} must be a finite number greater than 1 (the performance profile runs over "
                        f"[1, tau_max]; the default is 4).")


def run_score(overrides: list[str], log: Any = None) -> dict[str, Any]:
    """``optbench score [key=value ...]``: the leaderboard of a results folder (see scoring/report.py)."""
    from harness.config.compose import compose_config

    cfg = compose_config("score", overrides)
    if cfg.format not in ("optbench", "algoperf"):
        raise UserError(f"format={cfg.format} is not valid. Valid formats: optbench, algoperf.")
    check_tau_max(cfg.tau_max)
    if not (cfg.bootstrap == 0 or cfg.bootstrap >= MIN_BOOTSTRAP):
        raise UserError(f"bootstrap={cfg.bootstrap}: give 0 (no intervals) or at least {MIN_BOOTSTRAP} resamples: the "
                        f"95% interval's ends are the 2.5th and 97.5th percentiles, which fewer resamples cannot "
                        f"tell from their extremes (default 1000).")
    if not 0 <= cfg.seed < 2**32:
        raise UserError(f"seed={cfg.seed}: the bootstrap's seed must be in [0, 2^32) (default 0).")
    if cfg.format == "algoperf":
        from harness.log import stderr_logger
        from scoring.algoperf import score_algoperf

        return score_algoperf(cfg, log or stderr_logger("score"))
    if cfg.compat:
        raise UserError("compat=true reproduces AlgoPerf's official scoring and needs format=algoperf targets=FILE.")
    started = time.perf_counter()
    reading = start_reading(cfg)
    from scoring.report import score  # pandas, matplotlib, the scoring code: imported while the records are read

    return score(cfg, reading, started, log)


def start_reading(cfg: Any) -> Reading:
    """The reading of ``cfg.results``' records, started (or a clear error when it is no folder)."""
    root = Path(cfg.results)
    if not root.is_dir():
        raise UserError(f"results={root} is not a folder. Point it at the records of `optbench trial/tune/suite` "
                        f"(default: ./results).")
    return Reading(str(root), index=bool(cfg.index))
