"""Per-workload time-to-target tables (median over seeds; never reached counts as inf)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def time_to_target_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (workload, size, submission): reached fraction, median time and steps to target.

    The median includes trials that never reached the target as +inf (so a submission that
    reaches it in fewer than half of its seeds has an infinite median), as DESIGN.md's scoring
    requires. ``ratio_to_best`` divides by the fastest submission's median on the same workload.
    """
    if trials.empty:
        return pd.DataFrame()
    grouped = trials.groupby(["workload", "size", "submission"], sort=True)
    table = grouped.agg(
        trials=("status", "size"),
        reached=("status", lambda s: int((s == "reached").sum())),
        diverged=("status", lambda s: int((s == "diverged").sum())),
        failed=("status", lambda s: int((s == "failed").sum())),
        median_time_to_target_s=("time_to_target_s", "median"),
        median_steps_to_target=("steps_to_target", lambda s: float(np.nanmedian(_steps(s)))),
        best_validation=("best_validation", "max"),
        target=("target", "first"),
        budget_s=("max_runtime_s", "first"),
    ).reset_index()
    fastest = table.groupby(["workload", "size"])["median_time_to_target_s"].transform("min")
    table["ratio_to_best"] = table["median_time_to_target_s"] / fastest
    return table.sort_values(["workload", "size", "median_time_to_target_s", "submission"]).reset_index(drop=True)


def _steps(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(values), np.inf, values)


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
