"""The leaderboard's plots, drawn to agree with its table: a module for each kind of plot.

Every plot function returns a :class:`Plot`: the PNG's path (``os.PathLike``, so callers that
want a path keep working) and a caption that says what is drawn and what is left out. Each
submission has the same colour, line style and marker in every plot (:mod:`scoring.style`).

- ``profiles.py``: :func:`plot_profiles`, performance profiles by time and by steps; with a single
  workload, a dot chart of each submission's time to target instead (a profile would be one step each).
- ``time_to_target.py``: :func:`plot_time_to_target`, per workload, each submission's time (the
  table's), its studies, the tau_max x fastest line beyond which a time scores 0, and "not reached"
  at the budget; above ``PANELS_UP_TO`` workloads one heat map of the ratios to the fastest instead.
- ``time_bars.py``: one workload's panel of those bars, drawn by both of the above.
- ``curves.py``: :func:`plot_validation_curves`, per workload, each submission's *median* study, the
  study the table's time comes from, so a submission the table says did not reach never crosses the
  target (:func:`plot_curves_grid`: all workloads as small multiples in one figure).
- ``sensitivity.py``: :func:`plot_sensitivity`, the best validation value of every trial against each
  searched hyperparameter, on the search space's scale; filled: reached the target, hollow: did not.
- ``figure.py``: what they all share: :class:`Plot`, the sizes and fonts, a figure laid out in
  inches, round ticks, and saving (:func:`staged_saves`).
- here, :func:`leaderboard_plots`: all of them for a leaderboard (what ``write_outputs`` embeds).

Imports go one way: ``figure.py`` imports no other module of the package, each plot kind's module
imports only it (profiles and time to target also ``time_bars.py``), and this one imports the kinds.

Figures are laid out by hand, in inches computed from their content (no layout engine: it
doubles the drawing time), and written as 256-colour zlib-compressed PNGs, a few tens of kB
each, so that the self-contained HTML stays small and a 200-submission board draws in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (here: before any module of the package imports pyplot)
import numpy as np
import pandas as pd

from scoring.plots.curves import median_study_trials, plot_curves_grid, plot_validation_curves
from scoring.plots.figure import PANELS_UP_TO, Plot, staged_path, staged_saves
from scoring.plots.profiles import plot_profiles
from scoring.plots.sensitivity import plot_sensitivity, sensitivity_plots
from scoring.plots.time_to_target import plot_time_to_target
from scoring.style import board_styles

__all__ = ["PLOT_KINDS", "Plot", "leaderboard_plots", "plot_curves_grid", "plot_profiles", "plot_sensitivity",
           "plot_time_to_target", "plot_validation_curves", "sensitivity_plots", "staged_path", "staged_saves"]

PLOT_KINDS = ("profiles", "time_to_target", "curves", "sensitivity")


def leaderboard_plots(board: Any, trials: pd.DataFrame, out: Path, seconds: dict[str, float] | None = None,
                      kinds: Sequence[str] = PLOT_KINDS) -> dict[str, Plot]:
    """Every plot of a leaderboard, by the name the HTML shows: ``profiles``, ``time_to_target``,
    ``curves <workload>-<size>`` (when the trials have records on disk; above ``PANELS_UP_TO``
    workloads one ``curves`` figure of them all) and ``sensitivity <name>`` (every submission up to
    ``SENSITIVITY_ALL`` of them, else the ``SENSITIVITY_TOP`` best ranked: ``sensitivity.py``). Only those
    of ``kinds`` (of ``PLOT_KINDS``); ``seconds``, when given, receives the time each kind took."""
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
