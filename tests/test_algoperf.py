"""AlgoPerf-format log trees scored in both modes, against hand-computed numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

import scoring.algoperf as algoperf
from harness.cli import main
from harness.errors import UserError
from scoring.algoperf import load_targets, score_tree

TARGETS = {
    "base_workloads": ["wmt", "ogbg"],
    "held_out_workloads": ["wmt_glu_tanh"],
    "workloads": {
        "wmt": {"target_metric_name": "bleu", "validation_target_value": 30.0, "step_hint": 1000},
        "wmt_glu_tanh": {"target_metric_name": "bleu", "validation_target_value": 29.0, "step_hint": 1000},
        "ogbg": {"target_metric_name": "loss", "validation_target_value": 0.5, "step_hint": 1000},
    },
}


def write_trial(root: Path, submission: str, workload: str, times: list[float], reach_at: int | None,
                study: int = 0, trial: int = 1, framework: str = "jax") -> None:
    """One trial whose validation metric meets the target first at eval ``reach_at`` (or never)."""
    spec = TARGETS["workloads"][workload]
    lower = spec["target_metric_name"] == "loss"
    good = spec["validation_target_value"] + (-0.1 if lower else 0.5)
    bad = spec["validation_target_value"] + (0.3 if lower else -5.0)
    values = [good if reach_at is not None and i >= reach_at else bad for i in range(len(times))]
    folder = root / submission / f"study_{study}" / f"{workload}_{framework}" / f"trial_{trial}"
    folder.mkdir(parents=True)
    pd.DataFrame({"global_step": [100 * (i + 1) for i in range(len(times))], "score": times,
                  "accumulated_submission_time": times,
                  f"validation/{spec['target_metric_name']}": values}).to_csv(folder / "eval_measurements.csv",
                                                                              index=False)


@pytest.fixture
def targets_file(tmp_path: Path) -> Path:
    path = tmp_path / "workload_targets.json"
    path.write_text(json.dumps(TARGETS))
    return path


def scores(table: pd.DataFrame) -> dict[str, float]:
    return dict(zip(table["submission"], table["score"]))


def test_best_trial_by_eval_index_vs_by_time_ranks_differently(tmp_path: Path, targets_file: Path) -> None:
    root = tmp_path / "logs"
    # X on wmt: trial 1 reaches at eval index 2 (t=100 s), trial 2 at index 3 but sooner (t=40 s).
    write_trial(root, "X", "wmt", [10, 20, 100], reach_at=2, trial=1)
    write_trial(root, "X", "wmt", [5, 10, 15, 40], reach_at=3, trial=2)
    write_trial(root, "Y", "wmt", [30, 64], reach_at=1)
    for sub in ("X", "Y"):
        write_trial(root, sub, "ogbg", [20, 50], reach_at=1)
        write_trial(root, sub, "wmt_glu_tanh", [5, 10], reach_at=1)
    targets = load_targets(targets_file)

    compat = score_tree(root, targets, compat=True)
    # compat: X's wmt time is 100 (earliest index), ratio 100/64 = 1.5625; on the 100-point grid
    # the first tau >= 1.5625 is index 19, so the trapezoid gives (99 - 19 + 0.5) / 99 for wmt.
    assert scores(compat) == pytest.approx({"X": (1 + 80.5 / 99) / 2, "Y": 1.0}, abs=1e-12)
    assert list(compat["submission"]) == ["Y", "X"]

    ours = score_tree(root, targets, compat=False)
    # ours: X's wmt time is 40 (fastest trial), Y's ratio 64/40 = 1.6 -> (4 - 1.6) / 3 exactly.
    assert scores(ours) == pytest.approx({"X": 1.0, "Y": (1 + 2.4 / 3) / 2}, abs=1e-12)
    assert list(ours["submission"]) == ["X", "Y"]


def test_held_out_rule_and_the_order_of_the_4x_cut(tmp_path: Path, targets_file: Path) -> None:
    root = tmp_path / "logs"
    # Z is fastest on wmt (20 s) but never reaches its held-out variant.
    write_trial(root, "Z", "wmt", [20], reach_at=0)
    write_trial(root, "Z", "wmt_glu_tanh", [50, 80], reach_at=None)
    write_trial(root, "Z", "ogbg", [10], reach_at=0)
    write_trial(root, "X", "wmt", [100], reach_at=0)
    write_trial(root, "X", "wmt_glu_tanh", [10], reach_at=0)
    write_trial(root, "X", "ogbg", [10], reach_at=0)
    write_trial(root, "Y", "wmt", [64], reach_at=0)
    write_trial(root, "Y", "wmt_glu_tanh", [10], reach_at=0)
    write_trial(root, "Y", "ogbg", [28], reach_at=0)
    targets = load_targets(targets_file)

    compat = scores(score_tree(root, targets, compat=True))
    # compat: X's 100 s is cut (> 4 x Z's 20 s) before Z is disqualified by its variant; then
    # wmt ratios are Z inf, X inf, Y 1; ogbg ratios 1, 1, 2.8 (first grid tau >= 2.8: index 60).
    assert compat == pytest.approx({"Z": 0.5, "X": 0.5, "Y": (1 + 39.5 / 99) / 2}, abs=1e-12)

    ours = scores(score_tree(root, targets, compat=False))
    # ours: Z disqualified first, then X 100/64 = 1.5625 and Y 1 on wmt; exact areas.
    assert ours == pytest.approx({"Z": 0.5, "X": (2.4375 / 3 + 1) / 2, "Y": (1 + 1.2 / 3) / 2}, abs=1e-12)


def test_a_missing_workload_counts_as_not_reached(tmp_path: Path, targets_file: Path) -> None:
    root = tmp_path / "logs"
    for sub in ("A", "B"):
        write_trial(root, sub, "wmt", [10], reach_at=0)
        write_trial(root, sub, "wmt_glu_tanh", [10], reach_at=0)
    write_trial(root, "A", "ogbg", [10], reach_at=0, framework="pytorch")
    for compat in (True, False):
        assert scores(score_tree(root, load_targets(targets_file), compat=compat)) == pytest.approx(
            {"A": 1.0, "B": 0.5}, abs=1e-12)


def test_median_over_studies(tmp_path: Path, targets_file: Path) -> None:
    root = tmp_path / "logs"
    for study, (time, reach) in enumerate([(10, 0), (30, 0), (99, None)]):
        write_trial(root, "A", "wmt", [time], reach_at=reach, study=study)
        write_trial(root, "A", "wmt_glu_tanh", [5], reach_at=0, study=study)
        write_trial(root, "A", "ogbg", [5], reach_at=0, study=study)
    table = score_tree(root, load_targets(targets_file), compat=False)
    assert table.loc[0, "time_s:wmt"] == 30.0  # median of 10, 30, inf


def test_score_command_in_both_modes(tmp_path: Path, targets_file: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "logs"
    for sub, time in (("A", 10), ("B", 20)):
        for workload in ("wmt", "wmt_glu_tanh", "ogbg"):
            write_trial(root, sub, workload, [time], reach_at=0)
    for compat in ("true", "false"):
        out = tmp_path / f"out-{compat}"
        assert main(["score", "format=algoperf", f"targets={targets_file}", f"results={root}",
                     f"compat={compat}", f"out={out}"]) == 0
        table = pd.read_csv(out / "leaderboard.csv")
        assert table.loc[0, "submission"] == "A" and table.loc[0, "score"] == pytest.approx(1.0)
    assert "official rules" in capsys.readouterr().out


def test_bad_algoperf_input_is_clear(tmp_path: Path, targets_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["score", "format=algoperf", f"results={tmp_path}"]) == 2
    assert "needs targets=FILE" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"base_workloads": ["wmt"]}')
    assert main(["score", "format=algoperf", f"targets={bad}", f"results={tmp_path}"]) == 2
    assert "is not a workload targets file" in capsys.readouterr().err
    with pytest.raises(UserError, match=r"No AlgoPerf eval_measurements\.csv"):
        score_tree(tmp_path, load_targets(targets_file), compat=True)


def all_three(root: Path, submission: str, time: float, study: int = 0) -> None:
    for workload in ("wmt", "wmt_glu_tanh", "ogbg"):
        write_trial(root, submission, workload, [time], reach_at=0, study=study)


def with_studies_that_wrote_nothing(root: Path) -> Path:
    """A: study 0 at 10 s everywhere, study 1 a trial folder without its CSV, study 2 empty; B: 3 studies at 12 s."""
    all_three(root, "A", 10)
    (root / "A" / "study_1" / "wmt_jax" / "trial_1").mkdir(parents=True)  # a trial that wrote nothing
    (root / "A" / "study_2").mkdir()  # a study that wrote nothing at all
    for study in range(3):
        all_three(root, "B", 12, study=study)
    return root


def test_a_study_without_logs_counts_as_not_reached_and_is_named(tmp_path: Path, targets_file: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """A's studies 1 and 2 left folders but no eval_measurements.csv: they were dropped without a
    word, A's median was its one good study's, and A ranked first (also with strict=true)."""
    root = with_studies_that_wrote_nothing(tmp_path / "logs")
    with pytest.warns(UserWarning) as caught:
        table = score_tree(root, load_targets(targets_file), compat=False)
    said = " ".join(str(w.message) for w in caught)
    assert "study_1" in said and "study_2" in said and "trial_1" in said, said
    assert scores(table)["B"] == pytest.approx(1.0) and scores(table)["A"] == 0.0  # median of 10, inf, inf
    assert main(["score", "format=algoperf", f"targets={targets_file}", f"results={root}", f"out={tmp_path / 'o'}",
                 "strict=true"]) == 1
    assert "study_2" in capsys.readouterr().err


def test_a_folder_beside_the_studies_that_is_no_study_is_not_counted_as_one(tmp_path: Path, targets_file: Path) -> None:
    """A notebook's .ipynb_checkpoints (or notes/) in a submission's folder: AlgoPerf finds no trial in
    it; padded as a study that never reached, it moved A's median (0.9141 -> 0.8131 in compat)."""
    root = tmp_path / "logs"
    for study in range(3):
        all_three(root, "A", 10 + study, study=study)
        all_three(root, "B", 12 + 3 * study, study=study)
    for compat in (True, False):
        before = scores(score_tree(root, load_targets(targets_file), compat=compat))
        (root / "A" / ".ipynb_checkpoints").mkdir(exist_ok=True)
        (root / "A" / "notes").mkdir(exist_ok=True)
        assert scores(score_tree(root, load_targets(targets_file), compat=compat)) == before


