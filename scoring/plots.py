"""The leaderboard's plots, drawn to agree with its table.

Every plot function returns a :class:`Plot`: the PNG's path (``os.PathLike``, so callers that
want a path keep working) and a caption that says what is drawn and what is left out. Each
submission has the same colour, line style and marker in every plot (:mod:`scoring.style`).

- :func:`plot_profiles`: performance profiles by time and by steps; with a single workload, a
  dot chart of each submission's time to target instead (a profile would be one step each).
- :func:`plot_time_to_target`: per workload, each submission's time (the table's), its studies,
  the tau_max x fastest line beyond which a time scores 0, and "not reached" at the budget; above
  ``PANELS_UP_TO`` workloads one heat map of the ratios to the fastest instead.
- :func:`plot_validation_curves`: per workload, each submission's *median* study, the study the
  table's time comes from, so a submission the table says did not reach never crosses the target.
- :func:`plot_sensitivity`: the best validation value of every trial against each searched
  hyperparameter, on the search space's scale; filled: reached the target, hollow: did not.
- :func:`leaderboard_plots`: all of them for a leaderboard (what ``write_outputs`` embeds).

Figures are laid out by hand, in inches computed from their content (no layout engine: it
doubles the drawing time), and written as 256-colour zlib-compressed PNGs, a few tens of kB
each, so that the self-contained HTML stays small and a 200-submission board draws in seconds.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import path as mpath
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap, Normalize, to_rgba
from matplotlib.lines import Line2D
from matplotlib.markers import MarkerStyle
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullLocator
from PIL import Image

from scoring.records import evaluation_curve
from scoring.style import MISSING_COLOUR, OTHER_COLOUR, Style, Styles, board_styles, submission_styles

DPI = 100
MAX_PIXELS = 2_400_000  # larger figures are drawn at a lower dpi (their size on the page is the HTML's)
SENSITIVITY_ALL = 16  # up to this many submissions every one gets a sensitivity plot ...
SENSITIVITY_TOP = 3  # ... else only the best ranked ones (each plot costs time and page size)
PANELS_UP_TO = 6  # up to this many workloads: time to target a panel each (else a heat map), curves a figure each
# (else small multiples in one figure)
LIMIT_COLOUR = "#c00000"  # the tau_max x fastest line
SMALL = 7  # font size of ticks and legends (points)
TITLE = 8
CHAR = 0.6 / 72  # inches per character per point of font size (DejaVu Sans, a generous average)
LINE = 1.3 / 72  # inches per line of text per point of font size


@dataclass(frozen=True)
class Plot:
    """A written PNG and the caption that goes with it. ``os.PathLike``: ``Path(plot)`` and
    ``str(plot)`` give the file, so it can stand wherever a path did."""

    path: Path
    caption: str

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)


# ------------------------------------------------------------------------------------ all plots
PLOT_KINDS = ("profiles", "time_to_target", "curves", "sensitivity")


def leaderboard_plots(board: Any, trials: pd.DataFrame, out: Path, seconds: dict[str, float] | None = None,
                      kinds: Sequence[str] = PLOT_KINDS) -> dict[str, Plot]:
    """Every plot of a leaderboard, by the name the HTML shows: ``profiles``, ``time_to_target``,
    ``curves <workload>-<size>`` (when the trials have records on disk; above ``PANELS_UP_TO``
    workloads one ``curves`` figure of them all) and ``sensitivity <name>`` (every submission up to
    ``SENSITIVITY_ALL`` of them, else the ``SENSITIVITY_TOP`` best ranked). Only those of ``kinds``
    (of ``PLOT_KINDS``); ``seconds``, when given, receives the time each kind took."""
    styles, budgets = board_styles(board), workload_budgets(trials)
    seconds = {} if seconds is None else seconds
    started = time.perf_counter()

    def lap(kind: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[kind] = round(now - started, 3)
        started = now

    plots = {}
    if "profiles" in kinds:
        plots["profiles"] = plot_profiles(board, out / "profiles.png", styles=styles, budgets=budgets)
        lap("profiles")
    if "time_to_target" in kinds:
        plots["time_to_target"] = plot_time_to_target(board, out / "time_to_target.png", styles=styles,
                                                      budgets=budgets)
        lap("time_to_target")
    if "curves" in kinds and "record_dir" in trials:
        picks = median_study_trials(trials)
        keys = sorted(set(zip(trials["workload"], trials["size"])))
        if len(keys) > PANELS_UP_TO:
            plots["curves"] = plot_curves_grid(trials, out / "curves.png", styles=styles, board=board, picks=picks)
        for workload, size in keys if len(keys) <= PANELS_UP_TO else ():
            plots[f"curves {workload}-{size}"] = plot_validation_curves(
                trials, workload, size, out / f"curves_{workload}_{size}.png", styles=styles, board=board, picks=picks)
        lap("curves")
    if "sensitivity" in kinds:
        plots.update(sensitivity_plots(board, trials, out, styles=styles))
        lap("sensitivity")
    return plots


def workload_budgets(trials: pd.DataFrame) -> dict[str, float]:
    """``{"<workload>-<size>": budget in seconds}``: the largest ``max_runtime_s`` of its trials."""
    if "max_runtime_s" not in trials or trials.empty:
        return {}
    budget = pd.to_numeric(trials["max_runtime_s"], errors="coerce")
    keys = trials["workload"].astype(str) + "-" + trials["size"].astype(str)
    found = budget.groupby(keys).max()
    return {k: float(v) for k, v in found.items() if np.isfinite(v) and v > 0}


# ------------------------------------------------------------------------------------ profiles
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
    frame = _Frame(1, 2, 4.0, 3.2, left=0.65, bottom=0.5, right=_legend_width(labels, styles.legend_columns()),
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
        ax.set_xticks(_linear_ticks(1.0, board.tau_max))
        ax.set_ylim(-0.06, 1.06)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=SMALL)
    frame.axes[0, 0].set_ylabel("fraction of workloads within tau", fontsize=TITLE)
    frame.legend_right(handles[::-1], ncol=styles.legend_columns(), title="rank. submission (score)")
    _save(frame.fig, out)
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
             f"{board.tau_max - 1:g})", _time_what(board.tau_max, budget is not None)]
    lines += [styles.note.replace("drawn thin and grey", "left out (see the table)")] if styles.note else []
    legend = _time_legend(board.tau_max, budget is not None)
    frame = _Frame(1, 1, 5.8, 0.22 * len(rows) + 0.35, left=_text_width(names) + 0.25, bottom=0.5, right=0.3,
                   title=lines, panel_title=True, top_axis=True, below=[h.get_label() for h in legend])
    ax = frame.axes[0, 0]
    fastest = _time_panel(ax, board, 0, rows, styles, budget, names)
    if np.isfinite(fastest):
        top = ax.secondary_xaxis("top", functions=(lambda t: t / fastest, lambda r: r * fastest))
        top.set_xlabel("ratio to the fastest", fontsize=SMALL)
        top.tick_params(labelsize=SMALL)
    frame.legend_below(legend)
    _save(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")


# ------------------------------------------------------------------------------------ time to target
def plot_time_to_target(board: Any, out: Path, *, styles: Styles | None = None,
                        budgets: Mapping[str, float] | None = None) -> Plot:
    """Per workload: each submission's time (the table's: the median over studies of each study's
    fastest trial) as a bar, every study's time as a tick, the fastest time and tau_max x it (a
    time beyond it scores 0: its bar is hatched), and "not reached" drawn to the budget
    (``max_runtime_s``). Above ``PANELS_UP_TO`` workloads, one heat map of the ratios instead."""
    styles = styles or board_styles(board)
    budgets = budgets or {}
    if len(board.workloads) > PANELS_UP_TO:
        return _ratio_heatmap(board, out, styles, budgets)
    rows = list(styles.shown)
    n = len(board.workloads)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    known = all(budgets.get(w) is not None for w in board.workloads)
    lines = [f"Time to target per workload: {_time_what(board.tau_max, known)}"]
    lines += [styles.note.replace("drawn thin and grey", "left out (see the table)")] if styles.note else []
    legend = _time_legend(board.tau_max, known)
    frame = _Frame(nrows, ncols, 3.2, 0.2 * len(rows) + 0.3, left=_text_width(rows) + 0.25, bottom=0.5, right=0.3,
                   title=lines, panel_title=True, hspace=0.75, wspace=0.25, below=[h.get_label() for h in legend])
    for j in range(n):
        _time_panel(frame.axes[j // ncols, j % ncols], board, j, rows, styles, budgets.get(board.workloads[j]),
                    rows if j % ncols == 0 else None)
    for k in range(n, nrows * ncols):
        frame.axes[k // ncols, k % ncols].set_visible(False)
    frame.legend_below(legend)
    _save(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")


def _time_what(tau_max: float, budget_known: bool) -> str:
    return (f"bar = the table's time (the median over studies of each study's fastest trial), ticks = each "
            f"study's fastest trial; red dashed = {tau_max:g}x the fastest: a time beyond it scores 0 (hatched bar); "
            f"not reached: a grey dotted bar drawn to the "
            + ("budget (max_runtime_s)" if budget_known else "right edge (budget unknown)")
            + "; 'not run': no record of the workload")


def _time_panel(ax: plt.Axes, board: Any, j: int, rows: Sequence[str], styles: Styles, budget: float | None,
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
    faces = ["none" if not r else ("white" if b else _rgba(c, 0.55)) for r, b, c in zip(reached, beyond, colours)]
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
        ticks = _log_ticks(left, edge * 1.5)
        ax.set_xticks(ticks, [_tick_label(t) for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())  # minor ticks: slow, and they crowd
    else:
        ax.set_xlim(0.0, edge * 1.04)
        ax.set_xticks(_linear_ticks(0.0, edge * 1.04))
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


def _time_legend(tau_max: float, budget_known: bool) -> list[Any]:
    return [Patch(facecolor=_rgba("#1f77b4", 0.55), edgecolor="#1f77b4", label="the table's time (colour: submission)"),
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


def _ratio_heatmap(board: Any, out: Path, styles: Styles, budgets: Mapping[str, float]) -> Plot:
    """time_to_target.png for many workloads: submissions x workloads, coloured by the ratio to
    the fastest; beyond tau_max (scores 0) grey with a cross; not reached white with a ring."""
    rows = list(styles.shown)
    index = {s: i for i, s in enumerate(board.submissions)}
    r = board.time_ratios[[index[s] for s in rows]]
    tau = board.tau_max
    fastest = np.min(board.times, axis=0)
    columns = [f"{w} ({_tick_label(float(f))} s)" if np.isfinite(f) else f"{w} (none)"
               for w, f in zip(board.workloads, fastest)]
    spans = sorted({f"{_tick_label(b)}\u00a0s" for b in budgets.values()})  # no-break space: kept on one line
    lines = [f"Time to target over {len(board.workloads)} workloads (more than {PANELS_UP_TO}: one heat map instead of "
             f"one panel each): the table's time (median over studies of each study's fastest trial) as a ratio to "
             f"the workload's fastest (in brackets)",
             f"Grey with a cross: beyond {tau:g}x the fastest (scores 0); white with a ring: not reached within the "
             f"budget (max_runtime_s: {', '.join(spans) if spans else 'unknown'}); blank: not run (no record)"]
    lines += [styles.note.replace("drawn thin and grey", "left out (see the table)")] if styles.note else []
    cmap = ListedColormap(plt.get_cmap("YlGnBu")(np.linspace(0.95, 0.2, 256)))  # ratio 1 dark, tau_max light
    frame = _Frame(1, 1, 0.3 * len(columns), 0.2 * len(rows), left=_text_width(rows) + 0.25,
                   bottom=_text_width(columns) * 0.75 + 0.3, right=1.1, title=lines)
    ax = frame.axes[0, 0]
    within = np.isfinite(r) & (r <= tau)
    image = np.ones((*r.shape, 4))
    image[within] = cmap(Normalize(1.0, tau)(r[within]))
    beyond = np.isfinite(r) & (r > tau)
    image[beyond] = to_rgba("#d0d0d0")
    ax.imshow(image, aspect="auto", interpolation="nearest")
    by, bx = np.nonzero(beyond)
    ax.scatter(bx, by, marker="x", s=14, color="black", linewidths=0.8)
    ran = board.studies[[index[s] for s in rows]] > 0 if board.studies is not None else np.ones(r.shape, dtype=bool)
    ny, nx = np.nonzero(~np.isfinite(r) & ran)  # not run (no record): left blank
    ax.scatter(nx, ny, marker="o", s=14, facecolors="none", edgecolors=MISSING_COLOUR, linewidths=0.8)
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), rows)
    ax.tick_params(labelsize=SMALL)
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    bar = frame.fig.add_axes(frame.beside(ax, 0.12, 0.15))
    frame.fig.colorbar(ScalarMappable(Normalize(1.0, tau), cmap), cax=bar)
    bar.set_ylabel("ratio to the fastest", fontsize=SMALL)
    bar.tick_params(labelsize=SMALL)
    _save(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")


# ------------------------------------------------------------------------------------ curves
def plot_validation_curves(trials: pd.DataFrame, workload: str, size: str, out: Path, *,
                           styles: Styles | None = None, board: Any = None, picks: pd.DataFrame | None = None) -> Plot:
    """Validation metric vs submission time on ``workload``/``size``; writes a PNG.

    Per submission one curve: the trial behind the table's time (:func:`median_study_trials`;
    ``picks``: its result for ``trials``, when already at hand). So a submission the table says did
    not reach does not cross the target here. Where a ``board`` says otherwise (studies that never
    ended count there as not reached), the curve is dashed and its label says "not the table's
    median study".
    """
    subset = trials[(trials["workload"] == workload) & (trials["size"] == size)]
    if styles is None:
        styles = board_styles(board) if board is not None else submission_styles(trials["submission"])
    names = _curve_names(styles, subset)
    chosen = _chosen(picks if picks is not None else median_study_trials(subset), workload, size)
    table_time = _table_times(board, f"{workload}-{size}")
    metric = subset["metric"].iloc[0]
    labels, mismatched = {}, []
    for s in names:
        pick = chosen.loc[s]
        shown_time = table_time.get(s, pick["study_time"])
        labels[s] = f"{s}: {_seconds(shown_time)}"
        if pick["studies"] > 1:
            labels[s] += f" (study {pick['position']} of {pick['studies']})"
        if np.isfinite(shown_time) != np.isfinite(pick["study_time"]):
            mismatched.append(s)
            labels[s] += ", not the table's median study"
    lines = [f"{workload} ({size}): validation {metric} vs submission time, per submission its median study",
             CURVES_RULE + ". Label: the table's time"]
    if len(names) < subset["submission"].nunique():
        lines.append(styles.note.replace("the others are drawn thin and grey", "the others are not drawn"))
    if mismatched:
        lines.append(f"Dashed: the table counts studies that never ended as not reached ({', '.join(mismatched)})")
    entries = [*labels.values(), "target", "budget"]
    columns = styles.legend_columns(len(entries))
    frame = _Frame(1, 1, 6.2, 3.8, left=0.75, bottom=0.5, right=_legend_width(entries, columns), title=lines)
    handles = _curves_panel(frame.axes[0, 0], subset, chosen, names, styles, labels, set(mismatched))
    frame.legend_right(handles, ncol=columns, title="submission: the table's time")
    _save(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")


CURVES_RULE = ("Studies are ordered by their fastest trial's time to target, as in the table's median (even count: "
               "the slower middle one); drawn: that study's fastest trial, or its best if none reached")


def plot_curves_grid(trials: pd.DataFrame, out: Path, *, styles: Styles | None = None, board: Any = None,
                     picks: pd.DataFrame | None = None) -> Plot:
    """Every workload's validation curves (as :func:`plot_validation_curves` draws one) as small
    multiples in one figure with one legend: what a board of more than ``PANELS_UP_TO`` workloads
    gets instead of a figure each (each submission keeps its style in every panel, so one legend
    serves them all; each panel's times are in the table)."""
    if styles is None:
        styles = board_styles(board) if board is not None else submission_styles(trials["submission"])
    picks = picks if picks is not None else median_study_trials(trials)
    keys = sorted(set(zip(trials["workload"], trials["size"])))
    ncols = min(len(keys), 4)
    nrows = math.ceil(len(keys) / ncols)
    lines = [f"Validation metric vs submission time on each of {len(keys)} workloads, per submission its median "
             f"study", CURVES_RULE + ". Dashed: not the table's median study (the table counts studies that never "
             "ended as not reached); black dashed: the target; dotted: the budget"]
    lines += [styles.note.replace("the others are drawn thin and grey", "the others are not drawn")] if styles.note \
        else []
    present = set(trials["submission"])
    legend_names = [s for s in styles.ranked if styles.labelled(s) and s in present]
    columns = styles.legend_columns(len(legend_names))
    frame = _Frame(nrows, ncols, 2.6, 1.9, left=0.55, bottom=0.45, right=_legend_width(legend_names, columns),
                   title=lines, panel_title=True, wspace=0.45, hspace=0.7)
    subsets = dict(iter(trials.groupby(["workload", "size"], sort=False)))
    chosen_of = {key: group.set_index("submission", drop=False)
                 for key, group in picks.groupby(["workload", "size"], sort=False)}
    for k, (workload, size) in enumerate(keys):
        ax = frame.axes[k // ncols, k % ncols]
        subset, chosen = subsets[(workload, size)], chosen_of[(workload, size)]
        table_time = _table_times(board, f"{workload}-{size}")
        names = _curve_names(styles, subset)
        mismatched = {s for s in names
                      if np.isfinite(table_time.get(s, chosen.loc[s, "study_time"]))
                      != np.isfinite(chosen.loc[s, "study_time"])}
        _curves_panel(ax, subset, chosen, names, styles, {s: s for s in names}, mismatched, compact=True)
        ax.text(0.5, 1.03, f"{workload} ({size})", transform=ax.transAxes, ha="center", va="bottom",
                fontsize=SMALL)  # not set_title: its placement pass costs more than the panel
    for k in range(len(keys), nrows * ncols):
        frame.axes[k // ncols, k % ncols].set_visible(False)
    frame.legend_right([Line2D([], [], lw=1.4, label=s, **styles.by_name[s].line()) for s in legend_names],
                       ncol=columns, title="submission")
    _save(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")


def _curve_names(styles: Styles, subset: pd.DataFrame) -> list[str]:
    """The submissions whose curves are drawn, in legend order: the labelled ones (then any not on
    the board)."""
    present = set(subset["submission"])
    names = [s for s in styles.ranked if styles.labelled(s) and s in present]
    return names + sorted(present - set(styles.ranked))


def _chosen(picks: pd.DataFrame, workload: str, size: str) -> pd.DataFrame:
    """The rows of ``picks`` (see :func:`median_study_trials`) of one workload, by submission."""
    return picks[(picks["workload"] == workload) & (picks["size"] == size)].set_index("submission", drop=False)


def _table_times(board: Any, key: str) -> dict[str, float]:
    """Each submission's time on workload ``key`` as the board's table has it ({} without a board)."""
    if board is None or key not in board.workloads:
        return {}
    j = board.workloads.index(key)
    return {s: board.times[i, j] for i, s in enumerate(board.submissions)}


def _curves_panel(ax: plt.Axes, subset: pd.DataFrame, chosen: pd.DataFrame, names: Sequence[str], styles: Styles,
                  labels: Mapping[str, str], mismatched: set[str], compact: bool = False) -> list[Any]:
    """Draw each of ``names``' chosen trial's curve, the target and the budget on ``ax``; the handles."""
    metric = subset["metric"].iloc[0]
    target = float(subset["target"].iloc[0])
    budget = pd.to_numeric(subset["max_runtime_s"], errors="coerce").max() if "max_runtime_s" in subset else None
    column = f"validation/{metric}"
    handles, bundle = [], _CurveBundle()
    for s in names:
        row, mismatch = chosen.loc[s], s in mismatched
        style = styles.by_name.get(s) or _own_style(s)
        usable = bool(row.get("evals_file", True)) and "record_dir" in row
        curve = evaluation_curve(Path(row["record_dir"]), column) if usable else None
        if curve is None:
            if not compact:
                handles.append(ax.plot([], [], lw=1.4, label=f"{labels[s]} (no curve: evals missing)",
                                       **style.line())[0])
            continue
        x, v = curve
        look = {**style.line(), **({"linestyle": (0, (2, 2))} if mismatch else {})}
        if compact:
            bundle.add(x, v, look, lw=0.9 if mismatch else 1.1, alpha=0.6 if mismatch else 0.95)
            continue
        handles.append(ax.plot(x, v, lw=0.9 if mismatch else 1.4, alpha=0.6 if mismatch else 0.95,
                               markevery=[len(x) - 1], markersize=5, label=labels[s], **look)[0])
    bundle.draw(ax)
    handles.append(ax.axhline(target, color="black", ls="--", lw=1, label="target"))
    if budget is not None and np.isfinite(budget):
        handles.append(ax.axvline(budget, color=MISSING_COLOUR, ls=":", lw=1.2, label="budget"))
    if not compact:
        ax.set_xlabel("submission time (s)", fontsize=TITLE)
        ax.set_ylabel(f"validation {metric}", fontsize=TITLE)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.yaxis.set_major_locator(MaxNLocator(3))
    if bool(subset["higher_is_better"].iloc[0]) and 0 < target <= 1:  # a fraction (accuracy): zoom on the target
        ax.set_ylim(bottom=max(0.0, target - 0.15), top=min(1.0, target + 0.05))  # (other scales: matplotlib's)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=SMALL)
    return handles


class _CurveBundle:
    """Curves drawn as one LineCollection and their end markers as one scatter, each point with its
    own marker's path: what a small-multiples panel of many curves draws in a fraction of the time
    of a Line2D each (the figure of 20 panels of 20 curves: ~1 s less, and ~0.3 s less again than a
    scatter per marker shape). The look is the same: colour, line style, width, alpha, and the
    submission's marker on its last point."""

    def __init__(self) -> None:
        self.segments: list[np.ndarray] = []
        self.colours: list[tuple[float, float, float, float]] = []
        self.styles: list[Any] = []
        self.widths: list[float] = []
        self.ends: list[tuple[float, float, tuple[float, float, float, float], str]] = []  # x, y, colour, marker

    def add(self, x: np.ndarray, v: np.ndarray, look: Mapping[str, Any], lw: float, alpha: float) -> None:
        colour = _rgba(look["color"], alpha)
        self.segments.append(np.column_stack((x, v)))
        self.colours.append(colour)
        self.styles.append(look["linestyle"])
        self.widths.append(lw)
        if look.get("marker"):
            self.ends.append((float(x[-1]), float(v[-1]), colour, look["marker"]))

    def draw(self, ax: plt.Axes) -> None:
        if not self.segments:
            return
        ax.add_collection(LineCollection(self.segments, colors=self.colours, linestyles=self.styles,
                                         linewidths=self.widths, zorder=2))
        if self.ends:
            x, y, colours, markers = zip(*self.ends)
            ends = ax.scatter(x, y, s=16, c=list(colours), zorder=3)
            ends.set_paths([marker_path(m) for m in markers])  # point i drawn with path i
        ax.autoscale_view()


def marker_path(marker: str) -> mpath.Path:
    """The path ``Axes.scatter`` draws a (filled) ``marker`` with, at size 1."""
    style = MarkerStyle(marker)
    return style.get_path().transformed(style.get_transform())


def study_keys(frame: pd.DataFrame) -> pd.Series:
    """Each trial's study, keyed as :func:`scoring.leaderboard.study_bests` keys it: ``study<k>``
    for a sweep trial, the record folder (else the row) for a lone trial, its own study."""
    studies = pd.to_numeric(frame["study"], errors="coerce") if "study" in frame else pd.Series(np.nan, frame.index)
    lone = ("trial:" + frame["record_dir"].astype(str) if "record_dir" in frame
            else pd.Series([f"row:{i}" for i in frame.index], index=frame.index))
    known = studies.notna()
    keys = lone.astype(object)
    keys[known] = "study" + studies[known].astype(np.int64).astype(str)
    return keys


def median_study_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (workload, size, submission) the trial its curve draws: its studies are ordered by their
    fastest trial's time (inf when none reached; ties by study key) and the median one is taken
    (with an even number, the slower of the two middle ones: the table's time is finite exactly
    when it is); of that study, its fastest trial, or its best by validation value when none
    reached (then the first in ``trials``' order).

    One row per group: the trial's columns, plus ``study_time`` (its study's time), ``position``
    (1-based, fastest study first) and ``studies`` (their number). All groups at once: on a board
    of 100,000 trials this is one sort, not a filter per submission.
    """
    group = ["workload", "size", "submission"]
    frame = trials.reset_index(drop=True)
    times = pd.to_numeric(frame["time_to_target_s"], errors="coerce").fillna(np.inf).to_numpy(float)
    sign = np.where(frame["higher_is_better"].astype(bool).to_numpy(), 1.0, -1.0)
    worse = np.nan_to_num(-sign * pd.to_numeric(frame["best_validation"], errors="coerce").to_numpy(float),
                          nan=np.inf)  # smaller = better
    keys = frame[group].assign(_study=study_keys(frame).to_numpy(), _time=times, _worse=worse,
                               _row=np.arange(len(frame)))
    studies = keys.groupby([*group, "_study"], sort=False)["_time"].min().rename("study_time").reset_index()
    studies = studies.sort_values([*group, "study_time", "_study"], kind="stable")
    ordinal = studies.groupby(group, sort=False).cumcount()
    count = studies.groupby(group, sort=False)["_study"].transform("size")
    chosen = studies[ordinal.to_numpy() == (count // 2).to_numpy()].assign(
        position=ordinal[ordinal == count // 2] + 1, studies=count[ordinal == count // 2])
    members = keys.merge(chosen, on=[*group, "_study"]).sort_values([*group, "_time", "_worse", "_row"],
                                                                      kind="stable")
    first = members.drop_duplicates(group)
    picked = frame.iloc[first["_row"].to_numpy()].reset_index(drop=True)
    return picked.assign(study_time=first["study_time"].to_numpy(float),
                         position=first["position"].to_numpy(int), studies=first["studies"].to_numpy(int))


def median_study_trial(group: pd.DataFrame) -> dict[str, Any]:
    """The trial drawn for one submission on one workload (see :func:`median_study_trials`):
    ``trial`` (its row), ``study_time``, ``position`` and ``studies``."""
    (pick,) = [row for _, row in median_study_trials(group).iterrows()]
    return {"trial": pick[group.columns], "study_time": float(pick["study_time"]), "position": int(pick["position"]),
            "studies": int(pick["studies"])}


# ------------------------------------------------------------------------------------ sensitivity
def sensitivity_plots(board: Any, trials: pd.DataFrame, out: Path, *, styles: Styles | None = None) -> dict[str, Plot]:
    """``{"sensitivity <submission>": Plot}``: every submission's when there are at most
    ``SENSITIVITY_ALL``, else the ``SENSITIVITY_TOP`` best ranked ones' (each plot says so)."""
    styles = styles or board_styles(board)
    ranked = list(board.table["submission"])
    chosen = ranked if len(ranked) <= SENSITIVITY_ALL else ranked[:SENSITIVITY_TOP]
    note = "" if len(chosen) == len(ranked) else (
        f"Sensitivity is drawn for the top {len(chosen)} of {len(ranked)} submissions by rank only (more than "
        f"{SENSITIVITY_ALL}: all of them would take too long to draw and make the page too large)")
    plots = {}
    for submission in chosen:
        plot = plot_sensitivity(trials, submission, out / f"sensitivity_{submission}.png", styles=styles, note=note)
        if plot is not None:
            plots[f"sensitivity {submission}"] = plot
    return plots


def plot_sensitivity(trials: pd.DataFrame, submission: str, out: Path, *, styles: Styles | None = None,
                     search_space: Mapping[str, Any] | None = None, note: str = "") -> Plot | None:
    """Best validation value of every trial of ``submission`` against each searched
    hyperparameter; None when nothing was searched (no hyperparameter takes two values).

    One panel per hyperparameter, its x axis on the search space's scale (``scaling: log`` ->
    log axis; ``feasible_points`` -> ticks at the points), from ``search_space`` or else the one
    recorded in the trials' manifests (``config.submission.search_space``); without either, log
    for positive values spanning a decade (the axis label then says "scale guessed"). One band
    per workload, better values higher (scaled within the band; its range is printed under the
    workload's name), the target's level dashed. Filled markers reached the target, hollow ones
    did not, in the submission's own colour and marker.
    """
    subset = trials[trials["submission"] == submission]
    if subset.empty:
        return None
    space = dict(search_space) if search_space is not None else _recorded_search_space(subset)
    varied = [c for c in subset.columns if c.startswith("hp.") and subset[c].dropna().astype(str).nunique() > 1]
    columns = [c for c in varied if c[3:] in space] + [
        c for c in varied if c[3:] not in space and pd.to_numeric(subset[c], errors="coerce").notna().all()]
    if not columns:
        return None
    style = (styles.by_name.get(submission) if styles else None) or _own_style(submission)
    keys = (subset["workload"].astype(str) + "-" + subset["size"].astype(str)).to_numpy()
    workloads = sorted(set(keys))
    y, bands = _band_positions(subset, keys, workloads)
    reached = (subset["status"] == "reached").to_numpy()
    names = [f"{w}\n{b['range']}" for w, b in zip(workloads, bands)]
    guessed = [c[3:] for c in columns if c[3:] not in space]
    lines = [f"{submission}: best validation value of each trial against each searched hyperparameter",
             "One band per workload, higher = better (scaled within the band; its range under the name); filled: "
             "reached the target, hollow: did not"]
    if guessed:
        lines.append(f"No recorded search space for {', '.join(guessed)}: scale guessed (log where the values are "
                     f"positive and span a decade)")
    lines += [note] if note else []
    legend = [Line2D([], [], ls="", marker=style.marker, mfc=style.colour, mec=style.colour,
                     label="reached the target"),
              Line2D([], [], ls="", marker=style.marker, mfc="none", mec=style.colour, mew=1.1,
                     label="did not reach it"),
              Line2D([], [], color="black", ls="--", lw=0.8, label="the target")]
    frame = _Frame(1, len(columns), 2.3, max(0.42 * len(workloads), 1.0), left=_text_width(names) + 0.2,
                   bottom=0.55, right=_legend_width([h.get_label() for h in legend], 1), title=lines, sharey=True,
                   wspace=0.2)
    for ax, column in zip(frame.axes[0], columns):
        x, how = _hparam_axis(ax, subset[column], space.get(column[3:]))
        ax.scatter(x[reached], y[reached], marker=style.marker, s=24, facecolors=style.colour,
                   edgecolors=style.colour, linewidths=0.8, zorder=3)
        ax.scatter(x[~reached], y[~reached], marker=style.marker, s=24, facecolors="none",
                   edgecolors=style.colour, linewidths=1.1, zorder=3)
        ax.hlines([b["target_y"] for b in bands], 0, 1, transform=ax.get_yaxis_transform(), colors="black",
                  linestyles="--", lw=0.8, zorder=2)
        ax.hlines(np.arange(1, len(workloads)), 0, 1, transform=ax.get_yaxis_transform(), colors="#cccccc", lw=0.8,
                  zorder=1)
        ax.set_xlabel(f"{column[3:]} ({how})", fontsize=TITLE)
        ax.tick_params(labelsize=SMALL)
        ax.grid(alpha=0.3, axis="x")
    first = frame.axes[0, 0]
    first.set_ylim(len(workloads), 0)
    first.set_yticks(np.arange(len(workloads)) + 0.5, names)
    frame.legend_right(legend, ncol=1)
    _save(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")


def _band_positions(subset: pd.DataFrame, keys: np.ndarray, workloads: list[str]) -> tuple[np.ndarray, list[dict]]:
    """Each trial's height: workload ``w``'s band spans [w, w + 1] (the axis is inverted: w = 0 on
    top), better values higher. The band spans from the 10th percentile of the values (or the
    target, if lower) to the best: values below it (diverged trials) sit on the band's bottom edge."""
    values = pd.to_numeric(subset["best_validation"], errors="coerce").to_numpy(float)
    higher = subset["higher_is_better"].astype(bool).to_numpy()
    targets = pd.to_numeric(subset["target"], errors="coerce").to_numpy(float)
    metric = subset["metric"].astype(str).to_numpy()
    y = np.zeros(len(subset))
    bands = []
    for w, workload in enumerate(workloads):
        mask = keys == workload
        sign = 1.0 if higher[mask][0] else -1.0
        good = values[mask] * sign  # larger = better
        target = targets[mask][0] * sign
        known = good[np.isfinite(good)]
        lo = min(float(np.percentile(known, 10)), target) if known.size else target - 1.0
        hi = max(float(known.max()), target) if known.size else target + 1.0
        if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):  # one value (and the target): a band around it
            pad = 0.01 * max(abs(target), 1e-3)
            lo, hi = lo - pad, hi + pad
        height = np.clip(np.nan_to_num((good - lo) / (hi - lo), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        y[mask] = w + 0.92 - 0.84 * height
        low_value, high_value = sorted((lo * sign, hi * sign))
        bands.append({"target_y": w + 0.92 - 0.84 * (target - lo) / (hi - lo),
                      "range": f"{metric[mask][0]} {low_value:.3g} to {high_value:.3g}"})
    return y, bands


def _recorded_search_space(subset: pd.DataFrame) -> dict[str, Any]:
    """The search space recorded in the first readable manifest of these trials ({} if none)."""
    if "record_dir" not in subset:
        return {}
    for folder in subset["record_dir"].dropna().unique()[:5]:
        try:
            space = json.loads((Path(folder) / "manifest.json").read_text())["config"]["submission"]["search_space"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(space, dict) and space:
            return space
    return {}


def _hparam_axis(ax: plt.Axes, raw: pd.Series, entry: Mapping[str, Any] | None) -> tuple[np.ndarray, str]:
    """Set ``ax``'s x axis for one hyperparameter; returns the x positions and how it is scaled."""
    points = list(entry["feasible_points"]) if entry and "feasible_points" in entry else None
    if points is not None and not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in points):
        labels = [str(p) for p in points]  # categorical: one position per feasible point
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        return raw.astype(str).map({label: i for i, label in enumerate(labels)}).to_numpy(float), "feasible points"
    x = pd.to_numeric(raw, errors="coerce").to_numpy(float)
    finite = x[np.isfinite(x)]
    if entry and "scaling" in entry:
        lo, hi, log = float(entry["min"]), float(entry["max"]), entry["scaling"] == "log"
        how = f"{entry['scaling']} scale"
    elif points is not None:
        lo, hi = float(min(points)), float(max(points))
        log, how = lo > 0 and hi / lo >= 10, "feasible points"
    else:
        lo, hi = float(finite.min()), float(finite.max())
        log = bool(lo > 0 and hi / lo >= 10)
        how = f"{'log' if log else 'linear'}, guessed"
    if finite.size:  # a value outside the space (an edited record) stays in view
        lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if log:
        ax.set_xscale("log")
        pad = (hi / lo) ** 0.05
        ax.set_xlim(lo / pad, hi * pad)
        ticks = list(points) if points is not None and len(points) <= 5 else _log_ticks(lo, hi)
        ax.set_xticks(ticks, [_tick_label(t) for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())  # minor ticks: slow, and they crowd
    else:
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        ax.set_xlim(lo - pad, hi + pad)
        ticks = list(points) if points is not None and len(points) <= 5 else _linear_ticks(lo, hi)
        ax.set_xticks(ticks, [_tick_label(t) for t in ticks])
    return x, how


# ------------------------------------------------------------------------------------ ticks
def _log_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """Round tick values within [lo, hi] on a log axis: decades, with 2 and 5 (or 3) in between
    when the range is short; at most ``most`` of them, so that labels never crowd."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    low, high = lo * (1 - 1e-9), hi * (1 + 1e-9)
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in mantissas if low <= m * 10.0**e <= high]
        if 2 <= len(ticks) <= most:
            return ticks
    decades = [10.0**e for e in range(first, last + 1) if low <= 10.0**e <= high]
    if len(decades) > most:
        return decades[:: math.ceil(len(decades) / most)]
    return decades if len(decades) >= 2 else [float(f"{lo:.2g}"), float(f"{hi:.2g}")]


def _linear_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    return [t for t in MaxNLocator(nbins=most - 1, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
            if lo - 1e-9 * abs(hi - lo) <= t <= hi + 1e-9 * abs(hi - lo)]


def _tick_label(value: float) -> str:
    """Short labels: 0.05, 300, 1e-4, 2.5e-6, 1e4."""
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.4g}"
    exponent = math.floor(math.log10(abs(value)))
    return f"{value / 10**exponent:.2g}e{exponent}"


# ------------------------------------------------------------------------------------ layout
class _Frame:
    """A figure sized to its content: ``nrows`` x ``ncols`` panels of ``panel_w`` x ``panel_h``
    inches, margins in inches (``right`` holds a legend, ``bottom`` tick labels and a legend
    below), and a title wrapped to the figure's width whose height sets the top margin."""

    def __init__(self, nrows: int, ncols: int, panel_w: float, panel_h: float, *, left: float, bottom: float,
                 right: float, title: Sequence[str], sharey: bool = False, panel_title: bool = False,
                 top_axis: bool = False, wspace: float = 0.3, hspace: float = 0.6, below: Sequence[str] = ()) -> None:
        self.width = left + ncols * panel_w + (ncols - 1) * wspace + right
        # A legend below (of the labels ``below``): as many columns as fit the width, its rows added to the bottom.
        fit = int((self.width - 0.2) // (_text_width(below) * 0.9 + 0.55)) if below else 1
        self.below_ncol = max(1, min(4, fit, len(below) or 1))
        bottom += math.ceil(len(below) / self.below_ncol) * SMALL * LINE * 1.35 + 0.1 if below else 0.0
        per_line = max(40, int(self.width / (TITLE * CHAR * 0.92)))
        wrapped = [part for line in title for part in textwrap.wrap(line, per_line)]
        self.top = 0.15 + len(wrapped) * TITLE * LINE + (0.3 if panel_title else 0) + (0.45 if top_axis else 0)
        self.height = self.top + nrows * panel_h + (nrows - 1) * hspace + bottom
        self.left, self.right, self.bottom = left, right, bottom
        self.fig = plt.figure(figsize=(self.width, self.height))
        self.fig.text(0.5, 1 - 0.08 / self.height, "\n".join(wrapped), ha="center", va="top", fontsize=TITLE)
        self.axes = np.empty((nrows, ncols), dtype=object)
        for r in range(nrows):
            for c in range(ncols):
                x0 = left + c * (panel_w + wspace)
                y0 = self.height - self.top - (r + 1) * panel_h - r * hspace
                share = {"sharey": self.axes[r, 0]} if sharey and c else {}
                ax = self.fig.add_axes((x0 / self.width, y0 / self.height, panel_w / self.width,
                                        panel_h / self.height), **share)
                if share:
                    ax.tick_params(labelleft=False)
                self.axes[r, c] = ax

    def legend_right(self, handles: Sequence[Any], ncol: int = 1, title: str | None = None) -> None:
        """A legend in the right margin, top-aligned with the panels."""
        self.fig.legend(handles=handles, loc="upper left", ncol=ncol, fontsize=SMALL, frameon=False, title=title,
                        title_fontsize=SMALL, borderaxespad=0.0,
                        bbox_to_anchor=((self.width - self.right + 0.15) / self.width, 1 - self.top / self.height))

    def legend_below(self, handles: Sequence[Any]) -> None:
        """A legend centred in the bottom margin (reserved by ``below``), under the x labels."""
        self.fig.legend(handles=handles, loc="lower center", ncol=self.below_ncol, fontsize=SMALL, frameon=False,
                        bbox_to_anchor=(0.5, 0.05 / self.height), borderaxespad=0.0)

    def beside(self, ax: plt.Axes, width: float, gap: float) -> tuple[float, float, float, float]:
        """The rectangle (figure fractions) of a ``width``-inch axes ``gap`` inches right of ``ax``."""
        box = ax.get_position()
        return (box.x1 + gap / self.width, box.y0, width / self.width, box.height)


def _text_width(texts: Sequence[str], size: float = SMALL) -> float:
    """Inches taken by the longest line of ``texts`` at ``size`` points (an upper estimate)."""
    return max((len(line) for text in texts for line in str(text).split("\n")), default=0) * size * CHAR


def _legend_width(labels: Sequence[str], ncol: int) -> float:
    """Inches a legend of ``labels`` in ``ncol`` columns takes (markers and padding included)."""
    return ncol * (_text_width(labels) * 0.9 + 0.55) + 0.2


# ------------------------------------------------------------------------------------ helpers
def _own_style(submission: str) -> Style:
    """The style of a submission drawn without its board (alone, it is the first of its list)."""
    return submission_styles([submission]).by_name[submission]


def _seconds(value: float) -> str:
    return f"{value:.3g} s" if np.isfinite(value) else "not reached"


def _rgba(colour: str, alpha: float) -> tuple[float, float, float, float]:
    r, g, b, _ = to_rgba(colour)
    return (r, g, b, alpha)


_STAGING: list[str | None] = [None]  # inside staged_saves(token): plots are left aside for the caller to move in


@contextmanager
def staged_saves(token: str) -> Iterator[None]:
    """Plots saved meanwhile are written to :func:`staged_path` of their paths and left there: a
    leaderboard moves them into place with its tables, all or none (scoring/report.py), so a
    failure (a full disk) leaves the previous leaderboard's files as they were, not a mix of two.
    ``token`` (the writing command's process id) keeps two commands writing one folder apart."""
    _STAGING[0] = token
    try:
        yield
    finally:
        _STAGING[0] = None


def staged_path(out: Path, token: str) -> Path:
    """Where a plot saved inside :func:`staged_saves` is written before it is moved to ``out``."""
    return out.with_name(f".{out.name}.{token}.staged")


def _save(fig: plt.Figure, out: Path) -> Path:
    """Write ``fig`` as a 256-colour, zlib-compressed PNG (a few tens of kB; the HTML embeds it);
    figures larger than ``MAX_PIXELS`` at the default dpi are drawn at a lower one. Written to a
    temporary file and renamed, so a failure (a full disk) never leaves a truncated PNG; inside
    :func:`staged_saves`, left at its staged path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    width, height = fig.get_size_inches()
    fig.set_dpi(min(DPI, math.sqrt(MAX_PIXELS / (width * height))))
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    image = Image.fromarray(pixels).quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    token = _STAGING[0]
    target = staged_path(out, token) if token else out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        image.save(target, format="PNG")
        if not token:
            os.replace(target, out)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return out
