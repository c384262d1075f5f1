"""The leaderboard's plots tell what the table says: each check reads the drawn matplotlib artists
back (lines, bars, scatter collections, legends, tick labels), on small synthetic boards whose
records are written in milliseconds."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from PIL import Image

import scoring.plots as plots
from scoring.leaderboard import build
from scoring.style import MAX_LABELLED, TOP_LABELLED, board_styles, submission_styles

TARGET, BUDGET = 0.9, 20.0


# ------------------------------------------------------------------------------------ synthetic boards
def trial_rows(times: dict[str, dict[str, list[list[float | None]]]], folder: Path | None = None,
               lr: dict[str, list[float]] | None = None, space: dict[str, Any] | None = None) -> pd.DataFrame:
    """A trials table: ``times[submission][workload][k][j]`` is trial j of study k's time to
    target (None: never reached). With ``folder``, each trial gets a record folder with an
    evals.jsonl whose validation accuracy rises linearly and crosses TARGET exactly at that time
    (or stops at TARGET - 0.05 at the budget), and a manifest.json recording ``space``."""
    rows = []
    for submission, per_workload in times.items():
        for workload, studies in per_workload.items():
            for k, study in enumerate(studies):
                for j, time in enumerate(study):
                    end = BUDGET if time is None else time
                    best = TARGET - 0.05 if time is None else TARGET + 0.001
                    row = {"workload": workload, "size": "cpu", "submission": submission, "study": k, "trial": j,
                           "seed": 10 * k + j, "ruleset": "external", "schema_version": 1,
                           "status": "reached" if time is not None else "not_reached",
                           "time_to_target_s": math.inf if time is None else time,
                           "steps_to_target": None if time is None else time * 10, "best_validation": best,
                           "target": TARGET, "metric": "accuracy", "higher_is_better": True,
                           "max_runtime_s": BUDGET}
                    if lr is not None:
                        row["hp.lr"] = lr[submission][(len(study) * k + j) % len(lr[submission])]
                        row["hp.beta1"] = 0.8 + 0.01 * (len(study) * k + j)
                    if folder is not None:
                        record = folder / submission / workload / f"study{k}" / f"trial{j}"
                        record.mkdir(parents=True)
                        times_s = np.linspace(end / 10, end, 10)
                        values = 0.5 + (best - 0.5) * times_s / end
                        lines = [{"event": "eval", "step": 10 * (i + 1), "submission_time_s": float(t),
                                  "metrics": {"validation/accuracy": float(v)}} for i, (t, v) in
                                 enumerate(zip(times_s, values))]
                        (record / "evals.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
                        (record / "manifest.json").write_text(json.dumps(
                            {"config": {"submission": {"name": submission, "search_space": space or {}}}}))
                        row.update(record_dir=str(record), evals_file=True)
                    rows.append(row)
    return pd.DataFrame(rows)


def many(n: int, workloads: int = 3, seed: int = 0) -> dict[str, dict[str, list[list[float | None]]]]:
    """n submissions x ``workloads`` workloads, 3 studies of 2 trials, some never reaching."""
    rng = np.random.default_rng(seed)
    return {f"opt{i:02d}": {f"w{w}": [[None if rng.random() < 0.2 else float(rng.uniform(1, 15)) for _ in range(2)]
                                      for _ in range(3)] for w in range(workloads)} for i in range(n)}


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every figure the plot functions save, kept to be read back: ``save_png`` is replaced in each
    module that calls it (the name each one imported from scoring/plots/figure.py)."""
    kept = []
    save = plots.figure.save_png

    def keep(fig, out):
        kept.append(fig)
        return save(fig, out)

    for module in (plots.profiles, plots.time_to_target, plots.curves, plots.sensitivity):
        monkeypatch.setattr(module, "save_png", keep)
    return kept


def look(line: Line2D) -> tuple[Any, Any, Any]:
    return to_rgba(line.get_color()), line.get_linestyle(), line.get_marker()


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


