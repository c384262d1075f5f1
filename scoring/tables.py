"""Per-workload time-to-target tables of tuning sweeps (median over studies; never reached counts as inf)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def tuned_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (workload, size, submission) of a tuning sweep: the median over studies of each study's
    fastest trial (docs/tuning.md's rulesets; a study that never reached the target counts as inf).

    Columns: studies, trials, reached trials, median time and steps to target (of the studies'
    best-by-time trials: the leaderboard's steps view takes each study's fewest steps instead), best
    validation value over all trials (a pruned trial's is where it was stopped), ratio to the fastest
    submission (inf: not reached).
    """
    if trials.empty:
        return pd.DataFrame()
    frame = _with_signed_best(trials).assign(steps=_steps(trials["steps_to_target"]))
    best = (frame.sort_values("time_to_target_s")
            .groupby(["workload", "size", "submission", "study"], sort=True).head(1))
    per_study = best.groupby(["workload", "size", "submission"]).agg(
        studies=("study", "nunique"),
        median_time_to_target_s=("time_to_target_s", "median"),
        median_steps_to_target=("steps", "median"),
    )
    return _finish(per_study.join(_outcomes(frame)).reset_index())


def _outcomes(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (workload, size, submission): trial counts by outcome, best value, target, budget."""
    return frame.groupby(["workload", "size", "submission"]).agg(
        trials=("status", "size"),
        reached=("status", lambda s: int((s == "reached").sum())),
        pruned=("status", lambda s: int((s == "pruned").sum())),
        diverged=("status", lambda s: int((s == "diverged").sum())),
        failed=("status", lambda s: int((s == "failed").sum())),
        best_signed=("best_signed", "max"),
        higher_is_better=("higher_is_better", "first"),
        target=("target", "first"),
        budget_s=("max_runtime_s", "first"),
    )


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    """Turn ``best_signed`` back into the metric's value, add ratios to the fastest, sort."""
    table.insert(table.columns.get_loc("best_signed"), "best_validation",
                 table["best_signed"] * table["higher_is_better"].map({True: 1.0, False: -1.0}))
    table = table.drop(columns=["best_signed", "higher_is_better"])
    fastest = table.groupby(["workload", "size"])["median_time_to_target_s"].transform("min")
    never = np.isinf(table["median_time_to_target_s"])  # not reached: inf, also where nobody reached (not inf/inf)
    table["ratio_to_best"] = np.where(never, np.inf, table["median_time_to_target_s"] / fastest)
    return table.sort_values(["workload", "size", "median_time_to_target_s", "submission"]).reset_index(drop=True)


def _with_signed_best(trials: pd.DataFrame) -> pd.DataFrame:
    """Add ``best_signed``: the best validation value, negated for lower-is-better metrics (so
    that "best" is always the maximum)."""
    sign = trials["higher_is_better"].map({True: 1.0, False: -1.0})
    return trials.assign(best_signed=pd.to_numeric(trials["best_validation"], errors="coerce") * sign)


def _steps(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(values), np.inf, values)


def to_csv(table: pd.DataFrame) -> str:
    """CSV as the leaderboard writes it: a time, step count or ratio never reached is an empty cell."""
    return table.replace({np.inf: None}).to_csv(index=False)


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown rendering (no extra dependency): inf shown as 'not reached'."""
    if table.empty:
        return "(no finished trials)\n"
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        if np.isinf(value):
            return "not reached"
        if np.isnan(value):
            return "-"
        return f"{value:.4g}"
    return str(value)
