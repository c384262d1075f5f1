"""``optbench calibrate``: the target-setting procedure of :mod:`harness.tools.calibrate` as a command.

Draws each baseline's points (its defaults, then a seeded scrambled Halton sequence over its
search space), runs the procedure and, with ``write=true``, writes every raw figure to
``workloads/calibration/<workload>-<size>.json`` and the chosen target, budget, step hint and a
calibration summary into ``configs/workload/<family>.yaml`` (into the variant's entry when a
variant is selected). A workload of one's own (harness/config/plugins.py) has its own YAML
updated instead (its ``config_from``), and its raw figures go to a ``calibration/`` folder beside
it. A dry run (``write=false``) writes its raw figures into its results folder instead: nothing of
the repository changes. Where it writes is checked before the first run.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from scipy.stats import qmc

from harness.config.compose import SEEDS, compose_config, split_overrides, validate_trial_config
from harness.config.registry import effective_spec, submission_class
from harness.config.schema import CalibrateConfig
from harness.config.search_space import point_from_unit, validate_search_space
from harness.errors import UserError
from harness.identity import workload_label
from harness.log import stderr_logger
from harness.paths import ensure_writable_folder
from harness.tools.calibrate import calibrate


def draw_points(
    submission: str, fixed: dict[str, Any], count: int, step_hints: list[int], seed: int
) -> list[tuple[dict[str, Any], int]]:
    """The defaults, then ``count - 1`` Halton points over the search space (minus ``fixed``)."""
    cfg = compose_config("trial", [f"submission={submission}"]).submission
    space = {k: v for k, v in cfg.search_space.items() if k not in fixed}
    validate_search_space(space, submission_class(submission).Hparams, submission)
    hints = list(step_hints)
    points = [(dict(fixed), hints[len(hints) // 2])]
    dims = len(space) + (1 if len(hints) > 1 else 0)
    if count > 1 and dims:
        for unit in qmc.Halton(d=dims, scramble=True, seed=seed).random(count - 1):
            hparams = {**point_from_unit(space, unit[: len(space)]), **fixed}
            hint = hints[min(int(unit[-1] * len(hints)), len(hints) - 1)] if len(hints) > 1 else hints[0]
            points.append((hparams, hint))
    return points


def check_calibrate_settings(cfg: Any) -> None:
    """Refuse calibrate's settings out of their range, before any run: each would fail after hours
    with a traceback, or write a wrong number into the workload's config (margin=0: a budget of 0)."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    seeds = list(cfg.confirm_seeds)
    problems = [f"{key}={value}: {why}" for key, value, ok, why in (
        ("baselines", dict(cfg.baselines), len(cfg.baselines) > 0, "name at least one reference submission"),
        ("points", cfg.points, cfg.points >= 1, "at least 1 (1: each baseline's defaults alone)"),
        ("step_hints", list(cfg.step_hints), all(h >= 1 for h in cfg.step_hints), "positive numbers of steps"),
        ("search_seed", cfg.search_seed, 0 <= cfg.search_seed < SEEDS, "in [0, 2^32)"),
        ("confirm_seeds", seeds, bool(seeds) and all(0 <= s < SEEDS for s in seeds),
         "at least one seed, each in [0, 2^32)"),
        ("reliability", cfg.reliability, number(cfg.reliability) and 0 < cfg.reliability <= 1,
         "a fraction of the confirming seeds, in (0, 1]"),
        ("target_grid", cfg.target_grid, number(cfg.target_grid) and cfg.target_grid > 0, "a positive number"),
        ("margin", cfg.margin, number(cfg.margin) and cfg.margin >= 1,
         "at least 1 (the budget is margin x the slowest confirming seed's time)"),
        ("budget_round_s", cfg.budget_round_s, number(cfg.budget_round_s) and cfg.budget_round_s > 0,
         "a positive number of seconds"),
        ("max_run_s", cfg.max_run_s, cfg.max_run_s is None or (number(cfg.max_run_s) and cfg.max_run_s > 0),
         "a positive number of seconds, or null (4 x the current budget)"),
        ("hint_share", cfg.hint_share, cfg.hint_share is None or (number(cfg.hint_share) and 0 < cfg.hint_share <= 1),
         "a share of the budget in (0, 1], or null (the best point's own schedule)"),
    ) if not ok]
    if problems:
        raise UserError("optbench calibrate: " + "; ".join(problems) + ". Nothing was run.")