def test_targets_and_logs_that_do_not_match_are_named(tmp_path: Path, targets_file: Path) -> None:
    """A misspelt held-out name in the targets file: every submission silently scored 0 there; a log
    workload outside the targets file was skipped without a word."""
    root = tmp_path / "logs"
    for sub, time in (("A", 10), ("B", 15)):
        write_trial(root, sub, "wmt", [time], reach_at=0)
        write_trial(root, sub, "ogbg", [time], reach_at=0)
        folder = root / sub / "study_0" / "wmt_glu_tnah_jax" / "trial_1"  # misspelt in the logs
        folder.mkdir(parents=True)
        (folder / "eval_measurements.csv").write_text("global_step,score,validation/bleu\n100,10,40\n")
    with pytest.warns(UserWarning) as caught:
        score_tree(root, load_targets(targets_file), compat=False)
    said = " ".join(str(w.message) for w in caught)
    assert "wmt_glu_tanh" in said and "no logs" in said and "wmt_glu_tnah" in said, said


def test_a_target_met_at_time_0_and_a_log_without_steps_are_said(tmp_path: Path, targets_file: Path) -> None:
    """A first row at 0 s meeting the target made every ratio on that workload 0/0 (every score 0);
    a CSV without global_step gave a steps score of 0, shown as if measured."""
    root = tmp_path / "logs"
    all_three(root, "A", 10)
    all_three(root, "B", 20)
    write_trial(root, "C", "wmt", [0], reach_at=0)
    with pytest.warns(UserWarning, match="0 s"):
        table = score_tree(root, load_targets(targets_file), compat=False)
    assert scores(table)["A"] == pytest.approx(1.0)
    csv = root / "B" / "study_0" / "ogbg_jax" / "trial_1" / "eval_measurements.csv"
    pd.read_csv(csv).drop(columns="global_step").to_csv(csv, index=False)
    with pytest.warns(UserWarning, match="global_step"):
        table = score_tree(root, load_targets(targets_file), compat=False)
    assert table["steps_score"].isna().all() and scores(table)["A"] == pytest.approx(1.0)


