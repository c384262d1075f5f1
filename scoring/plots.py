"""Plots from records: validation metric against submission time, with the target line."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import pandas as pd

from scoring.records import load_evals


def plot_validation_curves(trials: pd.DataFrame, workload: str, size: str, out: Path) -> Path:
    """One line per trial of ``workload``/``size`` (coloured by submission); writes a PNG."""
    subset = trials[(trials.workload == workload) & (trials["size"] == size)]
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    metric = subset["metric"].iloc[0]
    for i, (submission, group) in enumerate(subset.groupby("submission")):
        for j, (_, trial) in enumerate(group.iterrows()):
            evals = load_evals(Path(trial["record_dir"]))
            if evals.empty:
                continue
            ax.plot(evals["submission_time_s"], evals[f"validation/{metric}"], color=colours[i % len(colours)],
                    alpha=0.9, lw=1.2, label=submission if j == 0 else None)
    ax.axhline(subset["target"].iloc[0], color="black", ls="--", lw=1, label="target")
    ax.axvline(subset["max_runtime_s"].iloc[0], color="grey", ls=":", lw=1, label="budget")
    ax.set_xlabel("submission time (s)")
    ax.set_ylabel(f"validation {metric}")
    target = subset["target"].iloc[0]
    if subset["higher_is_better"].iloc[0]:
        ax.set_ylim(bottom=max(0.0, target - 0.15), top=min(1.0, target + 0.05) if target <= 1 else None)
    ax.set_title(f"{workload} ({size}): validation {metric} vs submission time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
