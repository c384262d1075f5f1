"""Scoring AlgoPerf's published log trees, in AlgoPerf v0.5's official way or in ours.

Layout read: ``<root>/<submission>/<study>/<workload>_<jax|pytorch>/trial_<j>/eval_measurements.csv``
with columns ``score`` (accumulated submission time; ``accumulated_submission_time`` is used when
``score`` is absent), ``global_step`` and ``validation/<metric>``.

Targets file (``targets=FILE``): AlgoPerf keeps targets as workload-class properties, not in a
file, so we use those property names in one JSON object::

    {"base_workloads": ["wmt", ...], "held_out_workloads": ["wmt_glu_tanh", ...],
     "workloads": {"wmt": {"target_metric_name": "bleu", "validation_target_value": 30.8491,
                           "step_hint": 133333}, ...}}

Lower is better for loss / error / WER-style metrics (the names AlgoPerf minimises). A held-out
variant belongs to the first base workload whose name is a substring of its name (AlgoPerf's
rule). docs/scoring.md lists every difference between the two modes and why ours differ.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from os import listdir  # AlgoPerf's scorer's order of trial folders (compat)
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import OptbenchWarning, UserError, refuse_or_warn
from scoring.scores import area_score, ranks

LOWER_IS_BETTER = ("ce_loss", "error_rate", "ctc_loss", "wer", "l1_loss", "loss")
FRAMEWORK_SUFFIX = re.compile(r"^(?P<name>.+)_(jax|pytorch)$")
TRIAL = re.compile(r"^trial_(\d+)$")
TRIAL_PREFIX = re.compile(r"^trial_(\d+)")  # AlgoPerf's scorer: re.match, so trial_9_rerun is trial 9 too
STUDY = re.compile(r"^study_(\d+)$")
COMPAT_TAUS = np.linspace(1.0, 4.0, 100)  # AlgoPerf v0.5: 100 points on [1, 4], trapezoid rule


@dataclass
class Targets:
    base: list[str]
    held_out: list[str]
    metric: dict[str, str]
    target: dict[str, float]

    def lower_is_better(self, workload: str) -> bool:
        name = self.metric[workload].removeprefix("best_").removeprefix("final_")
        return any(key in name for key in LOWER_IS_BETTER)

    def base_of(self, variant: str) -> str | None:
        return next((b for b in self.base if b in variant), None)


def load_targets(path: Path) -> Targets:
    try:
        data = json.loads(Path(path).read_text())
        base, held_out, spec = list(data["base_workloads"]), list(data.get("held_out_workloads", [])), data["workloads"]
        metric = {w: str(spec[w]["target_metric_name"]) for w in base + held_out}
        target = {w: float(spec[w]["validation_target_value"]) for w in base + held_out}
    except FileNotFoundError:
        raise UserError(f"targets={path}: no such file.") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise UserError(
            f"targets={path} is not a workload targets file ({type(error).__name__}: {error}). Expected "
            f'{{"base_workloads": [...], "held_out_workloads": [...], "workloads": {{NAME: '
            f'{{"target_metric_name": ..., "validation_target_value": ..., "step_hint": ...}}}}}}.') from None
    targets = Targets(base, held_out, metric, target)
    orphans = [v for v in held_out if targets.base_of(v) is None]
    if orphans:
        raise UserError(f"held-out workload(s) {', '.join(orphans)} contain no base workload name.")
    return targets


def read_trials(root: Path, targets: Targets, compat: bool = False) -> pd.DataFrame:
    """One row per trial: submission, study, workload, trial number, first eval index and time
    reaching the target (-1 / inf when never).

    What a tree lacks counts as never reaching the target, with a warning naming it (strict=true
    refuses the tree): a trial folder without its CSV, and a workload of the targets file that a
    submission's study has no trials of (a study that wrote nothing: every workload). Dropping them
    would take each median over the studies that happened to write logs. A targets workload with no
    logs anywhere (a misspelt name) and a log workload outside the targets file are named too.
    ``compat``: as AlgoPerf v0.5's scorer reads a tree, what is lacking is left out (each median is over
    the studies that have logs), a trial folder is any whose name starts with ``trial_<j>``, and the
    time at the first row reaching the target is taken as it is (0, NaN); each still with a warning."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"results={root} is not a folder.")
    rows, studies = [], []
    outside: set[str] = set()
    for submission in sorted(p for p in root.iterdir() if p.is_dir()):
        for study in sorted(p for p in submission.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if STUDY.match(study.name) or any(FRAMEWORK_SUFFIX.match(p.name) and p.is_dir() for p in study.iterdir()):
                studies.append(study)  # a study: what it lacks counts as never reached (other folders: no trials)
            for folder in sorted(study.iterdir()):
                match = FRAMEWORK_SUFFIX.match(folder.name)
                if not match or not folder.is_dir():
                    # AlgoPerf's own scorer finds no trials in such an entry; neither do we, but we say so.
                    warnings.warn(f"{folder}: skipped; a study folder holds <workload>_jax or <workload>_pytorch "
                                  f"folders (of trial_<j>/eval_measurements.csv), this is "
                                  f"{'a folder' if folder.is_dir() else 'a file'} of another name",
                                  OptbenchWarning, stacklevel=2)
                    continue
                workload = match["name"]
                if workload not in targets.metric:
                    outside.add(workload)  # not scored: said once below
                    continue
                for listed, (trial, number) in enumerate(trial_folders(folder, compat)):
                    csv = trial / "eval_measurements.csv"
                    row = {"submission": submission.name, "study": study.name, "workload": workload, "trial": number,
                           "listed": listed}
                    if csv.is_file():
                        rows.append({**row, **first_reaching(csv, targets, workload, compat)})
                    elif compat:
                        warnings.warn(f"{trial}: no eval_measurements.csv; left out, as AlgoPerf's scorer does",
                                      OptbenchWarning, stacklevel=2)
                    else:
                        warnings.warn(f"{trial}: no eval_measurements.csv; counted as never reaching the target",
                                      OptbenchWarning, stacklevel=2)
                        rows.append({**row, **NEVER})
    if not rows:
        raise UserError(f"No AlgoPerf eval_measurements.csv under {root} for the workloads of the targets file.")
    if outside:
        warnings.warn(f"{root}: logs of {', '.join(sorted(outside))}, which the targets file does not name: not "
                      f"scored (a name misspelt in the file or in the logs?)", OptbenchWarning, stacklevel=2)
    logged = {row["workload"] for row in rows}
    unlogged = [w for w in targets.base + targets.held_out if w not in logged]
    if unlogged:
        warnings.warn(f"{root}: no logs of {', '.join(unlogged)} (named in the targets file) for any submission: "
                      f"every submission counts as never reaching the target there (a misspelt name?)",
                      OptbenchWarning, stacklevel=2)
    found = {(row["submission"], row["study"], row["workload"]) for row in rows}
    for study in studies:
        absent = [w for w in targets.base + targets.held_out
                  if w in logged and (study.parent.name, study.name, w) not in found]
        if absent and compat:
            warnings.warn(f"{study}: no trials of {', '.join(absent)}; left out, as AlgoPerf's scorer does (the "
                          f"median is over the other studies)", OptbenchWarning, stacklevel=2)
        elif absent:
            warnings.warn(f"{study}: no trials of {', '.join(absent)}; counted as never reaching the target there",
                          OptbenchWarning, stacklevel=2)
            rows += [{"submission": study.parent.name, "study": study.name, "workload": w, "trial": 0, "listed": 0,
                      **NEVER} for w in absent]
    return pd.DataFrame(rows)


def trial_folders(folder: Path, compat: bool) -> list[tuple[Path, int]]:
    """The trial folders of a workload folder with their numbers: ``trial_<j>``, by number; under
    ``compat`` any name starting so (AlgoPerf's scorer matches the start only), in the directory's listing
    order (``os.listdir``, AlgoPerf's, which breaks its ties on the eval index). Otherwise a name that
    only starts so (``trial_9_rerun``) is skipped with a warning."""
    found = []
    for path in (folder / name for name in listdir(folder)):
        match = (TRIAL_PREFIX if compat else TRIAL).match(path.name)
        if match:
            found.append((path, int(match[1])))
        elif prefix := TRIAL_PREFIX.match(path.name):
            warnings.warn(f"{path}: skipped, not a trial_<number> folder (AlgoPerf's scorer reads it as trial "
                          f"{prefix[1]}, and so does compat=true)", OptbenchWarning, stacklevel=3)
    return found if compat else sorted(found, key=lambda item: (item[1], item[0].name))


NEVER = {"index": -1, "time": np.inf, "steps": np.inf}  # a trial that never reached the target


def first_reaching(csv: Path, targets: Targets, workload: str, compat: bool = False) -> dict[str, Any]:
    """The first eval index meeting the target, its time and step (``NEVER`` if none). A time there that
    is not a number above 0 s counts as never reaching, with a warning; under ``compat`` it is kept as it
    is, as AlgoPerf's scorer keeps it (a NaN time makes the study's NaN, a 0 s one is the fastest)."""
    try:
        frame = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        warnings.warn(f"{csv}: unreadable, counted as never reaching the target ({error})",
                      OptbenchWarning, stacklevel=2)
        return dict(NEVER)
    column = f"validation/{targets.metric[workload]}"
    time_column = "score" if "score" in frame else "accumulated_submission_time"
    missing = [c for c in (column, time_column) if c not in frame]
    if missing:
        raise UserError(f"{csv} has no column {', '.join(repr(c) for c in missing)}; expected '{column}' (the "
                        f"target metric of the targets file) and 'score' or 'accumulated_submission_time' (columns "
                        f"found: {', '.join(map(str, frame.columns))}).")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy()
    target = targets.target[workload]
    with np.errstate(invalid="ignore"):
        hit = values <= target if targets.lower_is_better(workload) else values >= target
    if not hit.any():
        return dict(NEVER)
    index = int(np.argmax(hit))
    time = pd.to_numeric(frame[time_column], errors="coerce").iloc[index]
    if compat and not (np.isfinite(time) and time > 0):
        warnings.warn(f"{csv}: data row {index + 1}, the first reaching the target, has '{time_column}' = "
                      f"{frame[time_column].iloc[index]!r}: kept as it is, as AlgoPerf's scorer keeps it",
                      OptbenchWarning, stacklevel=2)
    elif not np.isfinite(time) or time <= 0:
        warnings.warn(f"{csv}: data row {index + 1}, the first reaching the target, has '{time_column}' = "
                      f"{frame[time_column].iloc[index]!r}, expected a number of seconds above 0 s (a target met "
                      f"before training took any time: a wrong target or log); counted as never reaching the "
                      f"target", OptbenchWarning, stacklevel=2)
        return dict(NEVER)
    if "global_step" not in frame:
        warnings.warn(f"{csv}: no global_step column, so no steps score is given", OptbenchWarning, stacklevel=2)
    steps = pd.to_numeric(frame["global_step"], errors="coerce").iloc[index] if "global_step" in frame else np.nan
    return {"index": index, "time": float(time), "steps": float(steps)}  # nan steps: no steps view there


def study_times(trials: pd.DataFrame, compat: bool) -> pd.DataFrame:
    """Per (submission, workload, study) the study's time.

    compat: the trial reaching the target at the earliest *eval index* (ties: the first in the
    directory's listing order, as AlgoPerf's), its time at that index. Ours: the fastest trial *by time*.
    """
    reached = trials[trials["index"] >= 0]
    if compat:
        best = reached.sort_values(["index", "listed"], kind="stable").groupby(
            ["submission", "workload", "study"]).head(1)
    else:
        best = reached.sort_values(["time", "trial"]).groupby(["submission", "workload", "study"]).head(1)
    keys = trials[["submission", "workload", "study"]].drop_duplicates()
    merged = keys.merge(best[["submission", "workload", "study", "time", "steps"]], how="left", indicator=True)
    never = merged.pop("_merge") == "left_only"  # no trial of the study reached; a NaN time of one that did stays
    merged.loc[never, ["time", "steps"]] = np.inf
    return merged


def workload_table(per_study: pd.DataFrame, column: str, submissions: list[str], workloads: list[str]) -> np.ndarray:
    """t[s, w]: median over studies with inf included (np.median, as AlgoPerf); nan when absent."""
    medians = per_study.groupby(["submission", "workload"])[column].agg(lambda x: float(np.median(x.to_numpy())))
    table = medians.unstack().reindex(index=submissions, columns=workloads)
    return table.to_numpy(dtype=float)


def compat_ratios(times: np.ndarray, targets: Targets, workloads: list[str]) -> np.ndarray:
    """AlgoPerf v0.5's steps, in its order: variant := inf where its base is inf/missing; times
    above 4x the column's fastest := inf; base := inf where its variant is inf/missing; then
    divide the base columns by their (new) fastest. Returns ratios over the base workloads."""
    t = times.copy()
    col = {w: j for j, w in enumerate(workloads)}
    for variant in targets.held_out:
        base = targets.base_of(variant)
        bad = ~np.isfinite(t[:, col[base]])  # inf or nan
        t[bad, col[variant]] = np.inf
    present = ~np.isnan(t)
    best = np.min(np.where(present, t, np.inf), axis=0)  # AlgoPerf's df.min(): missing values skipped
    with np.errstate(invalid="ignore"):
        t = np.where(t > 4 * best[None, :], np.inf, t)
    for variant in targets.held_out:
        base = targets.base_of(variant)
        bad = ~np.isfinite(t[:, col[variant]])
        t[bad, col[base]] = np.inf
    base_cols = [col[b] for b in targets.base]
    tb = t[:, base_cols]
    fastest = np.min(np.where(np.isnan(tb), np.inf, tb), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = tb / fastest[None, :]
    # AlgoPerf's df.update keeps the time where the division gives NaN: inf/inf stays inf, a missing time
    # stays missing (never within any tau), and 0/0 stays 0 (reached, at every tau)
    r = np.where(np.isnan(r), tb, r)
    return np.where(np.isnan(r), np.inf, r)


def our_ratios(times: np.ndarray, targets: Targets, workloads: list[str]) -> np.ndarray:
    """Ours: a base workload counts as not reached when its held-out variant was not reached
    (the variant guards against tuning to the base workloads), applied once; then ratios to the
    fastest of what remains. No separate cut-off: ratios beyond tau_max add 0 anyway."""
    t = np.where(np.isnan(times), np.inf, times)
    col = {w: j for j, w in enumerate(workloads)}
    for variant in targets.held_out:
        t[~np.isfinite(t[:, col[variant]]), col[targets.base_of(variant)]] = np.inf
    tb = t[:, [col[b] for b in targets.base]]
    best = np.min(tb, axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = tb / best
    return np.where(np.isfinite(best) & np.isfinite(tb), r, np.inf)


def compat_score(r: np.ndarray) -> np.ndarray:
    """AlgoPerf v0.5: rho on 100 points of [1, 4] (<=), trapezoid rule, divided by 3."""
    rho = (r[:, :, None] <= COMPAT_TAUS[None, None, :]).sum(axis=1) / r.shape[1]
    return np.trapezoid(rho, COMPAT_TAUS, axis=1) / (COMPAT_TAUS[-1] - COMPAT_TAUS[0])


def score_tree(root: Path, targets: Targets, compat: bool, tau_max: float = 4.0) -> pd.DataFrame:
    """The leaderboard table of an AlgoPerf log tree (one row per submission, best first)."""
    trials = read_trials(root, targets, compat)
    per_study = study_times(trials, compat)
    submissions = sorted(trials["submission"].unique())
    workloads = targets.base + targets.held_out
    times = workload_table(per_study, "time", submissions, workloads)
    steps = workload_table(per_study, "steps", submissions, workloads)
    if compat:
        r, r_steps = compat_ratios(times, targets, workloads), compat_ratios(steps, targets, workloads)
        score, steps_score = compat_score(r), compat_score(r_steps)
    else:
        r, r_steps = our_ratios(times, targets, workloads), our_ratios(steps, targets, workloads)
        score, steps_score = area_score(r, tau_max), area_score(r_steps, tau_max)
    if trials.loc[trials["index"] >= 0, "steps"].isna().any():  # a reaching trial without steps: no steps view
        steps_score = np.full(len(submissions), np.nan)
    table = pd.DataFrame({"submission": submissions, "score": score, "steps_score": steps_score})
    for j, workload in enumerate(targets.base):
        table[f"time_s:{workload}"] = times[:, workloads.index(workload)]
        table[f"ratio:{workload}"] = r[:, j]
    table.insert(0, "rank", ranks(score))
    return table.sort_values(["rank", "submission"]).reset_index(drop=True)


def score_algoperf(cfg: Any, log) -> dict[str, Any]:
    """``optbench score format=algoperf targets=FILE [compat=true]``: print and write the table."""
    if not cfg.targets:
        raise UserError("format=algoperf needs targets=FILE (a workload targets JSON; see docs/scoring.md).")
    targets = load_targets(Path(cfg.targets))
    if cfg.compat and float(cfg.tau_max) != COMPAT_TAUS[-1]:
        log(f"compat=true integrates over [1, {COMPAT_TAUS[-1]:g}] as AlgoPerf v0.5 does: tau_max={cfg.tau_max} "
            f"is not used")
    with warnings.catch_warnings(record=True) as caught:  # what was skipped or is missing: said, or refused
        warnings.simplefilter("always")
        table = score_tree(Path(cfg.results), targets, bool(cfg.compat), float(cfg.tau_max))
    refuse_or_warn([str(w.message) for w in caught], bool(getattr(cfg, "strict", False)), log,  # before writing
                   f"parts of {cfg.results} are missing or were skipped", "Remove, fix or complete them, or score "
                   "without strict=true (they are then scored as these warnings say).")
    out = Path(cfg.out) if cfg.out else Path(cfg.results) / "leaderboard"
    out.mkdir(parents=True, exist_ok=True)
    mode = "AlgoPerf v0.5 official rules (compat)" if cfg.compat else "optbench rules"
    table.replace({np.inf: None}).to_csv(out / "leaderboard.csv", index=False)
    lines = [f"# AlgoPerf logs scored with {mode}", "", "| rank | submission | score | steps score |",
             "|---|---|---|---|"]
    lines += [f"| {r['rank']} | {r['submission']} | {r['score']:.4f} | "
              f"{'n/a' if np.isnan(r['steps_score']) else format(r['steps_score'], '.4f')} |"
              for _, r in table.iterrows()]
    text = "\n".join(lines) + "\n"
    (out / "leaderboard.md").write_text(text)
    print(text, end="", flush=True)
    log(f"{len(table)} submissions, {len(targets.base)} base + {len(targets.held_out)} held-out workloads; wrote {out}")
    return {"leaderboard": str(out / "leaderboard.md"), "csv": str(out / "leaderboard.csv"), "mode": mode}
