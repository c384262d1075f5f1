"""Plots from records: validation metric against submission time, with the target line."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import pandas as pd

from scoring.records import load_evals


def plot_validation_curves(trials: pd.DataFrame, workload: str, size: str, out: Path) -> Path:
    """Validation metric vs submission time of ``workload``/``size``; writes a PNG.

    With tuning sweeps (a ``study`` column with values) only each submission's best trial is
    drawn — the fastest to the target, else the one with the best validation value — so the
    plot stays readable; otherwise one line per trial, coloured by submission.
    """
    subset = trials[(trials.workload == workload) & (trials["size"] == size)]
    if "study" in subset and subset["study"].notna().any():
        sign = subset["higher_is_better"].map({True: -1.0, False: 1.0})
        ranked = subset.assign(_rank=pd.to_numeric(subset["best_validation"], errors="coerce") * sign)
        subset = ranked.sort_values(["time_to_target_s", "_rank"]).groupby("submission").head(1)
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    metric = subset["metric"].iloc[0]
    for i, (submission, group) in enumerate(subset.groupby("submission")):
        for j, (_, trial) in enumerate(group.iterrows()):
            # A trial without evals.jsonl (listed by scoring.records.read_records) has no curve to draw.
            usable = bool(trial.get("evals_file", True))
            evals = load_evals(Path(trial["record_dir"])) if usable else pd.DataFrame()
            if evals.empty or f"validation/{metric}" not in evals:
                if j == 0:
                    ax.plot([], [], color=colours[i % len(colours)], label=f"{submission} (no curve: evals missing)")
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


def plot_profiles(board, out: Path) -> Path:
    """Performance profiles rho_s(tau) on [1, tau_max], by time and by steps, side by side."""
    import numpy as np

    from scoring.scores import profile

    taus = np.linspace(1.0, board.tau_max, 400)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, r, title in ((axes[0], board.time_ratios, "time"), (axes[1], board.step_ratios, "steps")):
        rho = profile(r, taus)
        for i, submission in enumerate(board.submissions):
            ax.step(taus, rho[i], where="post", lw=1.6, label=submission)
        ax.set_xlabel(f"tau (ratio to the fastest, by {title})")
        ax.set_title(f"performance profile by {title}")
        ax.set_xlim(1.0, board.tau_max)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of workloads within tau")
    axes[1].legend(fontsize=8, loc="lower right")
    return _save(fig, out)


def plot_time_to_target(board, out: Path) -> Path:
    """Per workload: each submission's median time to target, with every study's time as a dot."""
    import numpy as np

    n = len(board.workloads)
    fig, axes = plt.subplots(1, n, figsize=(max(7.5, 4.2 * n), 0.35 * len(board.submissions) + 2.4), squeeze=False)
    for j, workload in enumerate(board.workloads):
        ax = axes[0, j]
        finite = board.study_times[:, j, :][np.isfinite(board.study_times[:, j, :])]
        cap = (finite.max() * 1.15) if finite.size else 1.0
        for i in range(len(board.submissions)):
            studies = board.study_times[i, j, :]
            studies = studies[~np.isnan(studies)]
            shown = np.where(np.isfinite(studies), studies, cap)
            ax.scatter(shown, np.full(shown.shape, i), s=14, color="tab:blue", alpha=0.6, zorder=3)
            median = board.times[i, j]
            ax.barh(i, median if np.isfinite(median) else cap, color="tab:blue" if np.isfinite(median) else "lightgrey",
                    alpha=0.35)
        ax.axvline(cap, color="grey", ls=":", lw=1)
        ax.text(cap, -0.9, "not reached", fontsize=7, ha="right", color="grey")
        ax.set_yticks(range(len(board.submissions)), board.submissions if j == 0 else [""] * len(board.submissions))
        ax.set_xlabel("time to target (s)")
        ax.set_title(workload, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("median time to target over studies (bars) and each study's best trial (dots)", fontsize=10)
    return _save(fig, out)


def plot_sensitivity(trials: pd.DataFrame, submission: str, out: Path) -> Path | None:
    """Best validation value of every trial of ``submission`` against each of its searched
    hyperparameters (log axis for positive ranges spanning a decade or more)."""
    import numpy as np

    subset = trials[trials["submission"] == submission]
    columns = [c for c in subset.columns
               if c.startswith("hp.") and pd.to_numeric(subset[c], errors="coerce").nunique() > 1]
    if subset.empty or not columns:
        return None
    fig, axes = plt.subplots(1, len(columns), figsize=(3.6 * len(columns), 3.4), squeeze=False)
    for ax, column in zip(axes[0], columns):
        x = pd.to_numeric(subset[column], errors="coerce")
        for key, group in subset.assign(_x=x).groupby(subset["workload"] + "-" + subset["size"]):
            reached = group["status"] == "reached"
            ax.scatter(group["_x"], group["best_validation"], s=16, label=key, alpha=0.8,
                       edgecolors=np.where(reached, "black", "none"))
        if (x > 0).all() and x.max() / x.min() >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(column[3:])
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("best validation value")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(f"{submission}: hyperparameter sensitivity (black edge: reached the target)", fontsize=10)
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
