"""From a table of trials to the leaderboard: study bests, workload times, scores, uncertainty
(the records checked first by scoring/consistency.py).

Our rules (docs/scoring.md lists where AlgoPerf's official scoring differs):
- a study's time is its fastest trial *by time* (its steps-to-target, for the steps view, is
  its fewest steps among trials that reached the target);
- a workload's time is the median over studies, a study that never reached the target
  counting as inf; a workload a submission has no records for is inf;
- ratios to the fastest submission, the performance profile, and the area score over
  [1, tau_max] in closed form; a bootstrap over studies for confidence intervals and the
  probability that each leaderboard position holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.core.records import COMPILED_ON_CPU
from scoring.consistency import (
    check_consistent,
    check_precisions,
    check_pruning,
    check_tuning_budgets,
    column_of,
    mixed_precisions,
    record_precisions,
    workload_key,
)
from scoring.marks import (
    changed_limits,
    failed_trials,
    generated_beside_real,
    inert_components,
    integrity_flags,
    made_in_process,
    mixed_batch_sizes,
    mixed_compile,
    precision_marks,
    pruned_without_competitor,
    reached_at_once,
    sizes_per_workload,
    targets_of_other_data,
    unconfined,
    uneven_step_rates,
)
from scoring.records import Problem, problem_groups, problem_messages
from scoring.scores import Uncertainty, area_score, bootstrap, ranks, ratios, separated, workload_times


@dataclass
class Leaderboard:
    """Everything the outputs are made of."""

    table: pd.DataFrame  # one row per submission, best first
    submissions: list[str]
    workloads: list[str]
    times: np.ndarray  # t[s, w] (seconds, inf = never)
    steps: np.ndarray  # steps view of t
    time_ratios: np.ndarray
    step_ratios: np.ndarray
    tau_max: float
    study_times: np.ndarray  # [s, w, k]
    uncertainty: Uncertainty | None = None
    notes: list[str] = field(default_factory=list)
    studies: np.ndarray | None = None  # [s, w]: how many studies the times are medians of
    workload_info: pd.DataFrame | None = None  # one row per workload: see :func:`workload_info`
    memory_note: str = ""  # how peak memory was measured here, and why some is n/a


def study_bests(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (submission, workload, study): the study's best time and best steps.

    A lone trial (no study, e.g. from `optbench trial`) is its own study, keyed by its record
    folder (by its row where a table has no ``record_dir``): lone trials that share a seed are
    still separate studies.
    """
    frame = trials.assign(workload_key=workload_key(trials))
    studies = pd.to_numeric(frame["study"], errors="coerce") if "study" in frame else pd.Series(np.nan, frame.index)
    lone = ("trial:" + frame["record_dir"].astype(str) if "record_dir" in frame
            else pd.Series([f"row:{i}" for i in range(len(frame))], index=frame.index))
    known = studies.notna()
    keys = lone.astype(object)
    keys[known] = "study" + studies[known].astype(np.int64).astype(str)  # as study_key()
    frame["study_key"] = keys
    frame["steps_value"] = pd.to_numeric(frame["steps_to_target"], errors="coerce").fillna(np.inf)
    grouped = frame.groupby(["submission", "workload_key", "study_key"], sort=True)
    return grouped.agg(time=("time_to_target_s", "min"), steps=("steps_value", "min"),
                       trials=("steps_value", "size")).reset_index()


def study_key(study: Any) -> str:
    """The key of sweep study ``study`` (an int, or a float from a column with missing values)."""
    return f"study{int(study)}"