def run_calibrate(overrides: list[str], log=None) -> dict[str, Any]:
    """Calibrate the workload the overrides choose; the chosen numbers, and where they were written."""
    log = log or stderr_logger("calibrate")
    own, trial_overrides = split_overrides(overrides, CalibrateConfig)
    cfg = compose_config("calibrate", own)
    check_calibrate_settings(cfg)
    trial = compose_config("trial", trial_overrides)
    validate_trial_config(trial)
    workload = trial.workload
    variant = workload.variant
    spec = effective_spec(trial)
    hints, hints_from = search_schedules(list(cfg.step_hints), spec, recorded_search_hints(workload))
    points = {name: draw_points(name, dict(fixed), cfg.points, hints, cfg.search_seed)
              for name, fixed in cfg.baselines.items()}
    label = workload_label(workload.name, variant)
    results = cfg.results or f"results/calibration/{label}-{workload.size}"
    config_path, folder = destinations(cfg, workload, results)  # checked before hours of runs
    raw = folder / f"{label}-{workload.size}.json"
    base = [*trial_overrides, f"results={results}"]
    max_run_s = cfg.max_run_s or 4 * float(spec.max_runtime_s)
    log(f"{label}/{workload.size}: {sum(map(len, points.values()))} search runs at step_hint "
        f"{'/'.join(map(str, hints))} ({hints_from}) + {len(cfg.confirm_seeds)} confirming seeds per baseline; "
        f"each run at most {max_run_s:g}s; records under {results}")
    report = calibrate(
        base, points, confirm_seeds=list(cfg.confirm_seeds), search_seed=cfg.search_seed,
        target_grid=cfg.target_grid, reliability=cfg.reliability, margin=cfg.margin,
        budget_round_s=cfg.budget_round_s, max_run_s=max_run_s, log=log, hint_share=cfg.hint_share,
    )
    report.update({"workload": workload.name, "variant": variant, "size": workload.size})
    report["rule"]["search_step_hints"] = hints
    raw.write_text(json.dumps(report, indent=1) + "\n")
    log(f"chosen: target {report['target']}, max_runtime_s {report['max_runtime_s']}, step_hint "
        f"{report['step_hint']} (reference {report['reference']}); raw figures in {raw}")
    written = write_calibration(config_path, workload.size, variant, report, raw) if config_path else None
    summary = {k: report[k] for k in ("target", "max_runtime_s", "step_hint", "reference", "reference_hparams")}
    summary.update({"raw": str(raw), "config": written, "time_to_target": report["time_to_target"]})
    return summary


def search_schedules(step_hints: list[int], spec: Any, recorded: list[int] | None) -> tuple[list[int], str]:
    """The schedule lengths the search runs at, and where they come from: ``step_hints=`` when
    given; else ``recorded``, the ones the size's last calibration searched
    (:func:`recorded_search_hints`); else the size's step hint. Not the step hint a calibration
    wrote: step 5 sets it from the budget, about 1.5x the steps the reference needed, and a search
    at it finds a harder target, a longer budget and a longer hint again -- measured on
    fashion_mnist mini, a rerun moved 0.87 / 2 s / 1200 steps to 0.88 / 4 s / 1900. With the
    recorded schedule a rerun repeats the same search."""
    if step_hints:
        return step_hints, "step_hints="
    if recorded:
        return recorded, "the schedule its last calibration searched"
    return [int(spec.step_hint)], "its step_hint"


def recorded_search_hints(workload: Any) -> list[int] | None:
    """The schedules the last calibration of the selected size searched (its
    ``calibration.rule.search_step_hints``), None if none is recorded. A variant's size entry has its
    own when it was calibrated; one that keeps the base size's step hint searches the base's (its
    entry replaces the base's ``calibration`` as a whole, so without this it searched at the base's
    derived hint); one with a step hint of its own has none until calibrated."""
    key = "calibration.rule.search_step_hints"
    base = OmegaConf.select(workload, f"sizes.{workload.size}.{key}")
    if workload.variant != "base":
        entry = f"variants.{workload.variant}.sizes.{workload.size}"
        own = OmegaConf.select(workload, f"{entry}.{key}")
        if own is not None or OmegaConf.select(workload, f"{entry}.step_hint") is not None:
            base = own
    return [int(h) for h in base] if base else None


def workload_yaml(workload: Any) -> Path:
    """The YAML ``write=true`` updates: a built-in workload's ``configs/workload/<name>.yaml``, an
    external one's own (the file its config came from: the YAML beside its module, or
    ``workload_config=``)."""
    if workload.get("source"):
        return Path(str(workload.config_from))
    return builtin_configs() / f"{workload.name}.yaml"


def builtin_configs() -> Path:
    """This repository's workload configs folder (configs/workload/)."""
    return Path(str(resources.files("configs"))) / "workload"


def destinations(cfg: Any, workload: Any, results: str) -> tuple[Path | None, Path]:
    """The YAML to update (None for a dry run) and the raw figures' folder, each proven writable:
    called before the runs, so that a calibration never fails after them for want of a place to
    write its numbers."""
    config = workload_yaml(workload) if cfg.write else None
    if config is not None and not (config.is_file() and os.access(config, os.W_OK)):
        raise UserError(f"optbench calibrate: cannot update {config} (write=true writes the chosen numbers "
                        f"into the workload's config): {'not writable' if config.is_file() else 'no such file'}. "
                        f"Make it writable, or run with write=false (the raw figures then go to {results}). "
                        f"Nothing was run.")
    folder = raw_folder(cfg, results, config)
    ensure_writable_folder(folder, "out", cfg.out or folder)
    return config, folder


