"""The sweeps' scoring index (scoring/record_index.py) changes how fast records are read, never
what is read: every check compares a read through the index with a read of the records alone,
after the records were changed in the ways a user or a crash changes them."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
from test_leaderboard_page import write_sweep_records, write_trial

import scoring.record_index as record_index
from harness.cli import main
from scoring.forked import Aside
from scoring.record_index import INDEX_FILE
from scoring.records import read_records


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Three sweeps (one with a trial missing, one with a hyperparameter only some trials have) and
    a lone trial."""
    root = tmp_path / "results"
    write_sweep_records(root, "A", [[10.0, None], [12.0, 11.0]])
    write_sweep_records(root, "B", [[14.0, 15.0], [None, 16.0]])
    write_sweep_records(root, "C", [[20.0, None], [21.0, 22.0]], workload="w2")
    shutil.rmtree(sweep(root, "C", "w2") / "study1" / "trial0")  # planned, lost
    manifest = sweep(root, "B") / "study0" / "trial1" / "manifest.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "hparams": {"lr": 0.1}}))  # a column only this trial has
    write_trial(root / "w1-cpu" / "A" / "seed7-abc", "A", 9.0, seed=7, ruleset="single")
    return root


def sweep(root: Path, submission: str, workload: str = "w1") -> Path:
    return root / f"{workload}-cpu" / submission / "external-0123456789"


def same_as_records(root: Path, workers: int = 1) -> int:
    """Read ``root`` through the index (updating it) and from the records alone: the same result.
    Returns how many trials came from the index."""
    indexed = read_records(root, workers=workers, index=True)
    plain = read_records(root, workers=workers)
    pd.testing.assert_frame_equal(indexed.trials, plain.trials)
    assert indexed.problems == plain.problems and indexed.planned == plain.planned
    assert plain.indexed == 0 and not indexed.unindexed
    return indexed.indexed


def test_a_second_read_takes_the_finished_trials_from_the_index_and_reads_the_same(results: Path) -> None:
    assert same_as_records(results) == 0  # the first read writes the indexes
    assert sorted(p.parent.name for p in results.rglob(INDEX_FILE)) == ["external-0123456789"] * 3
    assert same_as_records(results) == 12 - 1  # every sweep trial but the lost one
    assert same_as_records(results, workers=2) == 11


@pytest.mark.parametrize("change", ["manifest in place", "manifest restored with its old times", "evals truncated",
                                    "evals removed", "trial removed", "folder added", "plan replaced",
                                    "index garbage", "index of another reader"])
def test_any_change_to_the_records_is_read_again(results: Path, change: str) -> None:
    same_as_records(results)
    trial = sweep(results, "A") / "study0" / "trial0"
    manifest, evals = trial / "manifest.json", trial / "evals.jsonl"
    if change == "manifest in place":
        record = json.loads(manifest.read_text())
        record["summary"]["time_to_target_s"] = 10.5  # same length: only the times tell
        with open(manifest, "r+") as f:
            f.write(json.dumps(record))
    elif change == "manifest restored with its old times":
        before, text = manifest.stat(), manifest.read_text()
        assert text.count('"seed": 0,') == 1
        manifest.write_text(text.replace('"seed": 0,', '"seed": 8,'))  # restored from an older copy, times and all
        os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))  # its change time still moves
    elif change == "evals truncated":
        evals.write_text("".join(evals.read_text().splitlines(keepends=True)[:-1]))
    elif change == "evals removed":
        evals.unlink()
    elif change == "trial removed":
        shutil.rmtree(trial)
    elif change == "folder added":
        write_trial(sweep(results, "A") / "study0" / "extra", "A", 3.0, seed=99, study=0, trial=9)
    elif change == "plan replaced":
        plan = sweep(results, "A") / "sweep.json"
        data = json.loads(plan.read_text())
        data["trials"] = data["trials"][:3]
        plan.write_text(json.dumps(data))
    elif change == "index garbage":
        (sweep(results, "A") / INDEX_FILE).write_bytes(b'{"kind": "optbench-score-index", "read')
    else:
        index = sweep(results, "A") / INDEX_FILE
        index.write_text(index.read_text().replace(record_index.reader_key(), "0" * 20))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a truncated evals.jsonl is warned about; not the point here
        taken = same_as_records(results)
    assert taken < 11 if change not in ("folder added", "plan replaced") else taken <= 11
    assert same_as_records(results) >= taken  # and the index is brought up to date


def test_a_trial_read_whole_every_time_is_never_dropped_from_a_complete_sweep(results: Path) -> None:
    """A torn line after its end line: the trial is scored, warned about, and read again every time
    (it is not kept in the index); its sweep must then never be taken whole from the index."""
    evals = sweep(results, "A") / "study0" / "trial0" / "evals.jsonl"
    with evals.open("a") as f:
        f.write('{"event": "ev')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert same_as_records(results) == 0
        assert same_as_records(results) == 11 - 1  # everything but the lost trial and this one
        assert same_as_records(results) == 10


def test_an_index_that_cannot_be_written_changes_nothing_but_speed(results: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(source, target):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(record_index.os, "replace", refuse)
    indexed = read_records(results, index=True)
    assert len(indexed.unindexed) == 3 and indexed.indexed == 0
    assert not list(results.rglob(INDEX_FILE)) and not list(results.rglob(f".{INDEX_FILE}.*"))  # no leftovers
    pd.testing.assert_frame_equal(indexed.trials, read_records(results).trials)


def test_score_index_false_writes_nothing_into_the_results(results: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import scoring.report

    monkeypatch.setattr(scoring.report, "leaderboard_plots", lambda *args, **kwargs: {})
    assert main(["score", f"results={results}", f"out={tmp_path / 'board'}", "bootstrap=0", "index=false",
                 "ruleset=external"]) == 0
    assert not list(results.rglob(INDEX_FILE))
    assert main(["score", f"results={results}", f"out={tmp_path / 'board2'}", "bootstrap=0", "ruleset=external"]) == 0
    assert len(list(results.rglob(INDEX_FILE))) == 3
    assert (tmp_path / "board" / "leaderboard.csv").read_text() == (tmp_path / "board2" / "leaderboard.csv").read_text()


# ------------------------------------------------------------------------------------ work run aside
def twice(value: int) -> int:
    warnings.warn(f"doubling {value}", UserWarning, stacklevel=1)
    return 2 * value


def fails(value: int) -> int:
    if os.getpid() != value:  # in the forked process: it fails there, then here
        raise ValueError(f"no {value}")
    raise KeyError(value)


def test_work_run_aside_returns_its_result_and_warnings_and_fails_as_a_direct_call_would() -> None:
    with pytest.warns(UserWarning, match="doubling 21"):
        assert Aside(twice, 21).result() == 42
    with pytest.raises(KeyError):  # the call is made again here, and raises as a direct call
        Aside(fails, os.getpid()).result()