def with_missing_studies(bests: pd.DataFrame, problems: Sequence[Problem]) -> pd.DataFrame:
    """Add, as never reaching the target, each planned study of which no trial ended (and each
    lone trial known to exist, by its manifest, that did not end: it is its own study).

    A trial that did not end (missing, running, damaged) counts as not reaching the target: a
    study with other ended trials is already scored from those; one with none would otherwise
    vanish from the median (changing it either way), so it is added here as inf. An incomplete
    (submission, workload)'s time can then only get better as its trials end.
    """
    present = set(zip(bests["submission"], bests["workload_key"], bests["study_key"]))
    extra = {(p.submission, p.workload, study_key(p.study) if p.study is not None else f"trial:{p.record_dir}")
             for p in problems if p.lost and p.submission and p.workload
             and (p.study is not None or p.sweep is None)}  # a sweep's trial, or a lone one (its own study)
    rows = [{"submission": s, "workload_key": w, "study_key": k, "time": np.inf, "steps": np.inf, "trials": 0}
            for s, w, k in sorted(extra - present)]
    if not rows:
        return bests
    return pd.concat([bests, pd.DataFrame(rows)], ignore_index=True).sort_values(
        ["submission", "workload_key", "study_key"]).reset_index(drop=True)


def to_array(bests: pd.DataFrame, column: str, submissions: list[str], workloads: list[str]) -> np.ndarray:
    """study_times[s, w, k] with nan where a study does not exist (studies in the rows' order)."""
    s_index = pd.Categorical(bests["submission"], categories=submissions).codes
    w_index = pd.Categorical(bests["workload_key"], categories=workloads).codes
    k_index = bests.groupby(["submission", "workload_key"], sort=False).cumcount().to_numpy()
    out = np.full((len(submissions), len(workloads), int(k_index.max()) + 1 if len(k_index) else 1), np.nan)
    out[s_index, w_index, k_index] = bests[column].to_numpy(dtype=float)
    return out


@dataclass
class Studies:
    """What the scores are computed from: each study's best time and steps, as a table (``bests``)
    and as ``[submission, workload, study]`` arrays over the sorted submissions and workloads."""

    bests: pd.DataFrame
    submissions: list[str]
    workloads: list[str]
    study_times: np.ndarray
    study_steps: np.ndarray


def studies_of(trials: pd.DataFrame, tau_max: float = 4.0, problems: Sequence[Problem] = (),
               mix_precisions: bool = False, per_study: Mapping[Path, int] | None = None) -> Studies:
    """The records checked (consistent targets and rules, tuning budgets, precisions, pruning) and
    their studies: the first part of :func:`build`, apart so that ``optbench score`` can start the
    bootstrap (which needs only ``study_times``) while the rest of the board is built.
    ``per_study``: the sweeps' planned trials per study (:class:`scoring.records.Records`)."""
    check_consistent(trials)
    check_tuning_budgets(trials, per_study or {})
    check_precisions(trials, mix_precisions)
    check_pruning(trials, tau_max)
    bests = with_missing_studies(study_bests(trials), problems)
    submissions = sorted(bests["submission"].unique())
    workloads = sorted(bests["workload_key"].unique())
    return Studies(bests, submissions, workloads, to_array(bests, "time", submissions, workloads),
                   to_array(bests, "steps", submissions, workloads))