def raw_folder(cfg: Any, results: str, config: Path | None) -> Path:
    """Where the raw figures go: ``out=`` when given; else beside the config ``write=true`` updates,
    which cites them (a built-in workload's in workloads/calibration/, an external one's in a
    ``calibration/`` folder beside its YAML); else (a dry run) the results folder, so that a dry
    run leaves the repository's files (the raw figures the configs cite as evidence) alone."""
    if cfg.out:
        return Path(cfg.out)
    if config is None:
        return Path(results)
    if config.resolve().parent == builtin_configs().resolve():
        return Path(str(resources.files("workloads"))) / "calibration"
    return config.parent / "calibration"


def _shown(raw: Path) -> str:
    """Where the raw figures are, as the config names them: relative to the repository when they are
    in it (workloads/calibration/...), else the path they were written to (``out=``)."""
    package = Path(str(resources.files("workloads"))).resolve()
    try:
        return f"workloads/{raw.resolve().relative_to(package).as_posix()}"
    except ValueError:
        return str(raw)


def write_calibration(path: Path, size: str, variant: str, report: dict[str, Any], raw: Path) -> str:
    """Write target, budget, step hint and a calibration summary into the workload's YAML.

    The file is edited with ruamel.yaml's round-trip mode, so its comments, key order and flow
    style survive; only the size's ``target``, ``max_runtime_s``, ``step_hint`` and
    ``calibration`` change.
    """
    from ruamel.yaml import YAML

    if report["max_runtime_s"] is None:
        raise UserError(f"The reference baseline never reached the chosen target; {path} was not changed "
                        f"(the raw figures are in {raw}).")
    round_trip = YAML()
    round_trip.preserve_quotes = True
    round_trip.width = 110
    round_trip.representer.add_representer(  # keep explicit nulls (ruamel writes an empty value)
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null"))
    data = round_trip.load(path.read_text())
    if variant == "base":
        entry = data["sizes"][size]
    else:
        entry = data.setdefault("variants", {})[variant].setdefault("sizes", {}).setdefault(size, {})
    if hasattr(entry, "fa"):  # a one-line {target: ...} entry grows a block: write it as one
        entry.fa.set_block_style()
        owner = data["sizes"] if variant == "base" else data["variants"][variant]["sizes"]
        owner.ca.items.pop(size, None)  # its end-of-line comment described the old numbers
        entry.ca.comment = None
    reference = report["reference"]
    times = [t["seconds"] for t in report["time_to_target"][reference] if t["seconds"] is not None]
    for key in ("target", "max_runtime_s", "step_hint"):
        entry[key] = report[key]
        _drop_end_of_line_comment(entry, key)
    device = report["device"]
    entry["calibration"] = {
        "date": report["date"],
        "procedure": "optbench calibrate (harness/tools/calibrate.py); see the workload's .md",
        "raw": _shown(raw),
        "hardware": f"{device.get('name') or device.get('cpu_model') or device['cpu']}, {device['type']}, "
                    f"torch {report['versions']['torch']} ({device['torch_threads']} threads)",
        "reference": f"{reference} {_rounded(report['reference_hparams'])}: {len(times)}/"
                     f"{len(report['time_to_target'][reference])} seeds reach the target, in "
                     f"{min(times):.2f}-{max(times):.2f} s",
        "rule": dict(report["rule"]),
    }
    if report.get("step_hint_rule", {}).get("check"):
        entry["calibration"]["step_hint"] = step_hint_summary(report["step_hint_rule"], report["max_runtime_s"])
    if report.get("data_sha256"):  # the examples the target is for: a trial on others is told (and noted)
        entry["calibration"]["data_sha256"] = report["data_sha256"]
    with open(path, "w", encoding="utf-8") as f:
        round_trip.dump(data, f)
    return str(path)


def step_hint_summary(rule: dict[str, Any], budget: float) -> str:
    """One line on how the step hint was chosen (calibrate's step 5), for the workload's YAML."""
    times = [check["seconds"] for check in rule["check"] if check["within_budget"]]
    seeds = f"{len(times)}/{len(rule['check'])} seeds reach the target within the budget"
    at = f"{rule['derived']} steps: {seeds}" + (f", in {min(times):.2f}-{max(times):.2f} s" if times else "")
    chosen = "kept" if rule["step_hint"] == rule["derived"] else f"too few: kept the best point's {rule['step_hint']}"
    return (f"{rule['share']:g} x the {budget:g} s budget at the reference's {rule['steps_per_s']:.3g} steps/s = "
            f"{at} ({chosen}; the best point's schedule: {rule['schedule_step_hint']})")


def _drop_end_of_line_comment(entry: Any, key: str) -> None:
    """Remove the comment at the end of ``key``'s line (it described the old value: e.g. "not measured
    here" beside a target now measured); the comment lines and blank lines after it stay (ruamel keeps
    them in the same token)."""
    tokens = entry.ca.items.get(key)
    if tokens and len(tokens) > 2 and tokens[2] is not None:
        tokens[2].value = "\n" + tokens[2].value.partition("\n")[2]


def _rounded(hparams: dict[str, Any]) -> str:
    """Hyperparameters as short text: floats to 4 significant digits."""
    parts = [f"{k}={float(v):.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in hparams.items()]
    return "{" + ", ".join(parts) + "}"
