"""Time to target per workload (:func:`plot_time_to_target`): a panel of bars each
(:mod:`scoring.plots.time_bars`), or above ``PANELS_UP_TO`` workloads one heat map of the ratios
to the fastest."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize, to_rgba

from scoring.plots.figure import PANELS_UP_TO, SMALL, Frame, Plot, save_png, text_width, tick_label
from scoring.plots.time_bars import time_legend, time_panel, time_what
from scoring.style import MISSING_COLOUR, Styles, board_styles


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
    lines = [f"Time to target per workload: {time_what(board.tau_max, known)}"]
    lines += [styles.note.replace("drawn thin and grey", "left out (see the table)")] if styles.note else []
    legend = time_legend(board.tau_max, known)
    frame = Frame(nrows, ncols, 3.2, 0.2 * len(rows) + 0.3, left=text_width(rows) + 0.25, bottom=0.5, right=0.3,
                   title=lines, panel_title=True, hspace=0.75, wspace=0.25, below=[h.get_label() for h in legend])
    for j in range(n):
        time_panel(frame.axes[j // ncols, j % ncols], board, j, rows, styles, budgets.get(board.workloads[j]),
                    rows if j % ncols == 0 else None)
    for k in range(n, nrows * ncols):
        frame.axes[k // ncols, k % ncols].set_visible(False)
    frame.legend_below(legend)
    save_png(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")


def _ratio_heatmap(board: Any, out: Path, styles: Styles, budgets: Mapping[str, float]) -> Plot:
    """time_to_target.png for many workloads: submissions x workloads, coloured by the ratio to
    the fastest; beyond tau_max (scores 0) grey with a cross; not reached white with a ring."""
    rows = list(styles.shown)
    index = {s: i for i, s in enumerate(board.submissions)}
    r = board.time_ratios[[index[s] for s in rows]]
    tau = board.tau_max
    fastest = np.min(board.times, axis=0)
    columns = [f"{w} ({tick_label(float(f))} s)" if np.isfinite(f) else f"{w} (none)"
               for w, f in zip(board.workloads, fastest)]
    spans = sorted({f"{tick_label(b)}\u00a0s" for b in budgets.values()})  # no-break space: kept on one line
    lines = [f"Time to target over {len(board.workloads)} workloads (more than {PANELS_UP_TO}: one heat map instead of "
             f"one panel each): the table's time (median over studies of each study's fastest trial) as a ratio to "
             f"the workload's fastest (in brackets)",
             f"Grey with a cross: beyond {tau:g}x the fastest (scores 0); white with a ring: not reached within the "
             f"budget (max_runtime_s: {', '.join(spans) if spans else 'unknown'}); blank: not run (no record)"]
    lines += [styles.note.replace("drawn thin and grey", "left out (see the table)")] if styles.note else []
    cmap = ListedColormap(plt.get_cmap("YlGnBu")(np.linspace(0.95, 0.2, 256)))  # ratio 1 dark, tau_max light
    frame = Frame(1, 1, 0.3 * len(columns), 0.2 * len(rows), left=text_width(rows) + 0.25,
                   bottom=text_width(columns) * 0.75 + 0.3, right=1.1, title=lines)
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
    save_png(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")
