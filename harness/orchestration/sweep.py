"""Tuning sweeps: the (study, trial) plan of one workload x submission under a ruleset.

A sweep is fixed *before* anything is launched and written to ``sweep.json`` in its folder:

- ``external``: ``studies x trials`` points of a scrambled Halton sequence (``scipy.stats.qmc``,
  seeded by ``search_seed``) over the submission's search space; point ``i`` fills study
  ``i // trials``, trial ``i % trials``. Hyperparameters outside the space keep their defaults.
- ``self``: no search. Each study runs the defaults once with the budget multiplied by
  ``self_tuning_factor``.

Every trial has its own recorded seed and record folder (``study<k>/trial<j>/``) and a fully
composed trial config, so a job needs nothing but the sweep file and its index. The sweep
folder is named by a hash of everything that determines the plan: running the same command
again finds the same folder and the records already in it.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from scipy.stats import qmc

from harness.config.compose import SEEDS, compose_config, to_plain, validate_trial_config
from harness.config.described import check_hparams, described_submission
from harness.config.plugins import missing_yaml_hint
from harness.config.registry import planned_workload
from harness.config.schema import SweepSettings
from harness.config.search_space import corner_points, point_from_unit, validate_search_space
from harness.core.precision import precision_entry
from harness.core.records import read_json
from harness.core.runner import check_trial_settings
from harness.core.submission_names import refuse_another_submission
from harness.core.sweep_file import RUN_AGAIN, SWEEP_FILE
from harness.errors import UserError
from harness.identity import differences, digest, workload_label
from harness.submission import TrainingHparams
from harness.workload import Workload, workload_identity

RULESETS = ("external", "self")


def check_settings(settings: SweepSettings) -> None:
    """The checks a sweep's settings need beyond their types."""
    if settings.ruleset not in RULESETS:
        raise UserError(f"ruleset={settings.ruleset!r} is not valid. Valid rulesets: {', '.join(RULESETS)}.")
    if settings.studies < 1 or settings.trials < 1:
        raise UserError(f"studies={settings.studies} and trials={settings.trials} must both be at least 1.")
    if not (math.isfinite(settings.self_tuning_factor) and settings.self_tuning_factor > 0):
        raise UserError(f"self_tuning_factor={settings.self_tuning_factor} must be a positive, finite number.")
    if not 0 <= settings.search_seed < SEEDS:
        raise UserError(f"search_seed={settings.search_seed} must be in [0, 2^32).")


