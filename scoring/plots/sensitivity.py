"""Sensitivity: the best validation value of every trial against each searched hyperparameter,
on the search space's scale (:func:`plot_sensitivity`); on a board, every submission's or the best
ranked ones' (:func:`sensitivity_plots`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from scoring.plots.figure import (
    SMALL,
    TITLE,
    Frame,
    Plot,
    legend_width,
    linear_ticks,
    log_ticks,
    own_style,
    rgba,
    save_png,
    text_width,
    tick_label,
)
from scoring.style import Styles, board_styles

SENSITIVITY_ALL = 16  # up to this many submissions every one gets a sensitivity plot ...
SENSITIVITY_TOP = 3  # ... else only the best ranked ones (each plot costs time and page size)
PRUNED_ALPHA = 0.35  # a pruned trial's marker: faint, its value is where it was stopped


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
    did not, in the submission's own colour and marker; pruned trials (stopped once they could change
    no score: their value is where they stopped, not what they would have reached) hollow and faint.
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
    style = (styles.by_name.get(submission) if styles else None) or own_style(submission)
    keys = (subset["workload"].astype(str) + "-" + subset["size"].astype(str)).to_numpy()
    workloads = sorted(set(keys))
    y, bands = _band_positions(subset, keys, workloads)
    reached = (subset["status"] == "reached").to_numpy()
    pruned = (subset["status"] == "pruned").to_numpy()
    names = [f"{w}\n{b['range']}" for w, b in zip(workloads, bands)]
    guessed = [c[3:] for c in columns if c[3:] not in space]
    lines = [f"{submission}: best validation value of each trial against each searched hyperparameter",
             "One band per workload, higher = better (scaled within the band; its range under the name); filled: "
             "reached the target, hollow: did not" + (", faint: pruned (stopped early once it could change no "
                                                      "score; its value is where it stopped)" if pruned.any() else "")]
    if guessed:
        lines.append(f"No recorded search space for {', '.join(guessed)}: scale guessed (log where the values are "
                     f"positive and span a decade)")
    lines += [note] if note else []
    legend = [Line2D([], [], ls="", marker=style.marker, mfc=style.colour, mec=style.colour,
                     label="reached the target"),
              Line2D([], [], ls="", marker=style.marker, mfc="none", mec=style.colour, mew=1.1,
                     label="did not reach it"),
              *([Line2D([], [], ls="", marker=style.marker, mfc="none", mec=rgba(style.colour, PRUNED_ALPHA),
                        mew=1.1, label="pruned (stopped early)")] if pruned.any() else []),
              Line2D([], [], color="black", ls="--", lw=0.8, label="the target")]
    frame = Frame(1, len(columns), 2.3, max(0.42 * len(workloads), 1.0), left=text_width(names) + 0.2,
                   bottom=0.55, right=legend_width([h.get_label() for h in legend], 1), title=lines, sharey=True,
                   wspace=0.2)
    for ax, column in zip(frame.axes[0], columns):
        x, how = _hparam_axis(ax, subset[column], space.get(column[3:]))
        ax.scatter(x[reached], y[reached], marker=style.marker, s=24, facecolors=style.colour,
                   edgecolors=style.colour, linewidths=0.8, zorder=3)
        missed = ~reached & ~pruned
        ax.scatter(x[missed], y[missed], marker=style.marker, s=24, facecolors="none",
                   edgecolors=style.colour, linewidths=1.1, zorder=3)
        if pruned.any():
            ax.scatter(x[pruned], y[pruned], marker=style.marker, s=24, facecolors="none",
                       edgecolors=[rgba(style.colour, PRUNED_ALPHA)], linewidths=1.1, zorder=3)
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
    save_png(frame.fig, out)
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
        ticks = list(points) if points is not None and len(points) <= 5 else log_ticks(lo, hi)
        ax.set_xticks(ticks, [tick_label(t) for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())  # minor ticks: slow, and they crowd
    else:
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        ax.set_xlim(lo - pad, hi + pad)
        ticks = list(points) if points is not None and len(points) <= 5 else linear_ticks(lo, hi)
        ax.set_xticks(ticks, [tick_label(t) for t in ticks])
    return x, how