# ------------------------------------------------------------------------------------ 1. styles
def test_twenty_submissions_have_twenty_styles_and_the_same_one_in_every_plot(tmp_path: Path, figures: list) -> None:
    times = many(20)
    trials = trial_rows(times, tmp_path / "records")
    board = build(trials, samples=0)
    styles = board_styles(board)
    triples = {(s.colour, s.linestyle, s.marker) for s in styles.by_name.values()}
    assert len(triples) == 20
    assert len({style.colour for style in submission_styles([f"s{i:03d}" for i in range(13)]).by_name.values()}) == 13
    assert len({(s.colour, s.linestyle, s.marker) for s in submission_styles(map(str, range(400))).by_name.values()}) \
        == 400
    plots.plot_profiles(board, tmp_path / "profiles.png", styles=styles)
    plots.plot_validation_curves(trials, "w0", "cpu", tmp_path / "curves.png", board=board)  # its own styles
    profile, curves = figures
    in_profile = {line.get_label().split(" ")[1]: look(line) for line in profile.axes[0].get_lines()}
    in_curves = {line.get_label().split(":")[0]: look(line) for line in curves.axes[0].get_lines()
                 if line.get_label() in {h.get_label() for h in curves.legends[0].legend_handles}
                 and line.get_label().startswith("opt")}
    assert set(in_profile) == set(in_curves) == set(times)
    assert in_profile == in_curves  # the same (colour, line style, marker) for each submission in both plots
    assert len(set(in_profile.values())) == 20
    for fig in (profile, curves):  # the legend sits outside every data area
        legend = fig.legends[0].get_window_extent()
        assert not any(overlaps(legend, ax.get_window_extent()) for ax in fig.axes)


def test_above_thirty_submissions_only_the_top_twenty_are_labelled_and_the_plot_says_so(tmp_path: Path,
                                                                                        figures: list) -> None:
    board = build(trial_rows(many(MAX_LABELLED + 10)), samples=0)
    plot = plots.plot_profiles(board, tmp_path / "profiles.png")
    (fig,) = figures
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    top = list(board.table["submission"][:TOP_LABELLED])
    assert [label.split(" ")[1] for label in labels] == top  # by rank
    words = " ".join(text.get_text() for text in fig.texts)
    assert f"first {TOP_LABELLED} of {MAX_LABELLED + 10} submissions by rank" in words
    assert f"first {TOP_LABELLED} of {MAX_LABELLED + 10}" in plot.caption