def quasirandom_points(space: dict[str, Any], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` points of a scrambled Halton sequence (seeded) mapped onto ``space``."""
    if not space:
        return [{} for _ in range(count)]
    units = qmc.Halton(d=len(space), scramble=True, seed=seed).random(count)
    return [point_from_unit(space, unit) for unit in units]


def trial_seed(search_seed: int, study: int, trial: int) -> int:
    """A trial's training seed: a fixed function of the sweep's seed and the trial's slot."""
    return int(np.random.SeedSequence([search_seed, study, trial]).generate_state(1)[0] % 2**31)


# trial settings that change what a trial is (its identity) but that older sweeps did not have, with
# their defaults (harness/core/compile.py, harness/core/team.py)
GPU_SETTINGS = {"compile": "auto", "charge_compile": "false", "nproc": "1"}


def config_path(name: str, config_from: str | None) -> str:
    """Where submission ``name``'s config is: a user's YAML beside its module, or the built-ins' folder."""
    return config_from or f"configs/submission/{name}.yaml"


def point_hparams(hparams_cls: type[TrainingHparams], defaults: dict[str, Any], point: dict[str, Any], name: str,
                  config_from: str | None) -> TrainingHparams:
    """The hyperparameters of one trial (the defaults with ``point``, drawn from the search space); a
    point the submission refuses, where its defaults alone pass, is traced to the search space that
    gave it (else the error would read as if the user had set that value)."""
    try:
        return hparams_cls.from_mapping({**defaults, **point}, submission=name, config=config_from)
    except UserError as error:
        if not point:
            raise
        try:
            hparams_cls.from_mapping(defaults, submission=name, config=config_from)
        except UserError:
            raise error from None  # the defaults' own fault: said as it is
        drawn = ", ".join(f"{key}: {value!r}" for key, value in point.items())
        raise UserError(f"{error} The value comes from the search space of {name} (its point {{{drawn}}}; "
                        f"the search_space of {config_path(name, config_from)}, or an override of it on the "
                        f"command line): every point of the space must be a valid setting, so narrow the range "
                        f"or drop the value (optbench check tests the space's corners).") from None


def check_point(planned: Workload, hparams_cls: type[TrainingHparams], defaults: dict[str, Any],
                point: dict[str, Any], name: str, config_from: str | None) -> TrainingHparams:
    """The hyperparameters of ``point`` (:func:`point_hparams`), with a batch size the workload
    allows: one the search space drew outside its range is refused as the space's fault."""
    hparams = point_hparams(hparams_cls, defaults, point, name, config_from)
    fix = "Set submission.hparams.batch_size."
    if "batch_size" in point:
        fix = (f"It comes from the search space of {name} (the search_space of "
               f"{config_path(name, config_from)}, or an override of it on the command line): keep its batch_size "
               f"within that range (each size's range: optbench info workload=... workload.size=...).")
    planned.check_batch_size(hparams.batch_size, fix)
    return hparams


def plan_sweep(settings: SweepSettings, trial_overrides: list[str]) -> dict[str, Any]:
    """Compose and validate every trial of the sweep; return the sweep description (not yet written)."""
    check_settings(settings)
    base = compose_config("trial", trial_overrides)
    validate_trial_config(base)
    if base.rerun:
        raise UserError("rerun=true runs one finished trial again (optbench trial ... rerun=true); a sweep runs only "
                        f"the trials that have not ended. {RUN_AGAIN}")
    name = str(base.submission.name)
    submission_cls = described_submission(name, base.submission.get("source"))  # not imported here
    hparams_cls = submission_cls.Hparams
    space = to_plain(base.submission.search_space)
    refuse_replaced_settings(settings.ruleset, trial_overrides, space)
    workload = base.workload
    planned = planned_workload(base)  # the chosen size's spec in force: the sweep's identity holds it alone
    budget = float(base.max_runtime_s or planned.spec.max_runtime_s)

    if settings.ruleset == "external":
        if not space:
            where = config_path(name, base.submission.get("config_from"))
            raise UserError(f"Submission '{name}' declares no search space ({where}): external tuning has nothing "
                            f"to search. Use ruleset=self, or add a search_space."
                            f"{missing_yaml_hint(base.submission.get('source'), where)}")
        validate_search_space(space, hparams_cls, f"{name} ({config_path(name, base.submission.get('config_from'))}, "
                                                  f"or an override of it on the command line)")
        corners = corner_points(space)  # as optbench check: a space whose ends are invalid is refused whole
        trials_per_study = settings.trials
        points = quasirandom_points(space, settings.studies * trials_per_study, settings.search_seed)
        trial_budget = base.max_runtime_s
    else:
        trials_per_study, corners = 1, []
        points = [{} for _ in range(settings.studies)]
        trial_budget = budget * settings.self_tuning_factor

    identity = {
        "settings": {**settings.__dict__, "trials": trials_per_study},
        "workload": {**workload_identity(planned), **({"workload_source": workload.source} if workload.source else {})},
        **precision_entry(str(planned.spec.precision)),  # mixed precision: only when not fp32 (core/precision.py)
        "submission": _without_none(to_plain(base.submission)),
        "max_runtime_s": base.max_runtime_s,
        "max_steps": base.max_steps,
        "device": str(base.device),
        **{key: str(base[key]).lower() for key, default in GPU_SETTINGS.items()  # compile, data parallel:
           if str(base[key]).lower() != default},  # only when set, so older sweeps keep their ids
        **({"submission_revision": submission_cls.revision} if submission_cls.revision != 1 else {}),
    }
    sweep_id = digest(identity, 10)
    label = workload_label(workload.name, workload.variant)
    folder = Path(base.results) / f"{label}-{workload.size}" / name / f"{settings.ruleset}-{sweep_id}"
    refuse_another_submission(folder.parent, to_plain(base))

    defaults = to_plain(base.submission.hparams)  # an external submission's checks: one child for all
    config_from = base.submission.get("config_from")  # as the trials' own checks word their messages
    check_hparams(hparams_cls, [{**defaults, **point} for point in [*corners, *points]], name, config_from)
    for corner in corners:
        check_point(planned, hparams_cls, defaults, corner, name, config_from)
    entries = []
    for index, point in enumerate(points):
        study, trial = divmod(index, trials_per_study)
        cfg = copy.deepcopy(base)
        cfg.submission.hparams = OmegaConf.create({**to_plain(base.submission.hparams), **point})
        check_trial_settings(cfg, check_point(planned, hparams_cls, defaults, point, name, config_from).batch_size)
        cfg.seed = trial_seed(settings.search_seed, study, trial)
        cfg.study, cfg.trial, cfg.ruleset = study, trial, settings.ruleset
        cfg.max_runtime_s = trial_budget
        cfg.record_dir = str(folder / f"study{study}" / f"trial{trial}")
        entries.append({"index": index, "study": study, "trial": trial, "seed": int(cfg.seed), "hparams": point,
                        "record_dir": cfg.record_dir, "config": to_plain(cfg)})
    sweep = {
        "kind": "optbench-sweep",
        "sweep_id": sweep_id,
        "dir": str(folder),
        "workload": label,
        "size": str(workload.size),
        "submission": name,
        "ruleset": settings.ruleset,
        "studies": settings.studies,
        "trials_per_study": trials_per_study,
        "search_seed": settings.search_seed,
        "self_tuning_factor": settings.self_tuning_factor if settings.ruleset == "self" else None,
        "search_space": space if settings.ruleset == "external" else {},
        "budget_s": trial_budget if trial_budget is not None else budget,
        "trials": entries,
    }
    refuse_another_sweep(sweep)
    return sweep


def tuning_of(sweep: dict[str, Any]) -> dict[str, Any]:
    """What distinguishes one sweep of a submission on a workload from another of the same ruleset:
    its settings, search space and budget, and the trial settings its points do not set."""
    config = sweep["trials"][0]["config"] if sweep["trials"] else {}
    searched = set(sweep.get("search_space") or {})
    fixed = {k: v for k, v in ((config.get("submission") or {}).get("hparams") or {}).items() if k not in searched}
    trial = {k: v for k, v in config.items() if k not in (*SWEEP_SET, "submission", "results", "max_runtime_s")}
    return {**{k: sweep.get(k) for k in ("studies", "trials_per_study", "search_seed", "self_tuning_factor",
                                          "search_space", "budget_s")}, "fixed hparams": fixed, "trial": trial}


def refuse_another_sweep(sweep: dict[str, Any]) -> None:
    """Refuse to plan a second sweep of a submission on a workload beside one of the same ruleset
    (another search space, search_seed, studies or trials): the leaderboard ranks one sweep per
    submission and workload, so ``optbench score`` would refuse the two only after every trial ran.
    A sweep whose plan cannot be read is left to status and score to name."""
    ours = Path(sweep["dir"])
    for path in sorted(ours.parent.glob(f"{sweep['ruleset']}-*/{SWEEP_FILE}")):
        if path.parent == ours:
            continue
        try:
            other = read_json(path)
            changed = differences(tuning_of(other), tuning_of(sweep))
        except (UserError, OSError, KeyError, IndexError, TypeError, AttributeError):
            continue
        raise UserError(f"{ours.parent} already holds the {sweep['ruleset']} sweep of {sweep['submission']} on "
                        f"{sweep['workload']}-{sweep['size']} ({path.parent.name}) made otherwise: "
                        f"{changed or 'settings the sweep id covers (precision, compile, data parallelism)'}. The "
                        f"leaderboard ranks one sweep per submission and workload, so optbench score would refuse "
                        f"the two; nothing was written. Run it as that one was, move that sweep's folder out of the "
                        f"results folder, or tune into a new results folder (results=DIR).")


SWEEP_SET = ("seed", "study", "trial", "record_dir")  # per trial, by the plan (plan_sweep)


def refuse_replaced_settings(ruleset: str, trial_overrides: list[str], space: dict[str, Any]) -> None:
    """Refuse trial overrides a sweep would silently replace (each trial's seed, study, trial and
    folder; under the external ruleset a searched hyperparameter) or that would tune a self-tuning
    submission by hand (any hyperparameter: that ruleset runs the submission's own defaults)."""
    for override in trial_overrides:
        key = override.lstrip("+~").partition("=")[0]
        if key in SWEEP_SET:
            raise UserError(f"{key} is set by the sweep for each of its trials ({override} would be ignored): "
                            f"leave it out. search_seed= draws other seeds and points; one trial runs as "
                            f"`optbench trial`.")
        hparam = key.removeprefix("submission.hparams.") if key.startswith("submission.hparams.") else None
        if hparam is None:
            continue
        if ruleset == "self":
            raise UserError(f"{override}: ruleset=self runs the submission's own defaults (self-tuning: no "
                            f"hyperparameter is set by hand), and this one would tune it by hand, unmarked on the "
                            f"leaderboard. Make it a default of the submission (its config) or tune it with "
                            f"ruleset=external.")
        if hparam in space:
            raise UserError(f"{override}: {hparam} is searched by the external ruleset, so each trial's searched "
                            f"value would replace it. Leave it out, or change its range "
                            f"(submission.search_space.{hparam}=...).")


def _without_none(config: dict[str, Any]) -> dict[str, Any]:
    """A workload's or submission's config without the provenance keys a built-in one leaves empty
    (``source``, ``config_from``): so its sweep's identity is what it was before they existed."""
    return {k: v for k, v in config.items() if v is not None or k not in ("source", "config_from")}