def build(trials: pd.DataFrame, tau_max: float = 4.0, samples: int = 1000, seed: int = 0,
          problems: Sequence[Problem] = (), planned: dict[Path, int] | None = None,
          mix_precisions: bool = False, studies_found: Studies | None = None) -> Leaderboard:
    """The leaderboard of every submission in ``trials`` over every workload in it.

    ``problems`` (from :func:`scoring.records.read_records`): trials that should exist but are
    missing, unfinished or damaged. They become the first notes, one per (submission, workload),
    and the column ``incomplete_on`` names, per submission, the workloads concerned.
    ``mix_precisions``: rank records of different precisions on one workload together.
    ``studies_found``: :func:`studies_of` the same arguments, when already made.
    """
    found = studies_found or studies_of(trials, tau_max, problems, mix_precisions)
    bests, submissions, workloads = found.bests, found.submissions, found.workloads
    study_times, study_steps = found.study_times, found.study_steps
    times, steps = workload_times(study_times), workload_times(study_steps)
    time_r, step_r = ratios(times), ratios(steps)
    score, step_score = area_score(time_r, tau_max), area_score(step_r, tau_max)
    studies = np.sum(~np.isnan(study_times), axis=2)
    table = pd.DataFrame({"submission": submissions, "score": score})
    table["steps_score"] = step_score
    table["workloads_reached"] = np.isfinite(times).sum(axis=1)
    state = pd.to_numeric(trials.get("state_bytes_per_param", pd.Series(np.nan, trials.index)), errors="coerce")
    state = state.groupby(trials["submission"]).median()
    table["state_bytes_per_param"] = [state.get(s, np.nan) for s in submissions]
    memory = peak_memory(trials, submissions)
    table["peak_memory_mb"], table["peak_memory_note"] = memory.mib, memory.why
    table["studies"] = studies.min(axis=1)
    table["studies_max"] = studies.max(axis=1)
    table["uncertainty_shown"] = False  # until with_uncertainty
    if "ruleset" in trials:  # lone trials (optbench trial): other settings, not repeats (with_uncertainty)
        lone = (trials["ruleset"].astype(str) == "single").groupby(trials["submission"]).all()
        table["lone_trials"] = [bool(lone.get(s, False)) for s in submissions]
    for j, workload in enumerate(workloads):
        table[f"time_s:{workload}"] = times[:, j]
    for j, workload in enumerate(workloads):
        table[f"ratio:{workload}"] = time_r[:, j]
    table.insert(0, "rank", ranks(score))  # ties within scoring.scores.RANK_RTOL, as the bootstrap's
    order = np.lexsort((table["submission"].to_numpy(), -table["steps_score"].to_numpy(), table["rank"].to_numpy()))
    table = table.iloc[order].reset_index(drop=True)
    inert = inert_components(trials)
    table["inert_on"] = [", ".join(sorted(inert.get(s, {}))) for s in table["submission"]]
    incomplete: dict[str, set[str]] = {}
    for (submission, workload), group in problem_groups(problems).items():
        if submission and any(problem.incomplete for problem in group):
            incomplete.setdefault(submission, set()).add(workload)
    unmatched = pruned_without_competitor(trials)
    for submission, workload in unmatched:
        incomplete.setdefault(submission, set()).add(workload)
    table["incomplete_on"] = [", ".join(sorted(incomplete.get(s, ()))) for s in table["submission"]]
    never = not_run(submissions, workloads, studies, incomplete)
    table["not_run_on"] = [", ".join(never.get(s, ())) for s in table["submission"]]
    flags = integrity_flags(trials)
    table["audit"] = [flags.audit.get(s, "") for s in table["submission"]]
    table["clock_suspect_on"] = [", ".join(sorted(flags.suspect.get(s, ()))) for s in table["submission"]]
    failures = failed_trials(trials)
    table["failed_on"] = [", ".join(sorted(w for (who, w) in failures if who == s)) for s in table["submission"]]
    mixed = mixed_precisions(trials)  # only with mix_precisions (studies_of refuses them otherwise)
    marks = precision_marks(trials, mixed)
    table["precision_on"] = [marks.get(s, "") for s in table["submission"]]
    notes = problem_messages(problems, planned)
    notes += [f"{s} on {w}: {count} trial{' was' if count == 1 else 's were'} pruned against {c}'s times (exact "
              f"pruning, rule b), and {c} has no record of {w} here: without them, {'it' if count == 1 else 'they'} "
              f"might have changed this leaderboard. Score with {c}'s records, or rerun "
              f"{'it' if count == 1 else 'them'} with prune=false"
              for (s, w), against in sorted(unmatched.items()) for c, count in sorted(against.items())]
    notes += [failure.note(s, w) for (s, w), failure in sorted(failures.items())]
    notes += [f"{workload} trained on generated data (its size's options.synthetic: a check of the pipeline, not "
              f"a benchmark), yet it counts in every score here beside workloads of real data: score real sizes in a "
              f"results folder of their own" for workload in generated_beside_real(trials)]
    notes += [f"{workload}: its records trained on other examples than its target was calibrated on (their "
              f"data_sha256 differ from the size's calibration's: another corpus or copy of the data), so its times "
              f"are to a target nobody measured on these data; `optbench calibrate` them to set one"
              for workload in targets_of_other_data(trials)]
    notes += [f"{name} is ranked at {len(sizes)} sizes ({', '.join(sizes)}): each counts as a workload of its own in "
              f"every score" for name, sizes in sizes_per_workload(trials).items()]
    notes += [f"{s} has no record of {', '.join(where)}: counted as not reaching the target there, so it scores 0 "
              f"there (run it there, or score a results folder without that workload)" for s, where in never.items()]
    notes += [f"{s}: its {component} step updated no parameter of {', '.join(sorted(where))}; there it ran only its "
              f"fallback optimizer (see `optbench info workload=W submission={s}`)"
              for s, where in sorted(inert.items()) for component in sorted(set(where.values()))]
    notes += [f"{s}: its charged time is implausibly below the wall time the harness measured on "
              f"{', '.join(sorted(where))} (clock_suspect: the submission may have reached the clock; see its records' "
              f"timing)" for s, where in sorted(flags.suspect.items())]
    notes += [f"mix_precisions=true: records of {workload} trained in different precisions ({', '.join(found)}) are "
              f"ranked together; a name says where its records are not fp32" for workload, found in mixed.items()]
    notes += [f"{workload} ranks compiled and eager trials together (torch.compile changes the step rate; the "
              f"manifests' compile says which): compare its times within one setting"
              for workload in mixed_compile(trials)]
    notes += [f"{workload}: the submissions trained with different batch sizes ({sizes}), so a step there is not the "
              f"same amount of data and the steps score compares unequal steps; the time score is the common measure"
              for workload, sizes in mixed_batch_sizes(trials).items()]
    notes += [f"{workload}: its records ran with {limits}, so it is another benchmark than the size's (whose target "
              f"was set for its own budget): compare these times only with records run with the same limits"
              for workload, limits in changed_limits(trials).items()]
    notes += [f"{workload}: trials of one submission and one setting ran at very different speeds ({rates}): the "
              f"machine was shared with other work, throttled or short of memory, so its times say as much about the "
              f"machine as about the submissions; compare the steps score, or run again on a quiet machine"
              for workload, rates in uneven_step_rates(trials).items()]
    pruned = int((trials["status"] == "pruned").sum()) if "status" in trials else 0
    if pruned:
        notes.append(f"{pruned} of {len(trials)} trials were pruned: stopped once they could no longer change "
                     f"any score or rank (docs/scoring.md, exact pruning)")
    notes += [f"on {workload} every trial that reached the target did so at its first evaluation: its times "
              f"measure the steps before that evaluation, not how fast a submission trains to the target (a target "
              f"too easy for these submissions: `optbench calibrate` sets one from a reference's runs)"
              for workload in reached_at_once(trials)]
    if inside := made_in_process(trials):
        notes.append(f"the records of {', '.join(inside)} were made with isolation=inprocess: each submission ran in "
                     f"the harness's own process, where its code could reach the clock, the target and the validation "
                     f"data; the clock cross-check and the source audit flag what they see, isolation=process "
                     f"prevents it (docs/writing-a-submission.md)")
    notes += [f"the records of {workload} were made in trainer processes that were not confined ({why}): a "
              f"submission there could read the dataset's files and write files a later trial read; run them again "
              f"where the kernel has Landlock (Linux >= 5.13), with sandbox=auto (docs/decisions.md)"
              for workload, why in unconfined(trials).items()]
    notes += [f"{workload}: the submissions' times are medians over different numbers of studies ({counts}); a "
              f"time is finite only where more than half of the studies reached the target, which 2 studies make "
              f"harder than 3 (2 of 2 against 2 of 3): compare at equal numbers of studies"
              for workload, counts in unequal_studies(studies, submissions, workloads).items()]
    if generated_only(trials):
        notes.append("every record here trained on generated data (the sizes' options.synthetic: the smoke sizes): a "
                     "check of the pipeline, not a benchmark of the submissions")
    unreached = [w for j, w in enumerate(workloads) if not np.isfinite(times[:, j]).any()]
    if unreached and len(unreached) == len(workloads):
        notes.append("no submission reached any target here: every score is 0, and nothing is ranked (rank '—'); "
                     "a larger budget, more trials or a calibrated target would tell the submissions apart")
    elif unreached:
        notes.append(f"no submission reached the target of {', '.join(unreached)}: it adds 0 to every score")
    board = Leaderboard(table=table, submissions=submissions, workloads=workloads, times=times, steps=steps,
                        time_ratios=time_r, step_ratios=step_r, tau_max=tau_max, study_times=study_times,
                        notes=notes, studies=studies,
                        workload_info=workload_info(trials, bests, times, submissions, workloads),
                        memory_note=memory.note)
    return with_uncertainty(board, bootstrap(study_times, tau_max, samples, seed)) if samples > 0 else board