# ------------------------------------------------------------------------------------ 2. one workload
def test_a_single_workload_is_drawn_as_times_to_target_not_as_a_profile(tmp_path: Path, figures: list) -> None:
    board = build(trial_rows({"A": {"w0": [[2.0]]}, "B": {"w0": [[3.0]]}, "C": {"w0": [[None]]}}), samples=0)
    plot = plots.plot_profiles(board, tmp_path / "profiles.png", budgets={"w0-cpu": BUDGET})
    (fig,) = figures
    ax = fig.axes[0]
    assert not [line for ax in fig.axes for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    bars = sorted(ax.patches, key=lambda p: p.get_y())  # top row first: A, B, C (the rank order)
    assert [round(p.get_x() + p.get_width(), 6) for p in bars] == [2.0, 3.0, BUDGET]  # C: not reached, at the budget
    assert bars[2].get_hatch() and not bars[0].get_hatch()
    assert "a performance profile would be one vertical step per submission" in plot.caption
    assert "One workload" in " ".join(text.get_text() for text in fig.texts)


# ------------------------------------------------------------------------------------ 3. curves
def test_curves_draw_the_median_study_and_agree_with_the_table(tmp_path: Path, figures: list) -> None:
    times = {"A": {"w0": [[1.0, 6.0], [2.0, 7.0], [3.0, None]]},  # studies 1, 2, 3 s: the table says 2 s
             "B": {"w0": [[1.5, None], [None, None], [None, None]]},  # one lucky study: the table says not reached
             "C": {"w0": [[1.2], [None]]}}  # even count: the median averages 1.2 and inf -> not reached
    trials = trial_rows(times, tmp_path / "records")
    board = build(trials, samples=0)
    assert board.times[0, 0] == 2.0 and not np.isfinite(board.times[1:, 0]).any()
    plot = plots.plot_validation_curves(trials, "w0", "cpu", tmp_path / "curves.png", board=board)
    (fig,) = figures
    lines = {line.get_label().split(":")[0]: line for line in fig.axes[0].get_lines() if ":" in line.get_label()}
    assert lines["A"].get_xdata()[-1] == pytest.approx(2.0)  # the median study's fastest trial
    assert lines["A"].get_ydata().max() >= TARGET
    for name in ("B", "C"):  # not reached in the table: its curve stays below the target
        assert lines[name].get_ydata().max() < TARGET
        assert "not reached" in lines[name].get_label()
    assert "median study" in plot.caption and "median study" in fig.texts[0].get_text()
    for name, i in (("A", 0), ("B", 1), ("C", 2)):  # the drawn study's time is the table's (odd) or as finite (even)
        pick = plots.curves.median_study_trial(trials[trials["submission"] == name])
        assert np.isfinite(pick["study_time"]) == np.isfinite(board.times[i, 0])


def test_an_even_count_s_curve_label_gives_the_drawn_study_s_time_beside_the_table_s(tmp_path: Path,
                                                                                    figures: list) -> None:
    """Two studies: the table's time is the mean of 1.0 and 3.0 s, the curve the slower study's trial (3.0 s);
    the label said "2 s" under a curve that crosses the target at 3 s."""
    trials = trial_rows({"A": {"w0": [[1.0], [3.0]]}, "B": {"w0": [[2.0], [2.0]]}}, tmp_path / "records")
    board = build(trials, samples=0)
    assert board.times[0, 0] == 2.0
    plots.plot_validation_curves(trials, "w0", "cpu", tmp_path / "curves.png", board=board)
    labels = {line.get_label().split(":")[0]: line.get_label() for line in figures[0].axes[0].get_lines()
              if ":" in line.get_label()}
    assert labels["A"] == "A: 2 s (study 2 of 2, drawn: 3 s)"
    assert labels["B"] == "B: 2 s (study 2 of 2)"  # the two middle studies agree: nothing to add


@pytest.mark.parametrize("shift", [-1.0, 99.0])
def test_curves_of_a_higher_is_better_metric_outside_0_to_1_are_in_view(shift: float, tmp_path: Path,
                                                                       figures: list) -> None:
    """The zoom made for accuracies ([target - 0.15, target + 0.05] within [0, 1]) hid every curve of
    a negated loss (target -0.1: the axis was [0, 0.04]) and of a score near 100 (the axis started at
    99.75, the curves below it)."""
    trials = trial_rows({"A": {"w0": [[2.0]]}, "B": {"w0": [[None]]}}, tmp_path / "records")
    trials["target"] = TARGET + shift
    for record in trials["record_dir"]:
        evals = Path(record) / "evals.jsonl"
        lines = [json.loads(line) for line in evals.read_text().splitlines()]
        for line in lines:
            line["metrics"]["validation/accuracy"] += shift
        evals.write_text("".join(json.dumps(line) + "\n" for line in lines))
    plots.plot_validation_curves(trials, "w0", "cpu", tmp_path / "curves.png", board=build(trials, samples=0))
    ax = figures[0].axes[0]
    low, high = ax.get_ylim()
    curves = [line for line in ax.get_lines() if len(line.get_ydata()) > 2]
    assert len(curves) == 2
    for line in curves:
        assert low <= min(line.get_ydata()) and max(line.get_ydata()) <= high, (line.get_label(), low, high)
    assert low <= TARGET + shift <= high


def test_a_curve_that_is_not_the_tables_median_study_is_marked(tmp_path: Path, figures: list) -> None:
    trials = trial_rows({"B": {"w0": [[1.5], [None], [None]]}}, tmp_path / "records")
    board = build(trials, samples=0)  # not reached: two of its three studies never reached
    plots.plot_validation_curves(trials[trials["study"] == 0], "w0", "cpu", tmp_path / "curves.png", board=board)
    (fig,) = figures  # only the lucky study's trials are at hand (say the others never ended): it is marked
    (line,) = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("B:")]
    assert line.get_ydata().max() >= TARGET
    assert "not reached" in line.get_label() and "not the table's median study" in line.get_label()
    assert line.get_linestyle() == "--" and "Dashed" in fig.texts[0].get_text()