# ------------------------------------------------------------------ compat: AlgoPerf's scorer, as it reads a tree
# Each case below was scored by AlgoPerf's own score_submissions.py (mlcommons/algorithmic-efficiency at
# 414e82e2, the v0.5 scoring with its NaN fix) on logs of this kind, and compat=true disagreed with it before.
def test_compat_takes_each_median_over_the_studies_with_logs(tmp_path: Path, targets_file: Path) -> None:
    """AlgoPerf's scorer skips a trial without its CSV and a study without a workload's trials (its
    median is over the studies that have logs); ours counts them as never reached (see the test above)."""
    root = with_studies_that_wrote_nothing(tmp_path / "logs")
    with pytest.warns(UserWarning, match="left out, as AlgoPerf's scorer does"):
        table = score_tree(root, load_targets(targets_file), compat=True)
    assert table.loc[table["submission"] == "A", "time_s:wmt"].item() == 10.0
    assert scores(table)["A"] == pytest.approx(1.0) and list(table["submission"]) == ["A", "B"]


def test_compat_keeps_a_nan_or_0_s_time_at_the_first_row_reaching_the_target(tmp_path: Path,
                                                                               targets_file: Path) -> None:
    """A NaN time makes the study's time NaN, so the median's (AlgoPerf disqualifies the workload); a 0 s
    time is the workload's fastest, every other time is beyond 4x it, and 0/0 keeps it reached."""
    root = tmp_path / "logs"
    for study in range(3):
        all_three(root, "A", 10, study=study)
        write_trial(root, "B", "wmt", [float("nan") if study == 0 else 10.0], reach_at=0, study=study)
        write_trial(root, "B", "wmt_glu_tanh", [10], reach_at=0, study=study)
        write_trial(root, "B", "ogbg", [10], reach_at=0, study=study)
    with pytest.warns(UserWarning, match="kept as it is"):
        compat = scores(score_tree(root, load_targets(targets_file), compat=True))
    assert compat == pytest.approx({"A": 1.0, "B": 0.5}, abs=1e-12)  # B's wmt: median of NaN, 10, 10 is NaN
    with pytest.warns(UserWarning, match="counted as never reaching"):
        ours = scores(score_tree(root, load_targets(targets_file), compat=False))
    assert ours == pytest.approx({"A": 1.0, "B": 1.0}, abs=1e-12)  # median of inf, 10, 10

    root = tmp_path / "zero"
    all_three(root, "A", 10)
    all_three(root, "B", 20)
    write_trial(root, "C", "wmt", [0], reach_at=0)
    write_trial(root, "C", "wmt_glu_tanh", [10], reach_at=0)
    write_trial(root, "C", "ogbg", [10], reach_at=0)
    with pytest.warns(UserWarning, match="kept as it is"):
        compat = scores(score_tree(root, load_targets(targets_file), compat=True))
    assert compat["C"] == pytest.approx(1.0) and compat["A"] == pytest.approx(0.5)  # A's 10 s: above 4 x 0 s