def not_run(submissions: list[str], workloads: list[str], studies: np.ndarray,
            incomplete: dict[str, set[str]]) -> dict[str, list[str]]:
    """Per submission, the workloads it has no study of (``studies`` [s, w] is 0: no record, no planned
    trial): scored as not reached there, like a trial that missed the target, but it never trained
    there. Workloads with missing or damaged records are ``incomplete`` instead."""
    never = {}
    for i, submission in enumerate(submissions):
        where = [w for j, w in enumerate(workloads) if studies[i, j] == 0 and w not in incomplete.get(submission, ())]
        if where:
            never[submission] = where
    return never


def with_uncertainty(board: Leaderboard, uncertainty: Uncertainty) -> Leaderboard:
    """``board`` with the bootstrap's intervals and rank probabilities (``uncertainty``, per
    submission in ``board.submissions`` order) in its table, after ``score``; shown for the
    submissions with at least ``MIN_STUDIES`` studies on every workload they ran. Apart so that
    the bootstrap can run while the plots, which do not need it, are drawn."""
    table = board.table.copy()
    position = {s: i for i, s in enumerate(board.submissions)}
    order = [position[s] for s in table["submission"]]
    at = table.columns.get_loc("score") + 1
    for k, (name, values) in enumerate((("score_ci_low", uncertainty.low), ("score_ci_high", uncertainty.high),
                                        ("rank_probability", uncertainty.rank_probability))):
        table.insert(at + k, name, np.asarray(values)[order])
    table.insert(at + 3, "p_above_next", above_next(uncertainty.beats, order))
    most = np.iinfo(np.int64).max
    counts = np.where(board.studies > 0, board.studies, most)
    ran = counts.min(axis=1)  # each submission's fewest studies, where it has any
    # a ratio is to the fastest submission's time: its interval needs every workload's times, the
    # fastest's included, to rest on MIN_STUDIES studies (one lucky study of another would fix them)
    workload_ok = counts.min(axis=0) >= MIN_STUDIES
    every = np.array([workload_ok[board.studies[i] > 0].all() for i in range(len(board.submissions))])
    shown = (ran >= MIN_STUDIES) & (ran < most) & every
    if "lone_trials" in table:  # lone trials with other settings are no repeats of one algorithm
        shown &= ~np.asarray(table["lone_trials"].fillna(False), dtype=bool)[np.argsort(order)]
    table["uncertainty_shown"] = shown[order]
    notes = list(board.notes)
    if not shown.any():
        notes.append(f"no bootstrap interval is shown (fewer than {MIN_STUDIES} studies of some submission on a "
                     f"workload, or lone trials): the ranks are point estimates, and neighbours may not differ "
                     f"beyond chance; with {MIN_STUDIES} or more studies of each, the intervals, P(rank holds) "
                     f"and P(above next) say how sure they are")
        unseparated = not_separated_neighbours(table)
        if unseparated:
            notes.append(f"even the bootstrap over these few studies, which is over-confident (its 95% intervals "
                         f"held the true score 55-75% of the time with 2 studies in a simulation, docs/scoring.md), "
                         f"does not tell these neighbours apart: {'; '.join(unseparated)}")
    return replace(board, table=table, uncertainty=uncertainty, notes=notes)