def test_the_median_study_picks_of_all_groups_at_once_are_the_per_group_rule(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    times = {f"s{i}": {f"w{w}": [[None if rng.random() < 0.4 else float(rng.integers(1, 4)) for _ in range(3)]
                                 for _ in range(int(rng.integers(1, 5)))] for w in range(3)} for i in range(12)}
    trials = trial_rows(times)  # integer times: ties between studies and within them
    trials["best_validation"] = rng.choice([0.8, 0.85, 0.91], len(trials))
    lone = trials.index[::7]
    trials.loc[lone, "study"] = None  # lone trials: each its own study, keyed by its record folder
    trials["record_dir"] = [f"r{i}" for i in range(len(trials))]
    picks = plots.curves.median_study_trials(trials.sample(frac=1.0, random_state=0))  # the order of rows is no matter
    assert len(picks) == trials.groupby(["workload", "size", "submission"]).ngroups
    for _, pick in picks.iterrows():
        group = trials[(trials["workload"] == pick["workload"]) & (trials["submission"] == pick["submission"])]
        keys = plots.curves.study_keys(group)  # the rule, written out per group
        per_study = group["time_to_target_s"].groupby(keys).min()
        ordered = sorted(per_study.items(), key=lambda kv: (kv[1], kv[0]))
        study, study_time = ordered[len(ordered) // 2]
        members = group[keys == study]
        best = members.sort_values(["time_to_target_s", "best_validation"], ascending=[True, False], kind="stable")
        assert pick["study_time"] == study_time and pick["position"] == len(ordered) // 2 + 1
        assert pick["studies"] == len(ordered)
        assert pick["time_to_target_s"] == best["time_to_target_s"].iloc[0]
        assert pick["best_validation"] == best["best_validation"].iloc[0]


def test_above_six_workloads_the_curves_are_small_multiples_with_one_legend(tmp_path: Path, figures: list) -> None:
    times = many(5, workloads=8)
    trials = trial_rows(times, tmp_path / "records")
    board = build(trials, samples=0)
    drawn = plots.leaderboard_plots(board, trials, tmp_path / "board")
    assert "curves" in drawn and not [name for name in drawn if name.startswith("curves ")]
    def title(ax) -> str:
        return " ".join(text.get_text() for text in ax.texts)

    (fig,) = [f for f in figures if any(title(ax).startswith("w7") for ax in f.axes)]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(title(ax) for ax in panels) == [f"w{w} (cpu)" for w in range(8)]
    assert len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(board.table["submission"])
    styles = board_styles(board)
    for ax in panels:  # each panel draws every submission's median-study curve, as the single-workload plot
        workload = title(ax).split(" ")[0]
        picks = plots.curves.median_study_trials(trials[trials["workload"] == workload]).set_index("submission")
        (curves,) = [c for c in ax.collections if isinstance(c, LineCollection)]  # one artist for all curves
        by_colour = {to_rgba(colour)[:3]: path for path, colour in zip(curves.get_segments(), curves.get_colors())}
        paths = {s: by_colour[to_rgba(styles.by_name[s].colour)[:3]] for s in times}  # in each one's own colour
        ends = {s: path[-1, 0] for s, path in paths.items()}
        assert ends == pytest.approx({s: min(picks.loc[s, "time_to_target_s"], BUDGET) for s in times})
        (ends,) = [c for c in ax.collections if isinstance(c, PathCollection)]  # one artist for all end markers
        drawn = {tuple(point.round(9)): marker.vertices for point, marker in zip(ends.get_offsets(), ends.get_paths())}
        assert sorted(drawn) == sorted(tuple(path[-1].round(9)) for path in paths.values())
        for s, path in paths.items():  # each curve's end drawn with its submission's own marker
            assert np.array_equal(drawn[tuple(path[-1].round(9))],
                                  plots.curves.marker_path(styles.by_name[s].marker).vertices)


# ------------------------------------------------------------------------------------ 4. time to target
def test_time_to_target_draws_the_tau_max_line_and_not_reached_at_the_budget(tmp_path: Path, figures: list) -> None:
    times = {"A": {"w0": [[2.6]], "w1": [[5.0]]}, "B": {"w0": [[12.3]], "w1": [[6.0]]},
             "C": {"w0": [[None]], "w1": [[None]]}}
    board = build(trial_rows(times), samples=0)
    assert board.table.set_index("submission").loc["B", "ratio:w0-cpu"] > 4  # scores 0 there
    plot = plots.plot_time_to_target(board, tmp_path / "ttt.png", budgets={"w0-cpu": BUDGET, "w1-cpu": BUDGET})
    (fig,) = figures
    ax = fig.axes[0]  # w0
    red = [line for line in ax.get_lines() if to_rgba(line.get_color()) == to_rgba(plots.time_bars.LIMIT_COLOUR)]
    assert len(red) == 1 and red[0].get_xdata()[0] == pytest.approx(4 * 2.6)
    bars = {name: patch for name, patch in zip(("A", "B", "C"), sorted(ax.patches, key=lambda p: p.get_y()))}
    assert bars["B"].get_x() + bars["B"].get_width() == pytest.approx(12.3)
    assert bars["B"].get_hatch() == "////" and bars["A"].get_hatch() is None  # beyond tau_max x fastest: marked
    assert bars["C"].get_x() + bars["C"].get_width() == pytest.approx(BUDGET)  # not reached: at the budget
    assert bars["C"].get_hatch() == "...."
    assert "4x the fastest" in plot.caption and "budget" in plot.caption
    assert "scores 0" in " ".join(text.get_text() for text in fig.legends[0].get_texts())


def test_a_workload_a_submission_never_ran_is_drawn_as_not_run_not_as_not_reached(tmp_path: Path,
                                                                                  figures: list) -> None:
    times = {"A": {"w0": [[2.6]], "w1": [[5.0]]}, "B": {"w0": [[3.0]]}, "C": {"w0": [[None]], "w1": [[None]]}}
    board = build(trial_rows(times), samples=0)
    plot = plots.plot_time_to_target(board, tmp_path / "ttt.png", budgets={"w0-cpu": BUDGET, "w1-cpu": BUDGET})
    (fig,) = figures
    ax = fig.axes[1]  # w1: A reached, B never ran it, C did not reach
    assert sorted(round(p.get_y() + p.get_height() / 2) for p in ax.patches) == [0, 2]  # bars of A and C only
    assert [(t.get_text(), t.get_position()[1]) for t in ax.texts] == [("not run", 1)]
    hollow = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())
              and c.get_offsets()[0][0] == pytest.approx(BUDGET)]
    assert [c.get_offsets()[:, 1].tolist() for c in hollow][:1] == [[2.0]]  # only C drawn at the budget
    assert "'not run'" in plot.caption


