"""Setting a workload's target and budget by measurement, following AlgoPerf's rule.

AlgoPerf's rule: the validation target is what a well-tuned baseline *reliably* reaches, and
the budget leaves a margin over the time that baseline needed. The procedure:

1. search: each reference baseline (AdamW and Nesterov momentum by default) runs a set of
   hyperparameter points -- its defaults plus points of a seeded scrambled Halton sequence over
   its own search space (``optbench calibrate``), or an explicit grid -- each for its whole
   schedule (``max_steps = step_hint``) with an unreachable target, so the full validation
   curve is recorded; the schedule length (step hint) may be one more searched dimension;
2. confirm: the best point of each baseline (best validation metric) is rerun on fresh seeds;
3. target: for the baseline whose confirming seeds do best (median), the hardest value on the
   target grid (e.g. multiples of 0.005) that at least ``reliability`` (80%) of its seeds reach
   -- "reliably reaches" made precise. A plain median (``reliability=0.5``) is reached by only
   about half of the seeds;
4. budget: ``margin`` x the largest time-to-target among the reference's seeds that reached
   it, rounded up to ``budget_round_s``;
5. step hint: the steps the reference runs in ``hint_share`` (3/4) of the budget at its measured
   step rate, to two significant digits -- AlgoPerf's relation (its budget is 4/3 of the
   target-setting run, whose schedule is the step hint). The best point's own schedule ended at
   about half the budget (margin 2), so a schedule that decays over the step hint stopped learning
   half-way while a constant one trained to the end: measured on the mini suite, adamw, momentum,
   nadamw and lion reached no target with it (same points and seeds), 7 of 12 pairs with twice
   the schedule. The reference is run again at that hint on the confirming seeds; when fewer than
   ``reliability`` of them reach the target within the budget, the best point's schedule is kept
   (said in the log and the raw figures).

Every run goes through :func:`harness.core.trial.run_trial`, so it is timed and recorded exactly like
a benchmark trial (and an interrupted calibration resumes: finished runs are not rerun).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from harness.config.compose import compose_config
from harness.core.environment import describe_device, package_versions
from harness.core.records import read_json, read_jsonl
from harness.core.runner import resolve_device
from harness.core.trial import run_trial
from harness.errors import UserError
from harness.identity import meets, utc_timestamp

Curve = list[tuple[int, float, float]]  # (step, submission seconds, validation metric)


def run_point(
    base: Sequence[str], submission: str, hparams: dict[str, Any], seed: int, step_hint: int,
    max_run_s: float | None,
) -> dict[str, Any]:
    """One full-schedule run with an unreachable target; returns its curve and best value."""
    overrides = [*base, f"submission={submission}", f"seed={seed}", f"max_steps={step_hint}", "progress=false"]
    overrides += [f"submission.hparams.{k}={v}" for k, v in hparams.items()]
    cfg = compose_config("trial", overrides)
    _set_size_field(cfg, "step_hint", step_hint)
    higher = _higher(cfg)
    _set_size_field(cfg, "target", math.inf if higher else -math.inf)
    cfg.max_runtime_s = max_run_s if max_run_s else 1e9
    summary = run_trial(cfg)
    evals = [r for r in read_jsonl(Path(summary["record_dir"]) / "evals.jsonl") if r.get("event") == "eval"]
    metric = f"validation/{summary['metric']}"
    curve = [(r["step"], r["submission_time_s"], r["metrics"][metric]) for r in evals]
    data = (read_json(Path(summary["record_dir"]) / "manifest.json") or {}).get("data_sha256")
    return {
        "submission": submission, "hparams": hparams, "seed": seed, "step_hint": step_hint,
        "status": summary["status"], "best": summary["best_validation"], "curve": curve, "data_sha256": data,
    }


def _set_size_field(cfg: DictConfig, key: str, value: Any) -> None:
    """Set a size field where it takes effect: on the variant when one is selected."""
    workload = cfg.workload
    with open_dict(cfg):  # a variant's size entry may lack the key: allow adding it
        if workload.variant != "base":
            workload.variants[workload.variant].sizes.setdefault(workload.size, {})[key] = value
        else:
            workload.sizes[workload.size][key] = value


def _higher(cfg: DictConfig) -> bool:
    from harness.config.registry import workload_class

    return workload_class(cfg.workload.name, cfg.workload.get("source")).higher_is_better


def time_to(curve: Curve, target: float, higher: bool) -> tuple[int, float] | None:
    """(steps, seconds) of the first evaluation meeting ``target``, or None."""
    for step, seconds, value in curve:
        if meets(value, target, higher):
            return step, seconds
    return None


def calibrate(
    base: Sequence[str],
    points: dict[str, list[tuple[dict[str, Any], int]]],
    confirm_seeds: Sequence[int] = (1, 2, 3, 4, 5),
    search_seed: int = 0,
    target_grid: float = 0.005,
    reliability: float = 0.8,
    margin: float = 2.0,
    budget_round_s: float = 5.0,
    max_run_s: float | None = None,
    log: Callable[[str], None] = print,
    hint_share: float | None = None,
) -> dict[str, Any]:
    """Run the procedure above and return the chosen numbers with every raw figure.

    ``base`` holds the trial overrides naming the workload (``workload=``, ``workload.size=``,
    ``workload.variant=``, ``data_dir=``, ``results=`` ...); ``points`` maps each baseline
    submission to its (hyperparameters, step hint) points. ``hint_share``: step 5's share of the
    budget (``optbench calibrate``: 0.75, CalibrateConfig); None keeps the best point's schedule.
    """
    started = time.time()
    higher = _higher(compose_config("trial", list(base)))
    search = []
    total = sum(len(p) for p in points.values())
    for submission, candidates in points.items():
        for hparams, step_hint in candidates:
            run = run_point(base, submission, hparams, search_seed, step_hint, max_run_s)
            search.append(run)
            log(f"search {len(search)}/{total}  {submission:<10} {_short(hparams)} step_hint={step_hint}: "
                f"best {run['best']}")
    best_points = {}
    for submission in points:
        runs = [r for r in search if r["submission"] == submission and r["best"] is not None]
        if runs:
            best_points[submission] = (max if higher else min)(runs, key=lambda r: r["best"])
    if not best_points:
        raise RuntimeError("no search run produced a validation result (all diverged or failed)")
    confirm = []
    for submission, point in best_points.items():
        for seed in confirm_seeds:
            run = run_point(base, submission, point["hparams"], seed, point["step_hint"], max_run_s)
            confirm.append(run)
            log(f"confirm {submission:<10} seed {seed}: best {run['best']}")
    confirm = [r for r in confirm if r["best"] is not None]
    choice = choose_target_and_budget(confirm, higher, reliability, target_grid, margin, budget_round_s)
    reference = choice["reference"]
    refuse_a_metric_training_worsens(confirm, reference, higher)
    choice["rule"]["hint_share"] = hint_share
    hint = settle_step_hint(base, best_points[reference], confirm, choice, confirm_seeds, higher, reliability,
                            hint_share, max_run_s, log)
    digests = {r["data_sha256"] for r in confirm}
    return {
        **choice,
        "data_sha256": digests.pop() if len(digests) == 1 else None,  # the examples the target is for
        "step_hint": hint["step_hint"],
        "step_hint_rule": hint,
        "reference_hparams": best_points[reference]["hparams"],
        "search_seed": search_seed,
        "search": [{k: v for k, v in r.items() if k != "curve"} for r in search],
        "confirm": confirm,
        "date": utc_timestamp(date_only=True),
        "duration_s": round(time.time() - started, 1),
        "device": describe_device(resolve_device(_device(base))),
        "versions": package_versions(),
    }


def step_rate(runs: list[dict[str, Any]]) -> float | None:
    """Steps per submission second: the median over ``runs`` of their last evaluation's (None: no timed run)."""
    rates = [curve[-1][0] / curve[-1][1] for curve in (run["curve"] for run in runs) if curve and curve[-1][1] > 0]
    return statistics.median(rates) if rates else None


