"""One workload's time-to-target bars: each submission's time (the table's), its studies', the
fastest and tau_max x it, and "not reached" at the budget; with their caption's words and legend.
The panels of :mod:`scoring.plots.time_to_target` and the one-workload chart of
:mod:`scoring.plots.profiles`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from scoring.plots.figure import SMALL, TITLE, linear_ticks, log_ticks, rgba, tick_label
from scoring.style import MISSING_COLOUR, Styles

LIMIT_COLOUR = "#c00000"  # the tau_max x fastest line


def time_what(tau_max: float, budget_known: bool) -> str:
    return (f"bar = the table's time (the median over studies of each study's fastest trial), ticks = each "
            f"study's fastest trial; red dashed = {tau_max:g}x the fastest: a time beyond it scores 0 (hatched bar); "
            f"not reached: a grey dotted bar drawn to the "
            + ("budget (max_runtime_s)" if budget_known else "right edge (budget unknown)")
            + "; 'not run': no record of the workload")


def time_panel(ax: plt.Axes, board: Any, j: int, rows: Sequence[str], styles: Styles, budget: float | None,
                names: Sequence[str] | None) -> float:
    """One workload's time-to-target bars for ``rows`` (top to bottom), y labels ``names`` (None:
    none). Returns the fastest time (over all submissions: the ratios' reference)."""
    index = {s: i for i, s in enumerate(board.submissions)}
    ids = [index[s] for s in rows]
    times = board.times[ids, j]
    studies = board.study_times[ids, j, :]
    fastest = float(np.min(board.times[:, j])) if board.times.size else math.inf  # the ratios' reference
    limit = board.tau_max * fastest
    finite_studies = studies[np.isfinite(studies)]
    slowest = float(finite_studies.max()) if finite_studies.size else (limit if np.isfinite(limit) else 1.0)
    known = budget is not None and np.isfinite(budget) and budget > 0
    edge = float(budget) if known else 1.15 * slowest  # where "not reached" is drawn
    low = float(finite_studies.min()) if finite_studies.size else edge / 100
    log = edge / low > 20
    left = low / 1.6 if log else 0.0
    reached = np.isfinite(times)
    beyond = reached & (times > limit * (1 + 1e-12))
    colours = np.array([styles[s].colour for s in rows], dtype=object)
    y = np.arange(len(rows))
    ran = board.studies[ids, j] > 0 if board.studies is not None else np.ones(len(ids), dtype=bool)
    faces = ["none" if not r else ("white" if b else rgba(c, 0.55)) for r, b, c in zip(reached, beyond, colours)]
    ax.barh(y[ran], (np.where(reached, times, edge) - left)[ran], left=left, height=np.where(reached, 0.7, 0.3)[ran],
            color=[f for f, r in zip(faces, ran) if r], linewidth=0.8,
            edgecolor=[c if r else MISSING_COLOUR for c, r, shown in zip(colours, reached, ran) if shown],
            hatch=["////" if b else (None if r else "....") for r, b, shown in zip(reached, beyond, ran) if shown],
            zorder=2)
    for row in y[~ran]:  # no record of this workload: nothing to draw, it never trained here
        ax.text(0.01, row, "not run", transform=ax.get_yaxis_transform(), va="center", fontsize=SMALL,
                color=MISSING_COLOUR)
    # The table's time in the submission's own marker (filled); not reached: hollow, at the budget.
    markers = np.array([styles[s].marker or "o" for s in rows], dtype=object)
    for marker in sorted(set(markers)):
        for mask, filled in ((markers == marker) & reached, True), ((markers == marker) & ~reached & ran, False):
            if mask.any():
                ax.scatter(np.where(reached, times, edge)[mask], y[mask], marker=marker, s=26, zorder=4,
                           facecolors=list(colours[mask]) if filled else "white", edgecolors=list(colours[mask]),
                           linewidths=0.9)
    # Every study's fastest trial: a black tick on the bar; a study that never reached: hollow grey at the budget.
    depth = studies.shape[1]
    dy = np.linspace(-0.22, 0.22, depth) if depth > 1 else np.zeros(1)
    sy, sk = np.nonzero(~np.isnan(studies))
    values = studies[sy, sk]
    ok = np.isfinite(values)
    ax.scatter(values[ok], sy[ok], s=30, marker="|", color="black", linewidths=0.8, zorder=3)
    if (~ok).any():
        ax.scatter(np.full(int((~ok).sum()), edge), sy[~ok] + dy[sk[~ok]], s=9, marker="o", facecolors="none",
                   edgecolors=MISSING_COLOUR, linewidths=0.7, zorder=3)
    if np.isfinite(fastest):
        ax.axvline(fastest, color="black", lw=0.8, zorder=1)
        ax.axvline(limit, color=LIMIT_COLOUR, ls="--", lw=1.2, zorder=5)
    ax.axvline(edge, color=MISSING_COLOUR, ls=":", lw=1.2, zorder=1)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(left, edge * 1.5)
        ticks = log_ticks(left, edge * 1.5)
        ax.set_xticks(ticks, [tick_label(t) for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())  # minor ticks: slow, and they crowd
    else:
        ax.set_xlim(0.0, edge * 1.04)
        ax.set_xticks(linear_ticks(0.0, edge * 1.04))
    ax.set_ylim(len(rows) - 0.5, -0.6)
    ax.set_yticks(y, list(names) if names is not None else [])
    ax.tick_params(labelsize=SMALL)
    ax.set_xlabel("time to target (s)" + (", log scale" if log else ""), fontsize=SMALL)
    head = (f"{board.workloads[j]}: fastest {fastest:.3g} s, {board.tau_max:g}x = {limit:.3g} s"
            + (" (past the budget)" if limit > edge else "") if np.isfinite(fastest)
            else f"{board.workloads[j]}: no submission reached the target")
    ax.set_title(head + ("" if known else " (budget unknown)"), fontsize=TITLE)
    ax.grid(alpha=0.3, axis="x")
    return fastest


def time_legend(tau_max: float, budget_known: bool) -> list[Any]:
    return [Patch(facecolor=rgba("#1f77b4", 0.55), edgecolor="#1f77b4", label="the table's time (colour: submission)"),
            Patch(facecolor="white", edgecolor="#1f77b4", hatch="////", label=f"beyond {tau_max:g}x the fastest: "
                  f"scores 0"),
            Patch(facecolor="none", edgecolor=MISSING_COLOUR, hatch="....",
                  label="not reached: drawn to the budget" if budget_known else "not reached (budget unknown)"),
            Line2D([], [], color="black", lw=0.8, label="the fastest"),
            Line2D([], [], color=LIMIT_COLOUR, ls="--", lw=1.2, label=f"{tau_max:g}x the fastest"),
            Line2D([], [], color=MISSING_COLOUR, ls=":", lw=1.2, label="budget (max_runtime_s)"),
            Line2D([], [], color="black", marker="|", ls="", label="a study's fastest trial"),
            Line2D([], [], color=MISSING_COLOUR, marker="o", mfc="none", ls="", markersize=4,
                   label="a study that never reached")]
