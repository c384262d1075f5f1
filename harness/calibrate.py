"""Setting a workload's target and budget by measurement, following AlgoPerf's rule.

AlgoPerf's rule: the validation target is what a well-tuned baseline *reliably* reaches, and
the budget leaves a margin over the time that baseline needed. Our procedure:

1. search: each reference baseline runs every point of a hyperparameter grid (learning rate x
   schedule length = step hint) for the whole schedule, with an unreachable target so that the
   full validation curve is recorded;
2. confirm: the best point of each baseline (highest best validation metric) is rerun on
   several fresh seeds;
3. target: for the baseline whose confirming seeds do best (median), the hardest value on the
   target grid (e.g. multiples of 0.005) that at least ``reliability`` (80%) of its seeds reach
   -- "reliably reaches" made precise. (A plain median is reached by only half the seeds.)
4. budget: ``margin`` x the largest time-to-target among the reference's seeds that reached
   it, rounded up to ``budget_round_s``; the step hint is the best point's schedule length.

All runs go through :func:`harness.runner.run_trial`, so they are timed and recorded exactly
like benchmark trials. The raw figures are returned (and written by the caller next to the
workload) together with the hardware, versions and date.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.config import compose_config
from harness.environment import describe_device, package_versions
from harness.records import read_jsonl
from harness.runner import resolve_device, run_trial


def run_point(
    workload: str, size: str, submission: str, hparams: dict[str, Any], seed: int, step_hint: int,
    extra: Sequence[str], results: str,
) -> dict[str, Any]:
    """One full-schedule run with an unreachable target; returns its curve and best value."""
    overrides = [
        f"workload={workload}", f"workload.size={size}", f"submission={submission}", f"seed={seed}",
        f"workload.sizes.{size}.step_hint={step_hint}", f"max_steps={step_hint}",
        f"max_runtime_s={1e9}", f"results={results}", "progress=false", *extra,
    ]
    overrides += [f"submission.hparams.{k}={v}" for k, v in hparams.items()]
    cfg = compose_config("trial", overrides)
    cfg.workload.sizes[size].target = math.inf if _higher(workload) else -math.inf
    summary = run_trial(cfg)
    evals = [r for r in read_jsonl(Path(summary["record_dir"]) / "evals.jsonl") if r.get("event") == "eval"]
    metric = f"validation/{summary['metric']}"
    curve = [(r["step"], r["submission_time_s"], r["metrics"][metric]) for r in evals]
    return {
        "submission": submission, "hparams": hparams, "seed": seed, "step_hint": step_hint,
        "status": summary["status"], "best": summary["best_validation"], "curve": curve,
    }


def _higher(workload: str) -> bool:
    from harness.registry import workload_class

    return workload_class(workload).higher_is_better


def time_to(curve: list[tuple[int, float, float]], target: float, higher: bool) -> tuple[int, float] | None:
    """(steps, seconds) of the first evaluation meeting ``target``, or None."""
    for step, seconds, value in curve:
        if (value >= target) if higher else (value <= target):
            return step, seconds
    return None


def calibrate(
    workload: str,
    size: str,
    grids: dict[str, list[dict[str, Any]]],
    step_hints: Sequence[int],
    search_seed: int = 0,
    confirm_seeds: Sequence[int] = (1, 2, 3, 4, 5),
    target_grid: float = 0.005,
    reliability: float = 0.8,
    margin: float = 2.0,
    budget_round_s: float = 5.0,
    extra: Sequence[str] = (),
    results: str = "results/calibration",
    log=print,
) -> dict[str, Any]:
    """Run the procedure above; return the chosen numbers and every raw figure."""
    higher = _higher(workload)
    started = time.time()
    search = []
    for submission, grid in grids.items():
        for hparams in grid:
            for step_hint in step_hints:
                run = run_point(workload, size, submission, hparams, search_seed, step_hint, extra, results)
                search.append(run)
                log(f"search  {submission:<10} {hparams} step_hint={step_hint}: best {run['best']}")
    best_points = {}
    for submission in grids:
        runs = [r for r in search if r["submission"] == submission and r["best"] is not None]
        best_points[submission] = (max if higher else min)(runs, key=lambda r: r["best"])
    confirm = []
    for submission, point in best_points.items():
        for seed in confirm_seeds:
            run = run_point(workload, size, submission, point["hparams"], seed, point["step_hint"], extra, results)
            confirm.append(run)
            log(f"confirm {submission:<10} seed {seed}: best {run['best']}")

    choice = choose_target_and_budget(confirm, higher, reliability, target_grid, margin, budget_round_s)
    reference = choice["reference"]
    return {
        "workload": workload,
        "size": size,
        **choice,
        "step_hint": best_points[reference]["step_hint"],
        "reference_hparams": best_points[reference]["hparams"],
        "search": [{k: v for k, v in r.items() if k != "curve"} for r in search],
        "confirm": confirm,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "duration_s": round(time.time() - started, 1),
        "device": describe_device(resolve_device("auto")),
        "versions": package_versions(),
    }


def choose_target_and_budget(
    confirm: list[dict[str, Any]], higher: bool, reliability: float, target_grid: float,
    margin: float, budget_round_s: float,
) -> dict[str, Any]:
    """Steps 3 and 4 of the procedure, from the confirming runs alone (a pure function)."""
    bests: dict[str, list[float]] = {}
    for run in confirm:
        bests.setdefault(run["submission"], []).append(run["best"])
    medians = {s: statistics.median(v) for s, v in bests.items()}
    reference = (max if higher else min)(medians, key=medians.__getitem__)
    ordered = sorted(bests[reference], reverse=higher)  # best first
    needed = math.ceil(reliability * len(ordered) - 1e-9)  # seeds that must reach the target
    raw = ordered[needed - 1]
    units = raw / target_grid
    target = round((math.floor(units + 1e-9) if higher else math.ceil(units - 1e-9)) * target_grid, 10)
    reached: dict[str, list[dict[str, Any]]] = {}
    for run in confirm:
        steps, seconds = time_to(run["curve"], target, higher) or (None, None)
        reached.setdefault(run["submission"], []).append({"seed": run["seed"], "steps": steps, "seconds": seconds})
    times = [r["seconds"] for r in reached[reference] if r["seconds"] is not None]
    budget = math.ceil(margin * max(times) / budget_round_s) * budget_round_s if times else None
    return {
        "target": target,
        "max_runtime_s": budget,
        "reference": reference,
        "median_best": medians,
        "time_to_target": reached,
        "rule": {"reliability": reliability, "target_grid": target_grid, "margin": margin,
                 "budget_round_s": budget_round_s},
    }
