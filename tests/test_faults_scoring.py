"""Scoring with faults in the records: nothing lost, nothing silently wrong.

Damaged or missing files, trials that never ended, stray entries in AlgoPerf log trees, scores
that are equal up to rounding, and lone trials that share a seed. Every record here is synthetic
(written in milliseconds), never trained.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.core.records import append_jsonl, write_json_atomic
from harness.core.sweep_file import write_sweep
from scoring.leaderboard import build
from scoring.records import load_evals, load_trials, read_records
from scoring.scores import area_score, bootstrap, ranks, ratios

pytestmark = pytest.mark.faults


# ------------------------------------------------------------------------------- synthetic records
def write_record(folder: Path, submission: str, time: float | None, *, workload: str = "w1", seed: int = 0,
                 study: int | None = None, trial: int | None = None, ruleset: str = "single",
                 lr: float = 1e-3, status: str | None = None, error_in: str | None = None) -> Path:
    """A finished trial's manifest.json and evals.jsonl (two evaluations, then the end line);
    ``error_in``: a failed trial's, where its error was raised (a RuntimeError)."""
    status = status or ("reached" if time is not None else "not_reached")
    steps = 100 if time is None else int(time * 10)
    summary = {"status": status, "time_to_target_s": time, "steps_to_target": None if time is None else steps,
               "best_validation": 0.95 if time is not None else 0.5, "target": 0.9, "metric": "accuracy",
               "higher_is_better": True, "steps": steps, "submission_time_s": time or 50.0, "max_runtime_s": 50.0,
               "workload": workload, "size": "cpu",
               **({"error_in": error_in, "error_type": "RuntimeError"} if error_in else {})}
    manifest = {"schema_version": 1, "trial_id": folder.name, "workload": workload, "size": "cpu",
                "submission": submission, "hparams": {"lr": lr}, "seed": seed, "study": study, "trial": trial,
                "ruleset": ruleset, "config_hash": f"{seed:06d}{int(lr * 1e6):06d}",
                "metric": "accuracy", "higher_is_better": True, "target": 0.9, "max_runtime_s": 50.0,
                "status": status, "summary": summary}
    write_json_atomic(folder / "manifest.json", manifest)
    end = summary["submission_time_s"]
    for step, seconds, value in ((steps // 2, end / 2, 0.5), (steps, end, summary["best_validation"])):
        append_jsonl(folder / "evals.jsonl", {"event": "eval", "step": step, "submission_time_s": seconds,
                                              "metrics": {"validation/accuracy": value}})
    append_jsonl(folder / "evals.jsonl", {"event": "end", **summary})
    return folder


def write_sweep_records(results: Path, submission: str, times: list[list[float | None]], workload: str = "w1",
                        ruleset: str = "external") -> Path:
    """A sweep folder as `optbench tune` leaves it: sweep.json and study<k>/trial<j>/ records;
    ``times[k][j]`` is trial j of study k's time to target (None: never reached)."""
    folder = results / f"{workload}-cpu" / submission / f"{ruleset}-0123456789"
    entries = []
    for k, study in enumerate(times):
        for j, time in enumerate(study):
            seed = 1000 * k + j
            record = write_record(folder / f"study{k}" / f"trial{j}", submission, time, workload=workload, seed=seed,
                                  study=k, trial=j, ruleset=ruleset)
            entries.append({"index": len(entries), "study": k, "trial": j, "seed": seed, "hparams": {},
                            "record_dir": str(record), "config": {}})
    write_sweep({"kind": "optbench-sweep", "sweep_id": "0123456789", "dir": str(folder), "workload": workload,
                 "size": "cpu", "submission": submission, "ruleset": ruleset, "studies": len(times),
                 "trials_per_study": len(times[0]), "trials": entries})
    return folder


@pytest.fixture
def sweeps(tmp_path: Path) -> Path:
    """Five submissions, two workloads, 2 studies x 2 trials: A is the fastest everywhere."""
    results = tmp_path / "results"
    speed = {"A": 10.0, "B": 14.0, "C": 18.0, "D": 22.0, "E": 26.0}
    for submission, base in speed.items():
        for workload in ("w1", "w2"):
            write_sweep_records(results, submission, [[base, None], [None, base + 1]], workload=workload)
    return results


def trial_dir(results: Path, submission: str, study: int, trial: int, workload: str = "w1") -> Path:
    return results / f"{workload}-cpu" / submission / "external-0123456789" / f"study{study}" / f"trial{trial}"


def score(results: Path, out: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str]:
    code = main(["score", f"results={results}", f"out={out}", "bootstrap=0", *extra])
    return code, capsys.readouterr().err


DAMAGE = {
    "garbage bytes": lambda path: path.write_bytes(b"\x00\xff\xfe garbage \x80"),
    "empty file": lambda path: path.write_text(""),
    "a JSON list": lambda path: path.write_text("[1, 2, 3]"),
    "no workload": lambda path: path.write_text(json.dumps(
        {k: v for k, v in json.loads(path.read_text()).items() if k != "workload"})),
    "text time": lambda path: path.write_text(json.dumps(
        {**json.loads(path.read_text()), "summary": {**json.loads(path.read_text())["summary"],
                                                     "time_to_target_s": "fast"}})),
}


# ------------------------------------------------------------------------------- damaged manifests
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_manifest_is_named_and_listed_not_a_traceback(damage: str, sweeps: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    manifest = trial_dir(sweeps, "A", 0, 0) / "manifest.json"
    DAMAGE[damage](manifest)
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    assert str(manifest) in err and "damaged" in err and "Traceback" not in err
    notes = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "A on w1-cpu" in notes and "study0/trial0" in notes

    code, err = score(sweeps, tmp_path / "strict", capsys, "strict=true")
    assert code == 1 and str(manifest) in err and "strict=true" in err
    assert not (tmp_path / "strict").exists()  # refused before writing anything


def test_a_damaged_lone_manifest_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    write_record(results / "w1-cpu" / "A" / "seed0-a", "A", 10.0)
    lone = write_record(results / "w1-cpu" / "B" / "seed0-b", "B", 12.0)
    (lone / "manifest.json").write_text('{"status": "reac')
    code, err = score(results, tmp_path / "board", capsys)
    assert code == 0 and str(lone / "manifest.json") in err and "not valid JSON" in err


def test_a_lone_trial_left_running_is_its_own_unreached_study(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_record(results / "w1-cpu" / "A" / "seed0-a", "A", 10.0)
    leave_running(write_record(results / "w1-cpu" / "A" / "seed1-a", "A", 8.0, seed=1))
    records = read_records(results)
    assert [(p.kind, p.submission, p.workload) for p in records.problems] == [("running", "A", "w1-cpu")]
    board = build(records.trials, samples=0, problems=records.problems)
    assert sorted(board.study_times[0, 0].tolist()) == [10.0, np.inf]


def test_a_deleted_evals_file_is_listed_before_any_output_is_written(sweeps: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    evals = trial_dir(sweeps, "A", 0, 0) / "evals.jsonl"  # A's fastest trial: the curves plot draws it
    evals.unlink()
    code, err = score(sweeps, tmp_path / "strict", capsys, "strict=true")
    assert code == 1 and str(evals) in err and not (tmp_path / "strict").exists()
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0 and str(evals) in err
    board = tmp_path / "board"
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.html", "curves_w1_cpu.png"} <= {
        p.name for p in board.iterdir()}
    table = pd.read_csv(board / "leaderboard.csv").set_index("submission")
    assert table.loc["A", "rank"] == 1  # its outcome is in its manifest: still scored


# ------------------------------------------------------------------------------- lost trials
def lose_manifest(record: Path) -> None:
    (record / "manifest.json").unlink()


def leave_running(record: Path) -> None:
    manifest = json.loads((record / "manifest.json").read_text())
    manifest.pop("summary")
    (record / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    lines = (record / "evals.jsonl").read_text().splitlines()
    (record / "evals.jsonl").write_text("\n".join(lines[:-1]) + "\n")


def drop_end_line(record: Path) -> None:
    lines = (record / "evals.jsonl").read_text().splitlines()
    (record / "evals.jsonl").write_text("\n".join(lines[:-1]) + "\n")


LOSSES = {"no manifest": (lose_manifest, "manifest.json"), "running": (leave_running, "running"),
          "no end line": (drop_end_line, "end line")}


@pytest.mark.parametrize("loss", list(LOSSES))
def test_a_lost_trial_is_never_silent(loss: str, sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lose, words = LOSSES[loss]
    for workload in ("w1", "w2"):
        for study in (0, 1):  # every reaching trial of A
            lose(trial_dir(sweeps, "A", study, study, workload))
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 2, err  # one per affected (submission, workload)
    for workload, line in zip(("w1", "w2"), warnings):
        assert f"A on {workload}-cpu" in line and "study0/trial0" in line and "study1/trial1" in line
        assert words in line and ("optbench tune" in line or "restore" in line)
    for name in ("leaderboard.md", "leaderboard.html"):
        assert "A on w1-cpu" in (tmp_path / "board" / name).read_text()
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("submission")
    assert table.loc["A", "incomplete_on"] == "w1-cpu, w2-cpu"

    code, err = score(sweeps, tmp_path / "strict", capsys, "strict=true")
    assert code == 1 and "A on w1-cpu" in err and "A on w2-cpu" in err
    assert not (tmp_path / "strict").exists()


def test_read_records_knows_the_planned_trials(sweeps: Path) -> None:
    lose_manifest(trial_dir(sweeps, "C", 1, 0))
    leave_running(trial_dir(sweeps, "C", 1, 1, "w2"))
    records = read_records(sweeps)
    found = {(p.submission, p.workload, p.record_dir.parent.name + "/" + p.record_dir.name, p.kind)
             for p in records.problems}
    assert found == {("C", "w1-cpu", "study1/trial0", "missing"), ("C", "w2-cpu", "study1/trial1", "running")}
    assert len(records.trials) == 5 * 2 * 4 - 2
    with pytest.warns(UserWarning) as caught:
        load_trials(sweeps)  # the plain table's reader warns too: nobody drops a trial silently
    assert [str(w.message).split(":")[0] for w in caught] == ["C on w1-cpu", "C on w2-cpu"]


def test_a_trial_that_did_not_end_counts_as_not_reaching_the_target(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_sweep_records(results, "A", [[10.0], [12.0], [14.0]])
    write_sweep_records(results, "B", [[20.0], [20.0], [20.0]])
    lose_manifest(trial_dir(results, "A", 2, 0))  # a whole study of A did not end: inf, not left out
    for study in (0, 1, 2):  # every record of B is gone; its plan (sweep.json) is not
        shutil.rmtree(trial_dir(results, "B", study, 0).parent)
    records = read_records(results)
    board = build(records.trials, samples=0, problems=records.problems, planned=records.planned)
    a, b = board.submissions.index("A"), board.submissions.index("B")
    assert sorted(board.study_times[a, 0].tolist()) == [10.0, 12.0, np.inf] and board.times[a, 0] == 12.0
    assert board.times[b, 0] == np.inf  # still on the board, with nothing reached
    table = board.table.set_index("submission")
    assert table.loc["B", "score"] == 0.0 and table.loc["B", "incomplete_on"] == table.loc["A", "incomplete_on"]
    assert any(note.startswith("B on w1-cpu: 3 of 3 planned trials not scored") for note in board.notes)


def test_a_damaged_sweep_file_is_named_and_its_trials_still_scored(sweeps: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    sweep = trial_dir(sweeps, "B", 0, 0).parents[1] / "sweep.json"
    sweep.write_text("{}")
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0 and str(sweep) in err
    assert len(pd.read_csv(tmp_path / "board" / "leaderboard.csv")) == 5


def test_sweep_trials_found_without_their_sweep_file_are_scored_and_marked_incomplete(
        sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A sweep folder copied without its sweep.json (and without one study): its trials were read as
    lone trials, so the lost study vanished without a word and B ranked on the studies left."""
    folder = trial_dir(sweeps, "B", 0, 0).parents[1]
    (folder / "sweep.json").unlink()
    shutil.rmtree(folder / "study1")
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("submission")
    assert board.loc["B", "incomplete_on"] == "w1-cpu" and pd.isna(board.loc["C", "incomplete_on"])
    assert board.loc["B", "studies"] == 1  # scored as found
    notes = (tmp_path / "board" / "leaderboard.md").read_text()
    line = next(line for line in notes.splitlines() if line.startswith("note: B on w1-cpu"))
    assert str(folder / "sweep.json") in line and "2 trials of a tuning sweep" in line and "restore sweep.json" in line
    assert line.count("sweep.json: ") == 1  # one line for the sweep, not one per trial
    code, err = score(sweeps, tmp_path / "strict", capsys, "strict=true")
    assert code == 1 and "sweep.json" in err


def copy_over(source: Path, folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder)


def edit_study(folder: Path) -> None:
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "study": 7}))


MISPLACED = {  # a sweep's slot (folder study0/trial0 of B, not reached) holding what is not its planned trial
    "another slot's record copied over it": lambda results: copy_over(trial_dir(results, "B", 1, 1),
                                                                      trial_dir(results, "B", 0, 1)),
    "another sweep's record of the slot": lambda results: copy_over(trial_dir(results, "A", 0, 0),
                                                                    trial_dir(results, "B", 0, 1)),
    "its manifest's study edited": lambda results: edit_study(trial_dir(results, "B", 0, 1)),
}
STRAYS = {  # a record in a folder of B's sweep that its plan has no trial of: B's planned trials are all there
    "an unplanned study folder added": lambda results: copy_over(trial_dir(results, "B", 1, 1),
                                                                 trial_dir(results, "B", 5, 0)),
    "a backup copy of a trial": lambda results: copy_over(trial_dir(results, "B", 0, 0),
                                                          trial_dir(results, "B", 0, 0).with_name("trial0.bak")),
}


@pytest.mark.parametrize("stray", list(STRAYS))
def test_a_record_outside_the_plan_is_named_but_does_not_make_the_sweep_incomplete(
        stray: str, sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A backup copy of a trial folder said "1 of 4 planned trials not scored" and marked B incomplete,
    though all 4 were there and scored: it sent the user looking for a trial that was not missing."""
    clean, _ = score(sweeps, tmp_path / "clean", capsys)
    STRAYS[stray](sweeps)
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0 and clean == 0, err
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("submission")
    assert pd.isna(board.loc["B", "incomplete_on"]), board.loc["B"]
    before = pd.read_csv(tmp_path / "clean" / "leaderboard.csv").set_index("submission")
    assert board.loc["B", "score"] == before.loc["B", "score"]  # not scored: the board is the clean one's
    line = next(line for line in err.splitlines() if "B on w1-cpu" in line)
    assert "not scored" in line and "outside its plan" in line and "planned trials" not in line, line
    assert "move it out" in line, line
    code, err = score(sweeps, tmp_path / "strict", capsys, "strict=true")
    assert code == 1 and "B on w1-cpu" in err  # strict: anything that is not right refuses


@pytest.mark.parametrize("misplace", list(MISPLACED))
def test_a_record_that_is_not_the_slot_s_planned_trial_is_not_scored(misplace: str, sweeps: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """A trial's study, trial and seed came from its manifest alone: a record copied into a sweep's
    folder from another slot or sweep (or a manifest edited) joined the sweep's studies, moved the
    median, and passed strict=true."""
    MISPLACED[misplace](sweeps)
    if "another sweep" in misplace:  # A's record under B's folder: its submission is A's
        manifest = trial_dir(sweeps, "B", 0, 1) / "manifest.json"
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "submission": "B", "seed": 4242}))
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("submission")
    assert board.loc["B", "incomplete_on"] == "w1-cpu", board.loc["B"]
    assert board.loc["B", "studies"] == 2 and pd.isna(board.loc["C", "incomplete_on"])
    assert "sweep.json" in err and "B on w1-cpu" in err, err
    code, err = score(sweeps, tmp_path / "strict", capsys, "strict=true")
    assert code == 1 and "B on w1-cpu" in err


def test_a_damaged_sweep_file_marks_its_submission_as_a_missing_one_does(sweeps: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    """A torn sweep.json left the row unmarked, and its lost study out of the median, where a deleted
    sweep.json marks it incomplete: the more damaged plan was the more trusted."""
    folder = trial_dir(sweeps, "B", 0, 0).parents[1]
    (folder / "sweep.json").write_text('{"version": 1, "trials": [')
    shutil.rmtree(folder / "study1")
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("submission")
    assert board.loc["B", "incomplete_on"] == "w1-cpu" and pd.isna(board.loc["C", "incomplete_on"])
    notes = (tmp_path / "board" / "leaderboard.md").read_text()
    line = next(line for line in notes.splitlines() if line.startswith("note: B on w1-cpu"))
    assert str(folder / "sweep.json") in line and "damaged" in line and "2 trials of a tuning sweep" in line, line


def test_steps_to_target_edited_in_a_manifest_is_caught(sweeps: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    """Only the time to target was compared with the evaluations' end line: an edited step count
    moved the steps score without a word."""
    manifest = trial_dir(sweeps, "A", 0, 0) / "manifest.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "summary": {**record["summary"], "steps_to_target": 1}}))
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0 and "steps_to_target" in err and str(trial_dir(sweeps, "A", 0, 0) / "evals.jsonl") in err, err


def test_a_target_edited_in_every_record_of_a_workload_is_caught(sweeps: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """Each record agreed with the others (one target per workload), so an edit of all of them was
    published: the Workloads table said 'accuracy >= 0.5' for trials run against 0.9."""
    manifests = sorted((sweeps / "w1-cpu").rglob("manifest.json"))
    for manifest in manifests:
        record = json.loads(manifest.read_text())
        record["identity"] = {"spec": {"target": 0.9}}  # what a real record holds: the target it ran for
        manifest.write_text(json.dumps(record))
    code, _ = score(sweeps, tmp_path / "ran", capsys, "strict=true")
    assert code == 0
    for manifest in manifests:
        record = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**record, "target": 0.5, "summary": {**record["summary"], "target": 0.5}}))
    code, err = score(sweeps, tmp_path / "edited", capsys, "strict=true")
    assert code == 1 and "target is 0.5, but the trial ran for the target 0.9" in err
    assert not (tmp_path / "edited").exists()


def test_an_output_folder_inside_a_trial_s_or_sweep_s_records_is_refused(sweeps: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    """out= inside a trial's folder was written: its files then lay among the records they came from."""
    trial = trial_dir(sweeps, "A", 0, 0)
    for inside in (trial / "board", trial.parent.parent / "board"):
        code, err = score(sweeps, inside, capsys)
        assert code == 2 and "is inside the records of a trial or sweep" in err, err
        assert not inside.exists()
    code, err = score(sweeps, sweeps / "w1-cpu" / "board", capsys)  # beside the records: fine
    assert code == 0, err


@pytest.mark.parametrize("stray", ["{}", "a copy of a trial's"])
def test_record_files_at_the_top_of_the_results_folder_are_named_not_read(
        stray: str, sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Before: an empty one was a damaged lone trial, "delete the trial's folder" (the whole results
    folder); a copy of a real one made its sweep two sweeps, one of them the results folder's parent."""
    copy = trial_dir(sweeps, "A", 0, 0) / "manifest.json"
    (sweeps / "manifest.json").write_text("{}" if stray == "{}" else copy.read_text())
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    assert "record files at its top, not read" in err and "delete" not in err
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    assert table["incomplete_on"].isna().all()  # nothing else is affected
    code, err = score(sweeps, tmp_path / "strict", capsys, "strict=true")
    assert code == 1 and "record files at its top" in err


def test_nothing_finished_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    folder = write_sweep_records(results, "A", [[10.0]])
    lose_manifest(folder / "study0" / "trial0")
    code, err = score(results, tmp_path / "board", capsys)
    # not bad input (exit 2) but records not there yet (exit 1, as strict=true): a tune still running
    assert code == 1 and "has finished yet" in err and "study0/trial0" in err and not (tmp_path / "board").exists()


# ------------------------------------------------------------------------------- rank ties
def permuted_tie_cases(cases: int = 300, submissions: int = 20, workloads: int = 12, seed: int = 0):
    """Ratio tables whose last row is row 0's ratios in another order: mathematically equal scores."""
    rng = np.random.default_rng(seed)
    for _ in range(cases):
        r = 1 + rng.exponential(1.0, size=(submissions, workloads))
        r[rng.integers(1, submissions - 1, workloads), np.arange(workloads)] = 1.0  # each column's fastest
        r[-1] = rng.permutation(r[0])
        yield r


def test_equal_scores_from_permuted_ratios_share_a_rank() -> None:
    split = 0
    for r in permuted_tie_cases():
        position = ranks(area_score(r, 4.0))
        split += position[0] != position[-1]
    assert split == 0
    assert ranks(np.array([0.5, 0.5 * (1 + 1e-12), 0.5 * (1 + 1e-6), 0.2])).tolist() == [2, 2, 1, 4]


def test_leaderboard_and_bootstrap_use_the_same_tie_rule() -> None:
    for r in permuted_tie_cases(cases=50, submissions=4, workloads=9, seed=3):
        scores = area_score(r, 4.0)
        if scores[0] != scores[-1]:  # equal maths, different floats
            break
    else:
        pytest.fail("no case with float-unequal, mathematically equal scores")
    times = r * 10.0  # study times whose ratios are r (the fastest of each column is 10 s)
    rows = [{"workload": f"w{j}", "size": "cpu", "submission": f"s{i}", "seed": 0, "study": 0, "trial": 0,
             "ruleset": "external", "schema_version": 1, "status": "reached", "time_to_target_s": times[i, j],
             "steps_to_target": 100, "best_validation": 0.9, "target": 0.9, "metric": "accuracy",
             "higher_is_better": True, "max_runtime_s": 1e3}
            for i in range(r.shape[0]) for j in range(r.shape[1])]
    board = build(pd.DataFrame(rows), samples=50, seed=0)
    table = board.table.set_index("submission")
    assert table.loc["s0", "rank"] == table.loc[f"s{r.shape[0] - 1}", "rank"]
    assert table["rank_probability"].tolist() == [1.0] * r.shape[0]  # no variance: every rank holds
    uncertainty = bootstrap(times[:, :, None], 4.0, samples=20, seed=0)
    assert uncertainty.rank_probability.tolist() == [1.0] * r.shape[0]
    assert ratios(times) == pytest.approx(r)


# ------------------------------------------------------------------------------- lone trials
def test_each_lone_trial_is_its_own_study_even_with_one_seed(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for lr, time in ((1e-3, 10.0), (1e-2, 20.0), (1e-1, None)):  # `optbench trial seed=0 lr=...` three times
        write_record(results / "w1-cpu" / "A" / f"seed0-{lr:g}", "A", time, lr=lr)
    write_record(results / "w1-cpu" / "B" / "seed0-b", "B", 15.0)
    board = build(load_trials(results), samples=0)
    a = board.submissions.index("A")
    assert np.sort(board.study_times[a, 0]).tolist() == [10.0, 20.0, np.inf]  # three studies, not one
    assert board.times[a, 0] == 20.0  # their median
    assert board.table.loc[0, "submission"] == "B"


# ------------------------------------------------------------------------------- readers name the file
def test_load_evals_names_the_file_it_could_not_use(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"missing.*evals.jsonl.*no such file"):
        assert load_evals(tmp_path / "missing").empty
    evals = tmp_path / "evals.jsonl"
    append_jsonl(evals, {"event": "eval", "step": 1, "submission_time_s": 1.0, "metrics": {"validation/a": 0.5}})
    append_jsonl(evals, {"event": "eval", "step": "two", "metrics": []})
    with pytest.warns(UserWarning, match=r"evals.jsonl:2: .*expected"):
        assert load_evals(tmp_path)["step"].tolist() == [1]


# ------------------------------------------------------------------------------- AlgoPerf log trees
ALGOPERF_TARGETS = {"base_workloads": ["wmt"], "held_out_workloads": [],
                    "workloads": {"wmt": {"target_metric_name": "bleu", "validation_target_value": 30.0,
                                          "step_hint": 1000}}}


def algoperf_tree(root: Path) -> None:
    for submission, seconds in (("X", 40.0), ("Y", 60.0)):
        folder = root / submission / "study_0" / "wmt_jax" / "trial_1"
        folder.mkdir(parents=True)
        pd.DataFrame({"global_step": [100, 200], "score": [seconds / 2, seconds],
                      "validation/bleu": [10.0, 31.0]}).to_csv(folder / "eval_measurements.csv", index=False)


def test_algoperf_stray_entries_are_skipped_with_one_warning_each(tmp_path: Path) -> None:
    from scoring.algoperf import load_targets, score_tree

    (tmp_path / "targets.json").write_text(json.dumps(ALGOPERF_TARGETS))
    targets = load_targets(tmp_path / "targets.json")
    clean, messy = tmp_path / "clean", tmp_path / "messy"
    algoperf_tree(clean)
    shutil.copytree(clean, messy)
    stray_trial = messy / "X" / "study_0" / "trial_3"  # a trial folder one level too high
    shutil.copytree(messy / "X" / "study_0" / "wmt_jax" / "trial_1", stray_trial)
    stray_file = messy / "Y" / "study_0" / "notes.txt"
    stray_file.write_text("rerun on Tuesday")
    with pytest.warns(UserWarning) as caught:
        table = score_tree(messy, targets, compat=False)
    messages = [str(w.message) for w in caught]
    assert sum(str(stray_trial) in m for m in messages) == 1 and sum(str(stray_file) in m for m in messages) == 1
    pd.testing.assert_frame_equal(table, score_tree(clean, targets, compat=False))
    out = tmp_path / "board"
    assert main(["score", "format=algoperf", f"results={messy}", f"targets={tmp_path / 'targets.json'}",
                 f"out={out}", "strict=true"]) == 1 and not out.exists()


def test_algoperf_unreadable_time_names_the_file(tmp_path: Path) -> None:
    from scoring.algoperf import load_targets, score_tree

    (tmp_path / "targets.json").write_text(json.dumps(ALGOPERF_TARGETS))
    root = tmp_path / "logs"
    algoperf_tree(root)
    csv = root / "X" / "study_0" / "wmt_jax" / "trial_1" / "eval_measurements.csv"
    csv.write_text("global_step,score,validation/bleu\n100,soon,31.0\n")
    with pytest.warns(UserWarning, match=rf"{csv}.*score"):
        table = score_tree(root, load_targets(tmp_path / "targets.json"), compat=False)
    assert table.set_index("submission").loc["X", "score"] == 0.0


@pytest.mark.parametrize("index", ["false", "true"])
def test_submissions_tuned_with_more_trials_per_study_are_not_ranked_beside_the_others(
        index: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Best of 4 trials against best of 2: a bigger tuning budget, not a better optimizer. Refused,
    from the plans (a sweep still running counts its planned trials, not the ended ones), and so
    from a sweep's index as from its files."""
    results = tmp_path / "results"
    write_sweep_records(results, "A", [[10.0, None], [None, 11.0]])
    big = write_sweep_records(results, "B", [[14.0, None, 12.0, None], [None, 15.0, None, None]])
    for damage in ("none", "none", "a trial not ended"):  # the second time from the indexes the first wrote
        if damage != "none":
            shutil.rmtree(big / "study1" / "trial3")  # not ended yet: still 4 planned per study
        code, err = score(results, tmp_path / "out", capsys, f"index={index}")
        assert code == 2, err
        assert "different numbers of trials per study" in err and "w1-cpu" in err, err
        assert "(A: 2, B: 4;" in err and "trials=4" in err, err
        assert not (tmp_path / "out").exists()  # a refused score left an empty output folder
    shutil.rmtree(big)
    write_sweep_records(results, "B", [[14.0, None], [None, 15.0]])  # the same budget: scored
    code, err = score(results, tmp_path / "out", capsys, f"index={index}")
    assert code == 0, err


def test_trials_whose_submission_code_raised_are_marked_not_hidden_as_not_reached(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A submission whose code raised in 3 of its 4 trials read "not reached" on the board, and no
    note or column said a trial had failed: a broken optimizer looked like a slow one."""
    results = tmp_path / "results"
    write_sweep_records(results, "A", [[10.0, None], [None, 11.0]])
    folder = write_sweep_records(results, "B", [[None, None], [None, 30.0]])
    for study, trial in ((0, 0), (0, 1), (1, 0)):
        shutil.rmtree(folder / f"study{study}" / f"trial{trial}")
        write_record(folder / f"study{study}" / f"trial{trial}", "B", None, seed=1000 * study + trial, study=study,
                     trial=trial, ruleset="external", status="failed", error_in="submission.update")
    code, err = score(results, tmp_path / "board", capsys)
    assert code == 0, err
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("submission")
    assert board.loc["B", "failed_on"] == "w1-cpu" and pd.isna(board.loc["A", "failed_on"])
    page = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "B (failed on w1-cpu)" in page, page
    note = next(line for line in page.splitlines() if line.startswith("note: B on w1-cpu"))
    assert "3 of 4 trials failed" in note and "submission.update" in note and "RuntimeError" in note, note
    assert str(folder / "study0" / "trial0") in note, note


def test_a_sweep_file_copied_over_another_sweep_s_is_damaged_not_believed(sweeps: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    """A's sweep.json copied over B's passed score and status strict=true: status listed B's trials
    under A, and a rerun of B's tune found 'all trials finished' from A's plan."""
    plan_a = trial_dir(sweeps, "A", 0, 0).parents[1] / "sweep.json"
    plan_b = trial_dir(sweeps, "B", 0, 0).parents[1] / "sweep.json"
    shutil.copy(plan_a, plan_b)
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    line = next(line for line in err.splitlines() if str(plan_b) in line)
    assert "the plan of A's sweep" in line and "restore sweep.json" in line, line
    assert main(["status", f"results={sweeps}", "scheduler=false", "strict=true"]) == 1
    assert str(plan_b) in capsys.readouterr().err


def test_records_of_generated_data_beside_real_ones_are_said_in_a_note(sweeps: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """The pipeline check (`optbench suite suite=smoke`, generated data) run into the results folder
    of a real suite was scored as one more workload of the benchmark, without a word."""
    for manifest_path in sweeps.rglob("manifest.json"):  # w2: a smoke size's records; w1: real data
        manifest = json.loads(manifest_path.read_text())
        generated = manifest["workload"] == "w2"
        manifest["identity"] = {"spec": {"eval_every_steps": 10, "options": {"synthetic": True} if generated else {}}}
        manifest_path.write_text(json.dumps(manifest))
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    notes = [line for line in (tmp_path / "board" / "leaderboard.md").read_text().splitlines() if "generated" in line]
    assert len(notes) == 1 and notes[0].startswith("note: w2-cpu trained on generated data"), notes
    shutil.rmtree(sweeps / "w1-cpu")  # generated data alone (the pipeline check's own folder): said once
    code, err = score(sweeps, tmp_path / "board2", capsys)
    notes = [line for line in (tmp_path / "board2" / "leaderboard.md").read_text().splitlines() if "generated" in line]
    assert code == 0 and len(notes) == 1 and "every record here trained on generated data" in notes[0], err


def test_unequal_batch_sizes_on_a_workload_are_said_to_make_steps_unequal(sweeps: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """A submission that chose its own batch size was ranked by steps beside others without a word: a step of
    256 examples counted as one of 128."""
    for manifest_path in sweeps.rglob("manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        chose = manifest["submission"] == "B" and manifest["workload"] == "w1"
        manifest["hparams"]["batch_size"] = 256 if chose else 128
        manifest_path.write_text(json.dumps(manifest))
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    notes = [line for line in (tmp_path / "board" / "leaderboard.md").read_text().splitlines() if "batch size" in line]
    assert len(notes) == 1 and notes[0].startswith("note: w1-cpu: the submissions trained with different batch"), notes
    assert "A: 128; B: 256; C: 128" in notes[0] and "steps score" in notes[0]


def test_a_board_where_nobody_reached_any_target_ranks_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Every score 0: each submission was shown at rank 1, which reads as a win."""
    results = tmp_path / "results"
    for submission in ("A", "B"):
        for workload in ("w1", "w2"):
            write_sweep_records(results, submission, [[None, None]] * 2, workload=workload)
    code, err = score(results, tmp_path / "board", capsys)
    assert code == 0, err
    text = (tmp_path / "board" / "leaderboard.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| A") or line.startswith("| B")
            or line.startswith("| —")]
    assert [row.split(" | ")[0] for row in rows] == ["| —", "| —"], rows
    assert "no submission reached any target here" in text
    write_sweep_records(results, "A", [[5.0, None]] * 2, workload="w1")  # A reached w1: ranks again
    code, err = score(results, tmp_path / "board2", capsys)
    text = (tmp_path / "board2" / "leaderboard.md").read_text()
    assert code == 0 and "| 1 | A |" in text and "| 2 | B |" in text, err
    assert "no submission reached any target here" not in text and "no submission reached the target of w2" in text


def test_a_setting_s_uneven_step_rates_are_said_on_the_board(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    write_sweep_records(results, "A", [[10.0, None]] * 2)  # 100 steps in 10 s, and in 50 s: x5
    write_sweep_records(results, "B", [[10.0, 12.0]] * 2)  # 10 steps/s each
    code, err = score(results, tmp_path / "board", capsys)
    notes = [line for line in (tmp_path / "board" / "leaderboard.md").read_text().splitlines() if "steps/s" in line]
    assert code == 0 and len(notes) == 1, err
    assert notes[0].startswith("note: w1-cpu: trials of one submission and one setting ran at very different speeds "
                               "(A's ran at 2 to 10 steps/s (x5.0))"), notes


def test_records_of_other_examples_than_the_target_s_are_said_in_a_note(sweeps: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """A suite on another corpus (gpt's text_file) was ranked by times to tiny Shakespeare's target."""
    for manifest_path in sweeps.rglob("manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        manifest["data_sha256"] = "a" * 64
        manifest["target_data_sha256"] = "a" * 64 if manifest["workload"] == "w2" else "b" * 64
        manifest_path.write_text(json.dumps(manifest))
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    notes = [line for line in (tmp_path / "board" / "leaderboard.md").read_text().splitlines() if "calibrated" in line]
    assert len(notes) == 1 and notes[0].startswith("note: w1-cpu: its records trained on other examples"), notes


def test_a_workload_ranked_at_two_sizes_is_said_in_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    for submission, base in (("A", 10.0), ("B", 14.0)):
        write_sweep_records(results, submission, [[base, None], [None, base]])
        other = write_sweep_records(results, submission, [[base, None], [None, base]], workload="w1big")
        for manifest_path in other.rglob("manifest.json"):  # w1 at another size: w1-big
            manifest = json.loads(manifest_path.read_text())
            manifest["workload"], manifest["size"] = "w1", "big"
            manifest_path.write_text(json.dumps(manifest))
    code, err = score(results, tmp_path / "board", capsys)
    assert code == 0, err
    notes = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "w1 is ranked at 2 sizes (big, cpu)" in notes, notes


# ------------------------------------------------------------------- folders unreadable or linked in
def refuse_listing(monkeypatch: pytest.MonkeyPatch, blocked: Path) -> None:
    """``blocked`` cannot be listed, as a folder of mode 000 for an account that is not root."""
    import os

    real = os.scandir

    def scandir(path=".", *args):
        if Path(path) == blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.parametrize(("where", "marked"), [
    ("w1-cpu", None),  # a workload's folder: which submissions it holds is unknown
    ("w1-cpu/B", "w1-cpu"),  # a submission's folder: B's records of w1 incomplete
    ("w1-cpu/B/external-0123456789/study1", "w1-cpu"),  # a study: its planned trials unread
])
def test_an_unreadable_folder_is_named_and_refused_by_strict_not_skipped(
        where: str, marked: str | None, sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a folder that could not be listed was skipped without a word: B alone was ranked on
    w2 (or vanished), and strict=true passed."""
    blocked = sweeps / where
    refuse_listing(monkeypatch, blocked)
    code, err = score(sweeps, tmp_path / "board", capsys)
    assert code == 0, err
    assert str(blocked) in err and "cannot be listed (Permission denied)" in err and "chmod" in err
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("submission")
    if marked:
        assert table.loc["B", "incomplete_on"] == marked
    assert str(blocked) in (tmp_path / "board" / "leaderboard.md").read_text()
    code, err = score(sweeps, tmp_path / "strict", capsys, "strict=true")
    assert code == 1 and str(blocked) in err and not (tmp_path / "strict").exists()
    assert main(["status", f"results={sweeps}", "scheduler=false", "strict=true"]) == 1
    assert "cannot be listed" in capsys.readouterr().out


def test_a_folder_linked_in_from_elsewhere_is_scored_as_if_it_were_here(
        sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Results kept on scratch space and linked in: before, the link was not followed and its
    workload left out of the scores without a word (strict=true passed)."""
    code, _ = score(sweeps, tmp_path / "here", capsys, "strict=true")
    assert code == 0
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    shutil.move(sweeps / "w1-cpu", scratch / "w1-cpu")
    (sweeps / "w1-cpu").symlink_to(scratch / "w1-cpu")
    (sweeps / "w2-cpu" / "loop").symlink_to(sweeps)  # a link to an ancestor: followed never, no loop
    code, err = score(sweeps, tmp_path / "linked", capsys, "strict=true")
    assert code == 0, err
    here, linked = (pd.read_csv(tmp_path / name / "leaderboard.csv") for name in ("here", "linked"))
    pd.testing.assert_frame_equal(here, linked)
    assert main(["status", f"results={sweeps}", "scheduler=false", "strict=true"]) == 0
    assert capsys.readouterr().out.count("w1/cpu") == 5


@pytest.mark.parametrize("limit_kb", [2, 30])
def test_a_leaderboard_that_cannot_be_written_leaves_the_previous_one_whole(
        limit_kb: int, sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A full disk (here: a file-size limit) while scoring again truncated the plots in place (a
    Pillow traceback, 4096-byte PNGs) beside the old tables: a folder of two runs. Now every file
    is the previous run's, byte for byte, and the error names the file."""
    import resource
    import signal

    out = tmp_path / "board"
    code, err = score(sweeps, out, capsys)
    assert code == 0, err
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    assert any(name.endswith(".png") for name in before)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kb * 1024, hard))
    try:
        code, err = score(sweeps, out, capsys, "tau_max=3")  # another board: every file would change
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert code == 2 and "File too large" in err and "Traceback" not in err, err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # no temporary left either


def test_unequal_study_counts_and_lone_trials_are_said_and_not_given_intervals(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two studies need 2 of 2 to reach, three 2 of 3: a board of 2 against 3 studies said nothing of
    it. Three lone trials of three learning rates were bootstrapped as if they were repeats."""
    results = tmp_path / "results"
    write_sweep_records(results, "A", [[10.0], [11.0], [12.0]])
    write_sweep_records(results, "B", [[12.0], [13.0]])
    code, err = score(results, tmp_path / "board", capsys, "bootstrap=100")
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert code == 0 and "different numbers of studies (A: 3, B: 2)" in board, err
    lone = tmp_path / "lone"
    for k, lr in enumerate((1e-3, 1e-2, 1e-1)):
        write_record(lone / "w1-cpu" / "A" / f"seed0-{k}", "A", 10.0 + k, lr=lr)
        write_record(lone / "w1-cpu" / "B" / f"seed0-{k}", "B", 12.0 + k, lr=lr)
    code, err = score(lone, tmp_path / "board2", capsys, "bootstrap=100")
    table = pd.read_csv(tmp_path / "board2" / "leaderboard.csv")
    assert code == 0 and not table["uncertainty_shown"].any(), err
    assert "the ranks are point estimates" in (tmp_path / "board2" / "leaderboard.md").read_text()