def test_many_workloads_make_one_heat_map_with_the_cut_and_not_reached_marked(tmp_path: Path, figures: list) -> None:
    n = plots.time_to_target.PANELS_UP_TO + 2
    times = {"A": {f"w{w}": [[2.0]] for w in range(n)}, "B": {f"w{w}": [[9.0 if w == 0 else 3.0]] for w in range(n)},
             "C": {f"w{w}": [[None if w == 1 else 4.0]] for w in range(n)}}
    board = build(trial_rows(times), samples=0)
    plot = plots.plot_time_to_target(board, tmp_path / "ttt.png")
    (fig,) = figures
    ax = fig.axes[0]
    cut, missing = [c for c in ax.collections if isinstance(c, PathCollection)][:2]
    assert cut.get_offsets().tolist() == [[0, 1]]  # B on w0: 9 / 2 = 4.5 > 4
    assert missing.get_offsets().tolist() == [[1, 2]]  # C never reached w1
    assert "heat map" in plot.caption


# ------------------------------------------------------------------------------------ 5. sensitivity
def test_sensitivity_marks_reached_filled_and_not_reached_hollow_on_the_search_scale(tmp_path: Path,
                                                                                    figures: list) -> None:
    space = {"lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"}, "beta1": {"min": 0.8, "max": 0.95,
                                                                          "scaling": "linear"}}
    times = {"A": {"w0": [[2.0, None, 3.0], [None, 4.0, None]]}}
    trials = trial_rows(times, tmp_path / "records", lr={"A": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 2e-4]}, space=space)
    plot = plots.plot_sensitivity(trials, "A", tmp_path / "s.png")
    (fig,) = figures
    panels = {ax.get_xlabel().split(" ")[0]: ax for ax in fig.axes}
    assert panels["lr"].get_xscale() == "log" and panels["beta1"].get_xscale() == "linear"
    colour = to_rgba(submission_styles(["A"]).by_name["A"].colour)
    filled, hollow = [c for c in panels["lr"].collections if isinstance(c, PathCollection)]
    assert len(filled.get_offsets()) == 3 and len(hollow.get_offsets()) == 3
    assert [tuple(c) for c in filled.get_facecolors()] == [colour] and [tuple(c) for c in filled.get_edgecolors()] \
        == [colour]
    assert all(c[3] == 0 for c in hollow.get_facecolors())  # hollow: no face ...
    assert [tuple(c) for c in hollow.get_edgecolors()] == [colour]  # ... but a real edge, of the submission's colour
    reached, missed = fig.legends[0].legend_handles[:2]
    assert [t.get_text() for t in fig.legends[0].get_texts()][:2] == ["reached the target", "did not reach it"]
    assert to_rgba(reached.get_markerfacecolor()) == colour and missed.get_markerfacecolor() == "none"
    assert "filled" in plot.caption and "hollow" in plot.caption


