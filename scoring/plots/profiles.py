"""Performance profiles by time and by steps (:func:`plot_profiles`); a board of one workload
gets a chart of each submission's time to target instead (a profile would be one step each)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection

from scoring.plots.figure import SMALL, TITLE, Frame, Plot, legend_width, linear_ticks, save_png, text_width
from scoring.plots.time_bars import time_legend, time_panel, time_what
from scoring.style import OTHER_COLOUR, Styles, board_styles


def plot_profiles(board: Any, out: Path, *, styles: Styles | None = None,
                  budgets: Mapping[str, float] | None = None) -> Plot:
    """Performance profiles rho_s(tau) on [1, tau_max], by time and by steps, side by side.

    Each line is the exact step function (break points at the submission's ratios). Equal
    profiles would hide each other, so labelled lines are offset vertically by a little less
    than half a step in all (said in the title). With one workload a profile is one vertical
    step per submission: the time-to-target dot chart is drawn instead, and its title says why.
    """
    styles = styles or board_styles(board)
    if len(board.workloads) == 1:
        return _single_workload(board, out, styles, budgets or {})
    n_work, shown = len(board.workloads), styles.shown
    scores = dict(zip(board.table["submission"], board.table["score"]))
    rank = dict(zip(board.table["submission"], board.table["rank"]))
    step = min(0.006, 0.4 / (n_work * max(len(shown) - 1, 1)))
    offsets = {s: ((len(shown) - 1) / 2 - k) * step for k, s in enumerate(shown)}  # the best ranked on top
    labels = [f"{rank[s]}. {s} ({scores[s]:.2f})" for s in shown]
    zero = [s for s in board.table["submission"] if scores[s] <= 0]
    lines = [f"Performance profiles over {n_work} workloads: the fraction of workloads on which a submission is "
             f"within tau x the fastest (score = the normalised area under the time profile)",
             f"Lines are offset vertically by up to ±{step * (len(shown) - 1) / 2:.3f} so that equal profiles stay "
             f"visible"]
    if zero:
        listed = ", ".join(zero) if len(zero) <= 8 else f"{len(zero)} submissions"
        lines.append(f"Score 0 (on no workload within {board.tau_max:g}x the fastest; their line is at 0): {listed}")
    lines += [styles.note] if styles.note else []
    frame = Frame(1, 2, 4.0, 3.2, left=0.65, bottom=0.5, right=legend_width(labels, styles.legend_columns()),
                   title=lines, sharey=True, panel_title=True)
    index = {s: i for i, s in enumerate(board.submissions)}
    handles = []
    for ax, r, by in ((frame.axes[0, 0], board.time_ratios, "time"), (frame.axes[0, 1], board.step_ratios, "steps")):
        others = [_profile_steps(r[index[s]], board.tau_max, n_work) for s in board.submissions
                  if not styles.labelled(s)]
        if others:
            ax.add_collection(LineCollection([_step_vertices(*xy) for xy in others], colors=OTHER_COLOUR, lw=0.6,
                                             zorder=1))
        for s, label in zip(reversed(shown), reversed(labels)):  # the best ranked drawn last, on top
            xs, ys = _profile_steps(r[index[s]], board.tau_max, n_work)
            line = ax.plot(xs, ys + offsets[s], drawstyle="steps-post", lw=1.4, markersize=3.5, label=label,
                           zorder=3, **styles[s].line())[0]
            if by == "time":
                handles.append(line)
        ax.set_xlabel(f"tau: ratio to the fastest, by {by}", fontsize=TITLE)
        ax.set_title(f"performance profile by {by}", fontsize=TITLE)
        ax.set_xlim(1.0, board.tau_max)
        ax.set_xticks(linear_ticks(1.0, board.tau_max))
        ax.set_ylim(-0.06, 1.06)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=SMALL)
    frame.axes[0, 0].set_ylabel("fraction of workloads within tau", fontsize=TITLE)
    frame.legend_right(handles[::-1], ncol=styles.legend_columns(), title="rank. submission (score)")
    save_png(frame.fig, out)
    return Plot(out, ". ".join(lines) + ". Exact values are in the table.")


def _profile_steps(r: np.ndarray, tau_max: float, n_work: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact step function rho(tau) on [1, tau_max]: its break points and its values there."""
    inside = np.sort(r[np.isfinite(r) & (r <= tau_max)])
    xs = np.concatenate([[1.0], np.maximum(inside, 1.0), [tau_max]])
    ys = np.searchsorted(inside, xs, side="right") / n_work
    return xs, ys


def _step_vertices(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The corners of the "steps-post" line through (xs, ys), for a LineCollection."""
    return np.column_stack([np.repeat(xs, 2)[1:], np.repeat(ys, 2)[:-1]])


def _single_workload(board: Any, out: Path, styles: Styles, budgets: Mapping[str, float]) -> Plot:
    """profiles.png for a board of one workload: each submission's time to target as a dot chart."""
    workload = board.workloads[0]
    rows = list(styles.shown)
    scores = board.table.set_index("submission")["score"]
    names = [f"{s} (score {scores[s]:.2f})" for s in rows]
    budget = budgets.get(workload)
    lines = [f"One workload ({workload}): a performance profile would be one vertical step per submission, so each "
             f"submission's time to target is drawn instead (score = max(0, {board.tau_max:g} - t / fastest) / "
             f"{board.tau_max - 1:g})", time_what(board.tau_max, budget is not None)]
    lines += [styles.note.replace("drawn thin and grey", "left out (see the table)")] if styles.note else []
    legend = time_legend(board.tau_max, budget is not None)
    frame = Frame(1, 1, 5.8, 0.22 * len(rows) + 0.35, left=text_width(names) + 0.25, bottom=0.5, right=0.3,
                   title=lines, panel_title=True, top_axis=True, below=[h.get_label() for h in legend])
    ax = frame.axes[0, 0]
    fastest = time_panel(ax, board, 0, rows, styles, budget, names)
    if np.isfinite(fastest):
        top = ax.secondary_xaxis("top", functions=(lambda t: t / fastest, lambda r: r * fastest))
        top.set_xlabel("ratio to the fastest", fontsize=SMALL)
        top.tick_params(labelsize=SMALL)
    frame.legend_below(legend)
    save_png(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")