def budget_step_hint(rate: float | None, budget: float | None, share: float) -> int | None:
    """The steps a run at ``rate`` takes in ``share`` of ``budget``, to two significant digits
    (step 5); None without a rate or a budget."""
    if budget is None or rate is None:
        return None
    return max(1, int(float(f"{share * budget * rate:.2g}")))


def settle_step_hint(
    base: Sequence[str], point: dict[str, Any], confirm: list[dict[str, Any]], choice: dict[str, Any],
    confirm_seeds: Sequence[int], higher: bool, reliability: float, share: float | None,
    max_run_s: float | None, log: Callable[[str], None],
) -> dict[str, Any]:
    """Step 5: the step hint, with the evidence for it. The reference's best point is run again at
    the hint :func:`budget_step_hint` derives from its confirming runs' rate, on the confirming
    seeds; the hint stands when at least ``reliability`` of them reach the target within the
    budget, else the best point's own schedule is kept. ``share`` None keeps it without a check."""
    reference, schedule = choice["reference"], point["step_hint"]
    rate = step_rate([run for run in confirm if run["submission"] == reference])
    derived = budget_step_hint(rate, choice["max_runtime_s"], share) if share else None
    rule = {"share": share, "steps_per_s": rate, "schedule_step_hint": schedule, "derived": derived, "check": [],
            "step_hint": schedule}
    if derived is None or derived == schedule:
        return rule
    for seed in confirm_seeds:
        run = run_point(base, reference, point["hparams"], seed, derived, max_run_s)
        steps, seconds = time_to(run["curve"], choice["target"], higher) or (None, None)
        within = seconds is not None and seconds <= choice["max_runtime_s"]
        rule["check"].append({"seed": seed, "steps": steps, "seconds": seconds, "within_budget": within})
        log(f"step hint {derived} {reference} seed {seed}: "
            + (f"target at step {steps}, {seconds:.3g} s" if seconds is not None else "target not reached"))
    needed = max(1, math.ceil(reliability * len(rule["check"]) - 1e-9))
    if sum(check["within_budget"] for check in rule["check"]) >= needed:
        rule["step_hint"] = derived
    else:
        log(f"step hint {derived}: fewer than {needed} of {len(rule['check'])} seeds reach the target within the "
            f"budget; keeping the best point's schedule, {schedule} steps")
    return rule