def test_sensitivity_draws_pruned_trials_apart_from_those_that_did_not_reach(tmp_path: Path, figures: list) -> None:
    """A pruned trial's best value is where pruning stopped it, not what it would have reached: it was drawn
    hollow as "did not reach it", as a trial that ran out of its budget."""
    times = {"A": {"w0": [[2.0, None, None]]}}
    trials = trial_rows(times, tmp_path / "records", lr={"A": [1e-4, 1e-3, 1e-2]})
    trials.loc[2, "status"] = "pruned"
    plot = plots.plot_sensitivity(trials, "A", tmp_path / "s.png")
    (fig,) = figures
    panel = next(ax for ax in fig.axes if ax.get_xlabel().startswith("lr"))
    filled, missed, pruned = [c for c in panel.collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in (filled, missed, pruned)] == [1, 1, 1]
    assert pruned.get_offsets()[0][0] == pytest.approx(1e-2)  # the pruned trial's own point
    colour = to_rgba(submission_styles(["A"]).by_name["A"].colour)
    assert tuple(pruned.get_edgecolors()[0])[:3] == colour[:3] and pruned.get_edgecolors()[0][3] < 0.5
    assert "pruned (stopped early)" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert "faint: pruned" in plot.caption


@pytest.mark.parametrize("low, high", [(1e-5, 1e-1), (3e-4, 3e-2), (2e-3, 5e-3), (1e-7, 1e-3)])
def test_sensitivity_tick_labels_never_overlap(tmp_path: Path, figures: list, low: float, high: float) -> None:
    space = {"lr": {"min": low, "max": high, "scaling": "log"}, "weight_decay": {"min": 1e-7, "max": 0.5,
                                                                                 "scaling": "log"}}
    trials = trial_rows({"A": {"w0": [[2.0, None, 3.0]]}}, tmp_path / "records",
                        lr={"A": list(np.geomspace(low, high, 3))}, space=space)
    trials["hp.weight_decay"] = [1e-7, 1e-3, 0.5]
    plots.plot_sensitivity(trials, "A", tmp_path / "s.png")
    (fig,) = figures
    for ax in fig.axes:
        boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        assert len(boxes) >= 2
        assert not any(overlaps(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    names = [ax.xaxis.label.get_window_extent() for ax in fig.axes]
    assert not any(overlaps(a, b) for i, a in enumerate(names) for b in names[i + 1:])


def test_without_a_recorded_search_space_the_scale_is_guessed_and_said(tmp_path: Path, figures: list) -> None:
    trials = trial_rows({"A": {"w0": [[2.0, None, 3.0]]}}, lr={"A": [1e-4, 1e-3, 1e-2]})
    plot = plots.plot_sensitivity(trials, "A", tmp_path / "s.png")
    (fig,) = figures
    lr = next(ax for ax in fig.axes if ax.get_xlabel().startswith("lr"))
    assert lr.get_xscale() == "log" and "guessed" in lr.get_xlabel() and "guessed" in plot.caption


def test_a_large_board_draws_sensitivity_for_the_top_only_and_says_so(tmp_path: Path) -> None:
    n = plots.sensitivity.SENSITIVITY_ALL + 4
    times = many(n, workloads=1)
    trials = trial_rows(times, lr={s: [1e-4, 1e-3, 1e-2] for s in times})
    board = build(trials, samples=0)
    drawn = plots.sensitivity_plots(board, trials, tmp_path)
    top = plots.sensitivity.SENSITIVITY_TOP
    assert list(drawn) == [f"sensitivity {s}" for s in board.table["submission"][:top]]
    assert all(f"top {top} of {n} submissions" in p.caption for p in drawn.values())


# ------------------------------------------------------------------------------------ 6. outputs
def test_leaderboard_plots_are_small_palette_pngs_with_captions(tmp_path: Path) -> None:
    from scoring.report import write_outputs

    trials = trial_rows(many(13), tmp_path / "records", lr={f"opt{i:02d}": [1e-4, 1e-3] for i in range(13)},
                        space={"lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"}})
    board = build(trials, samples=0)
    result = write_outputs(board, trials, tmp_path / "board", "test")
    assert set(result["captions"]) >= {"profiles", "time_to_target", "curves w0-cpu", "sensitivity opt00"}
    assert all(result["captions"].values())
    for path in result["plots"]:
        with Image.open(path) as image:
            assert image.mode == "P"  # 256 colours
        assert Path(path).stat().st_size < 250_000
    assert Path(result["html"]).stat().st_size < 1_000_000
    plot = plots.plot_profiles(board, tmp_path / "again.png")
    assert Path(plot) == tmp_path / "again.png" and str(plot) == str(tmp_path / "again.png")  # os.PathLike