def test_compat_reads_trial_folders_as_algoperf_does(tmp_path: Path, targets_file: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """trial_1_rerun is a trial for AlgoPerf's scorer (its pattern matches the start of the name): compat reads
    it, ours skips it with a warning (it skipped it silently). A tie on the eval index goes to the trial
    listed first in the folder (os.listdir), as AlgoPerf's scorer takes it, not to the lowest number."""
    root = tmp_path / "logs"
    write_trial(root, "A", "wmt", [5, 50, 100], reach_at=2, trial=1)
    rerun = root / "A" / "study_0" / "wmt_jax" / "trial_1_rerun"
    rerun.mkdir()
    pd.DataFrame({"global_step": [100], "score": [10.0], "validation/bleu": [40.0]}).to_csv(
        rerun / "eval_measurements.csv", index=False)
    for sub in ("A", "B"):
        write_trial(root, sub, "wmt_glu_tanh", [5], reach_at=0)
        write_trial(root, sub, "ogbg", [5], reach_at=0)
    write_trial(root, "B", "wmt", [20], reach_at=0)
    targets = load_targets(targets_file)
    assert score_tree(root, targets, compat=True).set_index("submission").loc["A", "time_s:wmt"] == 10.0
    with pytest.warns(UserWarning, match="trial_1_rerun: skipped"):
        assert score_tree(root, targets, compat=False).set_index("submission").loc["A", "time_s:wmt"] == 100.0

    root = tmp_path / "ties"
    write_trial(root, "A", "wmt", [5, 50], reach_at=1, trial=1)
    write_trial(root, "A", "wmt", [5, 30], reach_at=1, trial=2)  # the same eval index, sooner
    write_trial(root, "A", "wmt_glu_tanh", [5], reach_at=0)
    write_trial(root, "A", "ogbg", [5], reach_at=0)
    for reverse, expected in ((False, 50.0), (True, 30.0)):  # the listing order decides, whatever the numbers
        monkeypatch.setattr(algoperf, "listdir", lambda path, reverse=reverse: sorted(os.listdir(path),
                                                                                      reverse=reverse))
        assert score_tree(root, targets, compat=True).loc[0, "time_s:wmt"] == expected
    monkeypatch.undo()
    assert score_tree(root, targets, compat=False).loc[0, "time_s:wmt"] == 30.0  # ours: the fastest