def _device(base: Sequence[str]) -> str:
    for item in base:
        if item.startswith("device="):
            return item.partition("=")[2]
    return "auto"


def _short(hparams: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in hparams.items()) + "}"


def refuse_a_metric_training_worsens(confirm: list[dict[str, Any]], reference: str, higher: bool) -> None:
    """Refuse a calibration whose reference did best at its first evaluation in every confirming run
    (of at least two evaluations): training only made the metric worse in the workload's declared
    direction, almost always a wrong ``higher_is_better`` (accuracy declared lower-is-better). Such
    a target would be one that rewards not learning."""
    runs = [r for r in confirm if r["submission"] == reference and len(r["curve"]) >= 2]
    if not runs or any(r["best"] != r["curve"][0][2] for r in runs):
        return
    first, last = runs[0]["curve"][0], runs[0]["curve"][-1]
    raise UserError(
        f"Every confirming run of {reference} did best at its first evaluation (seed {runs[0]['seed']}: "
        f"{first[2]:.4g} at step {first[0]}, {last[2]:.4g} at step {last[0]}): training only made the metric worse "
        f"as the workload declares it (higher_is_better={higher}). Check the workload's higher_is_better for its "
        f"metric, or its step_hint and the baseline's search space (a baseline that does not learn sets no target). "
        f"Nothing was written.")


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
    needed = max(1, math.ceil(reliability * len(ordered) - 1e-9))  # seeds that must reach the target
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
