"""Validation curves: per workload, each submission's median study, the study the table's time
comes from (:func:`plot_validation_curves`; above ``PANELS_UP_TO`` workloads all of them as small
multiples in one figure, :func:`plot_curves_grid`), and the rule that picks the trial drawn
(:func:`median_study_trials`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import path as mpath
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.markers import MarkerStyle
from matplotlib.ticker import MaxNLocator

from scoring.plots.figure import SMALL, TITLE, Frame, Plot, legend_width, own_style, rgba, save_png
from scoring.records import evaluation_curve
from scoring.style import MISSING_COLOUR, Styles, board_styles, submission_styles


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
            drawn = pick["study_time"]  # an even count's median is the mean of the middle two: the slower is drawn
            differs = np.isfinite(drawn) and np.isfinite(shown_time) and not math.isclose(drawn, shown_time)
            labels[s] += (f" (study {pick['position']} of {pick['studies']}"
                          + (f", drawn: {_seconds(drawn)})" if differs else ")"))
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
    frame = Frame(1, 1, 6.2, 3.8, left=0.75, bottom=0.5, right=legend_width(entries, columns), title=lines)
    handles = _curves_panel(frame.axes[0, 0], subset, chosen, names, styles, labels, set(mismatched))
    frame.legend_right(handles, ncol=columns, title="submission: the table's time")
    save_png(frame.fig, out)
    return Plot(out, ". ".join(lines) + ".")


CURVES_RULE = ("Studies are ordered by their fastest trial's time to target, as in the table's median (even count: "
               "the slower middle one, whose time the label adds where the median, the mean of the middle two, "
               "differs); drawn: that study's fastest trial, or its best if none reached")


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
    frame = Frame(nrows, ncols, 2.6, 1.9, left=0.55, bottom=0.45, right=legend_width(legend_names, columns),
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
    save_png(frame.fig, out)
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
        style = styles.by_name.get(s) or own_style(s)
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
        colour = rgba(look["color"], alpha)
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


def _seconds(value: float) -> str:
    return f"{value:.3g} s" if np.isfinite(value) else "not reached"


# ------------------------------------------------------------------------------------ which trial is drawn
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