def above_next(beats: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Per row of a table in ``order`` (indices into ``beats``' submissions): the fraction of the paired
    resamples in which it scores clearly above the next row's submission (nan for the last row)."""
    rows = np.asarray(order, dtype=np.int64)
    out = np.full(len(rows), np.nan)
    out[:-1] = beats[rows[:-1], rows[1:]]
    return out


def not_separated_neighbours(table: pd.DataFrame, level: float = 0.95) -> list[str]:
    """"A (rank 2) and B (rank 3): A above in 71% of the resamples" for each pair of neighbouring rows
    with different ranks (and a score above 0) that the paired bootstrap does not separate at ``level``."""
    rows = table.to_dict("records")
    found = []
    for row, below in itertools.pairwise(rows):
        p = row["p_above_next"]
        if row["rank"] != below["rank"] and row["score"] > 0 and not separated(np.asarray(p), level):
            found.append(f"{row['submission']} (rank {row['rank']}) and {below['submission']} (rank {below['rank']}): "
                         f"{row['submission']} above in {p:.0%} of the resamples")
    return found


def unequal_studies(studies: np.ndarray, submissions: list[str], workloads: list[str]) -> dict[str, str]:
    """The workloads whose submissions' times are medians of different numbers of studies, with the counts."""
    found = {}
    for j, workload in enumerate(workloads):
        ran = {s: int(studies[i, j]) for i, s in enumerate(submissions) if studies[i, j] > 0}
        if len(set(ran.values())) > 1:
            found[workload] = ", ".join(f"{s}: {n}" for s, n in sorted(ran.items()))
    return found


def generated_only(trials: pd.DataFrame) -> bool:
    """Whether every record that tells says it trained on generated data (and some tell)."""
    if "synthetic_data" not in trials:
        return False
    told = trials["synthetic_data"].dropna()
    return not told.empty and bool(told.astype(bool).all())


# Fewer studies than this on a workload, and a submission's bootstrap interval and rank probability
# are not shown: with 1 study a resample is the study itself (an interval [x, x], P = 1), with 2
# the median takes 3 values.
MIN_STUDIES = 3


def workload_info(trials: pd.DataFrame, bests: pd.DataFrame, times: np.ndarray, submissions: list[str],
                  workloads: list[str]) -> pd.DataFrame:
    """One row per workload (``<workload>-<size>``): its metric and direction, target, budget and
    ruleset as the records state them; how many studies x trials per study its times come from
    (the range over submissions where they differ); how many submissions ran it and reached the
    target; the fastest time and who made it."""
    of_workload = dict(iter(trials.groupby(workload_key(trials))))
    studies_of = dict(iter(bests.groupby(["workload_key", "submission"])["study_key"].nunique().groupby(level=0)))
    trials_of = dict(iter(bests.groupby("workload_key")["trials"]))
    rows = []
    for j, workload in enumerate(workloads):
        group = of_workload.get(workload, trials.iloc[:0])
        higher = _distinct(column_of(group, "higher_is_better"))
        finite = np.isfinite(times[:, j])
        fastest = int(np.argmin(times[:, j])) if finite.any() else None
        studies = studies_of.get(workload, pd.Series(dtype=int))
        counts = trials_of.get(workload, pd.Series(dtype=int))
        rows.append({
            "workload": workload,
            "metric": ", ".join(map(str, _distinct(column_of(group, "metric")))),
            "higher_is_better": higher[0] if len(higher) == 1 else None,
            "target": ", ".join(f"{t:g}" for t in _distinct(pd.to_numeric(column_of(group, "target"),
                                                                           errors="coerce"))),
            "budget_s": ", ".join(f"{t:g}" for t in _distinct(pd.to_numeric(column_of(group, "max_runtime_s"),
                                                                               errors="coerce"))),
            "ruleset": ", ".join(map(str, _distinct(column_of(group, "ruleset")))),
            "precision": ", ".join(_distinct(record_precisions(group))),
            "measured_on": "; ".join(measured_on(group)),
            "studies": _span(studies), "trials_per_study": _span(counts),
            "submissions": len(studies), "reached": int(finite.sum()),
            "fastest_s": float(times[fastest, j]) if fastest is not None else np.inf,
            "fastest": submissions[fastest] if fastest is not None else "",
        })
    return pd.DataFrame(rows)


def measured_on(trials: pd.DataFrame) -> list[str]:
    """What the times of ``trials`` were measured on, one entry per kind: the GPU (with the count of a
    data-parallel trial's), or the processor and the torch threads a trial used; "not recorded" for records
    that do not say. Times are comparable only on one kind (score refuses to mix them)."""
    def kind(row: pd.Series) -> str:
        hardware = row.get("hardware")
        if not isinstance(hardware, str) or not hardware:
            return "not recorded"
        if row.get("device_type") == "cpu":
            threads = row.get("cpu_threads")
            return f"{hardware}, {threads} thread{'' if threads == '1' else 's'}" if isinstance(threads, str) \
                else hardware
        count = pd.to_numeric(row.get("nproc"), errors="coerce")
        return f"{int(count)} x {hardware}" if count == count and count > 1 else hardware

    columns = [c for c in ("hardware", "device_type", "cpu_threads", "nproc") if c in trials]
    return sorted({kind(row) for _, row in trials[columns].drop_duplicates().iterrows()}) if columns else []


def _distinct(values: pd.Series) -> list[Any]:
    return sorted(values.dropna().unique().tolist(), key=str)


def _span(values: pd.Series) -> str:
    """"5", or "2-5" where the values differ ("" for none)."""
    if len(values) == 0:
        return ""
    low, high = int(values.min()), int(values.max())
    return f"{low}" if low == high else f"{low}-{high}"


@dataclass
class PeakMemory:
    """Per submission (in the board's order) its peak memory in MiB (nan: n/a) and why it is shown
    or not; and a note for the page on how peak memory was measured."""

    mib: list[float]
    why: list[str]
    note: str


# the kind of CUDA peak an earlier optbench recorded: it counted the workload's device-resident data
CUDA_PEAK_WITH_DATA = "cuda_max_allocated"


def peak_memory(trials: pd.DataFrame, submissions: list[str]) -> PeakMemory:
    """Peak memory where it is a real measurement of one trial, from the records alone.

    harness/core/memory.py records, per trial, on CUDA the growth of ``torch.cuda`` allocations from
    the trial's start to its peak (its own), and on the CPU the growth of the *process's* resident set from the
    trial's start to the process's peak: the trial's own only when its process ran no other trial
    (``optbench trial``, a SLURM or local job per trial); where a process ran several
    (``launcher=inline`` or ``parallel``) an earlier trial's peak is counted in a later one's (an
    optimizer with no state showed 116 MiB). So a CPU figure is used only from a trial whose
    process (host and pid of its last attempt) ran no other trial among the records. Per
    submission: the largest, over workloads, of the median of those figures; n/a, with the
    reason, when it has none.
    """
    peak = pd.to_numeric(column_of(trials, "peak_memory_bytes"), errors="coerce")
    kind, device, process = (column_of(trials, name) for name in ("peak_memory_kind", "device_type", "process"))
    cuda = (kind == "cuda_allocated_growth") | (kind.isna() & (device == "cuda"))
    cpu = (kind == "cpu_rss_growth") | (kind.isna() & (device == "cpu"))
    sharing = process.map(process.value_counts()).fillna(0)
    alone = process.notna() & (sharing == 1)
    real = peak.notna() & (cuda | (cpu & alone))
    counted_data = peak.notna() & (kind == CUDA_PEAK_WITH_DATA)
    submission = trials["submission"]
    compiled_on_cpu = set(submission[kind == COMPILED_ON_CPU])
    mib = (peak[real] / 2**20).groupby([submission[real], workload_key(trials)[real]]).median()
    largest = mib.groupby(level=0).max()
    has = peak.notna()
    facts = pd.DataFrame({"has": has, "left": has & cpu & ~alone, "old": counted_data, "cuda": real & cuda,
                          "cpu": real & ~cuda,
                          "shared": has & cpu & process.notna(), "cpu_any": has & cpu,
                          "sharing": sharing.where(has & cpu, 0)}).groupby(submission).agg(
        {"has": "any", "left": "sum", "old": "sum", "cuda": "any", "cpu": "any", "shared": "any", "cpu_any": "any",
         "sharing": "max"})
    values, why = [], []
    for s in submissions:
        fact = facts.loc[s] if s in facts.index else None
        if s in largest:
            values.append(float(largest[s]))
            kinds = ["CUDA"] * bool(fact["cuda"]) + ["CPU, one trial per process"] * bool(fact["cpu"])
            left, old = int(fact["left"]), int(fact["old"])
            why.append(", ".join(kinds) + (f"; {left} trial(s) that shared a process left out" if left else "")
                       + (f"; {old} CUDA trial(s) whose peak counted the device-resident data left out" if old else ""))
            continue
        values.append(np.nan)
        if s in compiled_on_cpu:
            why.append("n/a: compiled on the CPU (TorchInductor's own memory is in the process's peak)")
        elif fact is None or not fact["has"]:
            why.append("not recorded")
        elif fact["shared"]:
            why.append(f"n/a: CPU resident-set growth of processes that ran several trials (up to "
                       f"{int(fact['sharing'])})")
        elif fact["cpu_any"]:
            why.append("n/a: CPU resident-set growth, and the records do not say which process ran each trial")
        elif fact["old"]:
            why.append(f"n/a: CUDA peaks of an earlier optbench, which counted the device-resident data "
                       f"({CUDA_PEAK_WITH_DATA}): rerun the trials for the trial's own")
        else:
            found = ", ".join(sorted(map(str, kind[has & (submission == s)].dropna().unique()))) or "unknown"
            why.append(f"n/a: peak memory of an unknown kind ({found})")
    shown = sum(np.isfinite(values))
    shared = sum(w.startswith("n/a: CPU") for w in why)
    note = ("optimizer state: bytes the optimizer keeps per trainable parameter (median over trials), always "
            "recorded. peak memory: on CUDA the growth of the trial's torch.cuda allocations (model, optimizer "
            "state, activations; not the device-resident data nor the evaluations) to their peak; on the CPU "
            "only the growth of its process's resident set, which is the trial's own only when that process "
            "ran no other trial (optbench trial, one SLURM or local job per trial): shown then, else n/a. Per "
            "submission, the "
            f"largest over workloads of the median over trials, in MiB. Here: shown for {shown} of "
            f"{len(submissions)} submissions")
    note += (f"; n/a for {shared} whose CPU trials shared processes (launcher=inline or parallel run several "
             f"trials per process) or do not say which process ran them." if shared else ".")
    return PeakMemory(values, why, note)


