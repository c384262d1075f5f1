"""Reading one trial's files for scoring (scoring/trial_files.py, scoring/records.py): the row a
manifest becomes, the checks a manifest must pass, the end line of evals.jsonl found from its tail,
and the evaluations of a curve.
Records are written by hand here, field by field, so each test says exactly what is on disk."""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import scoring.records as records
import scoring.trial_files as trial_files
from scoring.records import DAMAGED, EVALS, evaluation_curve, load_evals, read_records


def manifest(status: str = "reached", **changes: Any) -> dict[str, Any]:
    """A finished lone trial's manifest; ``summary`` changes merge into its summary."""
    summary = {"status": status, "time_to_target_s": 12.5 if status == "reached" else None, "steps": 300,
               "submission_time_s": 12.5, "steps_to_target": 300 if status == "reached" else None,
               "best_validation": 0.91, **changes.pop("summary", {})}
    return {"workload": "fashion_mnist", "size": "smoke", "submission": "adamw", "seed": 7, "status": status,
            "config_hash": "abc", "metric": "accuracy", "higher_is_better": True, "target": 0.9,
            "max_runtime_s": 20.0, "summary": summary, **changes}


def write_trial(folder: Path, data: dict[str, Any] | None, lines: list[Any] | None = None) -> Path:
    """A trial folder with ``manifest.json`` (unless None) and ``evals.jsonl`` (unless None; dicts are
    JSON lines, strings are written as they are): by default an eval and the end line."""
    folder.mkdir(parents=True)
    if data is not None:
        (folder / "manifest.json").write_text(json.dumps(data))
    if lines is None and data is not None:
        lines = [{"event": "eval", "step": 100, "submission_time_s": 4.0, "metrics": {"validation/accuracy": 0.5}},
                 {"event": "end", "status": data["status"]}]
    if lines is not None:
        (folder / "evals.jsonl").write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n"
                                                    for x in lines))
    return folder


def test_a_finished_trial_is_one_row_of_its_manifest(tmp_path: Path) -> None:
    write_trial(tmp_path / "a", manifest(
        study=1, trial=2, ruleset="external", submission_revision=3, hparams={"lr": 0.1, "beta2": 0.99},
        device={"type": "cpu", "torch_threads": 3}, isolation="process", nproc=2,
        attempts=[{"host": "h1", "pid": 5}, {"host": "h2", "pid": 9}],
        submission_audit={"kinds": ["frames", "gc"]}, precision="bf16",
        summary={"memory": {"optimizer_state_bytes_per_parameter": 8.0, "peak_memory_bytes": 1000,
                            "peak_memory_kind": "cpu_rss_growth"},
                 "routing": {"special": "embedding", "special_parameters": 12},
                 "timing": {"clock_suspect": True}}))
    records = read_records(tmp_path)
    assert [(p.kind, p.file) for p in records.problems] == [("sweep", tmp_path.parent / "sweep.json")]  # study 1
    row = records.trials.iloc[0].to_dict()  # of a sweep whose sweep.json is not there: listed, and read
    assert {k: row[k] for k in ("workload", "size", "submission", "submission_revision", "seed", "study", "trial",
                                "ruleset", "status", "time_to_target_s", "steps_to_target", "best_validation",
                                "target", "metric", "higher_is_better", "max_runtime_s", "steps", "evals_file",
                                "state_bytes_per_param", "peak_memory_bytes", "peak_memory_kind", "device_type",
                                "process", "special_component", "special_parameters", "audit", "clock_suspect",
                                "hp.lr", "hp.beta2", "precision", "isolation", "cpu_threads", "nproc")} == {
        "workload": "fashion_mnist", "size": "smoke", "submission": "adamw", "submission_revision": 3, "seed": 7,
        "study": 1, "trial": 2, "ruleset": "external", "status": "reached", "time_to_target_s": 12.5,
        "steps_to_target": 300, "best_validation": 0.91, "target": 0.9, "metric": "accuracy",
        "higher_is_better": True, "max_runtime_s": 20.0, "steps": 300, "evals_file": True,
        "state_bytes_per_param": 8.0, "peak_memory_bytes": 1000, "peak_memory_kind": "cpu_rss_growth",
        "device_type": "cpu", "process": "h2:9", "special_component": "embedding", "special_parameters": 12,
        "audit": "frames, gc", "clock_suspect": True, "hp.lr": 0.1, "hp.beta2": 0.99, "precision": "bf16",
        "isolation": "process", "cpu_threads": "3", "nproc": 2}
    assert row["record_dir"] == str(tmp_path / "a")


def test_what_an_older_or_plainer_manifest_leaves_out(tmp_path: Path) -> None:
    write_trial(tmp_path / "a", manifest("not_reached", attempts=[{"host": "h"}], device="cpu",
                                         submission_audit={"kinds": "frames"}, pruned=None,
                                         summary={"pruned": {"rule": "exact", "tau_max": 4.0}}))
    row = read_records(tmp_path).trials.iloc[0].to_dict()
    assert row["time_to_target_s"] == math.inf and row["status"] == "not_reached"
    assert row["ruleset"] == "single" and row["submission_revision"] == 1 and row["study"] is None
    assert row["process"] is None and row["device_type"] is None and row["audit"] == ""
    assert row["pruned_rule"] == "exact" and row["pruned_tau_max"] == 4.0
    assert row["state_bytes_per_param"] is None and row["clock_suspect"] is False
    assert row["precision"] == "fp32"  # made before precisions existed
    assert row["isolation"] == "inprocess" and row["cpu_threads"] is None  # made before isolation existed
    assert row["nproc"] == 1  # made before data-parallel trials existed: one process
    assert not any(k.startswith("hp.") for k in row)


@pytest.mark.parametrize(("data", "detail"), [
    (manifest("reached", summary={"time_to_target_s": None}),
     r"status is 'reached' but summary\.time_to_target_s is None \(expected a finite number of seconds > 0"),
    (manifest("reached", summary={"time_to_target_s": -1.0}), r"summary\.time_to_target_s is -1\.0"),
    (manifest("reached", summary={"steps_to_target": None}),
     r"status is 'reached' but summary\.steps_to_target is None \(expected a number of steps\)"),
    (manifest("not_reached", summary={"time_to_target_s": 3.0}),
     r"status is 'not_reached' but summary\.time_to_target_s / steps_to_target are 3\.0 / None \(expected null"),
    (manifest("not_reached", summary={"steps_to_target": 30}), r"steps_to_target are None / 30"),
    (manifest("reached", summary={"status": "pruned"}), r"status is 'reached' but summary\.status is 'pruned'"),
    (manifest(study="1"), r"'study' should be int or null, found str '1'"),
    (manifest(trial=True), r"'trial' should be int or null, found bool True"),
    (manifest(hparams=[0.1]), r"'hparams' should be dict, found list"),
    (manifest(summary={"best_validation": "high"}), r"summary\.'best_validation' should be int or float or null"),
    (manifest(summary={"memory": 3}), r"summary\.'memory' should be dict or null, found int 3"),
    (manifest(seed=True), r"'seed' should be int, found bool True"),
    (manifest(summary={"steps": 2.5}), r"summary\.'steps' should be int, found float 2\.5"),
    ({k: v for k, v in manifest().items() if k != "metric"}, r"'metric' should be str, found missing"),
    (manifest(status="done"), r"unknown status 'done'"),
])
def test_a_manifest_that_contradicts_itself_is_damaged(tmp_path: Path, data: dict[str, Any], detail: str) -> None:
    write_trial(tmp_path / "a", data, [{"event": "end", "status": data["status"]}])
    records = read_records(tmp_path)
    assert records.trials.empty
    [problem] = records.problems
    assert problem.kind == DAMAGED and problem.file == tmp_path / "a" / "manifest.json"
    assert problem.detail.startswith("damaged: ")
    assert re.search(detail, problem.detail), problem.detail


def test_numbers_of_every_accepted_type_pass(tmp_path: Path) -> None:
    write_trial(tmp_path / "a", manifest(study=None, schema_version=None, target=None,
                                         summary={"best_validation": 1, "steps_to_target": 300.0,
                                                  "time_to_target_s": 1}))
    records = read_records(tmp_path)
    assert records.problems == [] and records.trials.iloc[0]["time_to_target_s"] == 1.0


def test_a_large_manifest_is_read_whole(tmp_path: Path) -> None:
    big = manifest(hparams={f"p{i}": "x" * 100 for i in range(1500)})  # ~165 kB: several reads
    write_trial(tmp_path / "a", big)
    row = read_records(tmp_path).trials.iloc[0]
    assert row["hp.p1499"] == "x" * 100


@pytest.mark.parametrize(("lines", "problem"), [
    ([{"event": "eval", "step": 1, "submission_time_s": 1.0, "metrics": {}}], "has no end line"),
    ([{"event": "end", "status": "reached"}, {"event": "eval", "step": 1, "submission_time_s": 1.0, "metrics": {}}],
     None),  # something after the end line: the whole file is read, the end line is found
    ([{"event": "end", "status": "reached"}, '{"event": "eval", "st'], None),  # a torn line after it
    (["", {"event": "end", "status": "reached"}, "", "  "], None),  # blank lines around it
    ([{"event": "end", "status": "reached", "note": "x" * 70_000}], None),  # longer than the first tail read
    ([{"event": "eval", "step": 1, "submission_time_s": 1.0, "metrics": {}, "note": "y" * 70_000},
      {"event": "end", "status": "reached"}], None),
    (['{"event": "end", "status": "reached"'], "has no end line"),  # torn: not an end line
    (["[1, 2]"], "has no end line"),
    ([], "has no end line"),
])
def test_the_end_line_of_evals(tmp_path: Path, lines: list[Any], problem: str | None) -> None:
    write_trial(tmp_path / "a", manifest("reached"), lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torn lines are warned about; not the point here
        records = read_records(tmp_path)
    assert len(records.trials) == 1 and records.trials.iloc[0]["evals_file"]
    if problem is None:
        assert records.problems == []
    else:
        [found] = records.problems
        assert found.kind == EVALS and found.detail == problem and found.file == tmp_path / "a" / "evals.jsonl"


@pytest.mark.parametrize(("end", "said"), [
    ({"event": "end", "status": "not_reached"}, "status 'not_reached' where manifest.json says 'reached'"),
    ({"event": "end", "status": "reached", "time_to_target_s": 19.0}, "time_to_target_s 19.0 where manifest.json "
                                                                       "says 12.5"),
])
def test_an_evals_file_that_contradicts_its_manifest_is_not_scored(end: dict, said: str, tmp_path: Path) -> None:
    """A manifest edited to 'reached' (or to a faster time) was scored from the manifest and ranked; the
    note told to restore evals.jsonl, the file that was right."""
    write_trial(tmp_path / "a", manifest("reached"), [end])
    records = read_records(tmp_path)
    assert records.trials.empty
    [found] = records.problems
    assert found.kind == DAMAGED and said in found.detail and "disagree" in found.detail


@pytest.mark.parametrize(("time", "said"), [(0, "seconds > 0"), (500.0, "exceeds the budget max_runtime_s 20.0")])
def test_a_reached_time_outside_the_budget_is_damaged(time: float, said: str, tmp_path: Path) -> None:
    write_trial(tmp_path / "a", manifest("reached", summary={"time_to_target_s": time}))
    records = read_records(tmp_path)
    assert records.trials.empty and records.problems[0].kind == DAMAGED and said in records.problems[0].detail


def test_a_missing_evals_file_is_scored_and_listed(tmp_path: Path) -> None:
    folder = write_trial(tmp_path / "a", manifest("reached"), [])
    (folder / "evals.jsonl").unlink()
    records = read_records(tmp_path)
    assert len(records.trials) == 1 and not records.trials.iloc[0]["evals_file"]
    [found] = records.problems
    assert found.kind == EVALS and found.detail == "missing"


EVAL_LINES = [
    {"event": "start"},
    {"event": "eval", "step": 10, "submission_time_s": 1.5, "metrics": {"validation/accuracy": 0.3, "train/loss": 2}},
    '{"event": "eval", "step": 1',  # torn
    {"event": "eval", "step": "20", "submission_time_s": 2.5, "metrics": {}},  # a step that is text
    {"event": "eval", "step": 20, "submission_time_s": True, "metrics": {}},  # a bool is not a number
    {"event": "eval", "step": 20, "submission_time_s": 2.5, "metrics": [1]},
    {"event": "eval", "step": 20, "submission_time_s": 2.5},
    {"event": "eval", "submission_time_s": 2.5, "metrics": {}},
    {"event": "eval", "step": 30, "submission_time_s": 3.5, "metrics": {"validation/accuracy": None}},
    {"event": "eval", "step": 40, "submission_time_s": 4.5, "metrics": {"validation/accuracy": 0.7}},
    {"event": "end", "status": "not_reached"},
]


def test_evaluations_keep_the_well_formed_eval_lines_and_warn_about_the_rest(tmp_path: Path) -> None:
    folder = write_trial(tmp_path / "a", manifest("not_reached"), EVAL_LINES)
    with pytest.warns(UserWarning) as caught:
        table = load_evals(folder)
    assert table["step"].tolist() == [10, 30, 40]
    assert table["submission_time_s"].tolist() == [1.5, 3.5, 4.5]
    assert table["train/loss"].iloc[0] == 2
    messages = [str(w.message) for w in caught]
    skipped = [m for m in messages if "skipped an evaluation line" in m]
    assert [m.split(":")[1] for m in skipped] == ["4", "5", "6", "7", "8"]  # the line numbers
    assert all("expected step and submission_time_s (numbers) and metrics (an object)" in m for m in skipped)
    assert any(":3" in m for m in messages if m not in skipped)  # the torn line
    # attributed to the reader's caller, not to a line of the reading code
    assert all(Path(w.filename) not in (Path(records.__file__), Path(trial_files.__file__))
               for w in caught if "skipped an evaluation" in str(w.message))


def test_a_curve_is_the_evaluations_that_have_the_metric(tmp_path: Path) -> None:
    folder = write_trial(tmp_path / "a", manifest("not_reached"), EVAL_LINES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = evaluation_curve(folder, "validation/accuracy")
        assert evaluation_curve(folder, "validation/loss") is None
    assert isinstance(x, np.ndarray) and x.dtype == float and x.tolist() == [1.5, 4.5]
    assert y.tolist() == [0.3, 0.7]


def test_a_missing_evals_file_has_no_evaluations(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="evals.jsonl: no such file; expected the trial's evaluations"):
        assert load_evals(tmp_path).empty
    with pytest.warns(UserWarning, match="no such file"):
        assert evaluation_curve(tmp_path, "validation/accuracy") is None


@pytest.mark.parametrize(("content", "last"), [
    (b'{"a": 1}\n{"b": 2}\n', b'{"b": 2}'),
    (b"1\n2\n3\n", b"3"),
    (b'{"a": 1}\n{"b": 2}\n\n  \n', b'{"b": 2}'),  # blank lines after it
    (b'{"a": 1}\n  {"b": 2}  ', b'{"b": 2}'),  # no newline at the end; spaces around it
    (b"only", b"only"),
    (b"\nonly\n", b"only"),
    (b"", None),
    (b"\n \n\n", None),
    (b"x" * 20_000 + b"\n" + b"y" * 70_000 + b"\n", b"y" * 70_000),  # longer than 4x the first read
    (b"x" * 70_000 + b"\n" + b"y" * 100 + b"\n", b"y" * 100),
    (b"z" * 40_000, b"z" * 40_000),  # one line, longer than the first read
])
def test_the_last_line_of_a_file(tmp_path: Path, content: bytes, last: bytes | None) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert trial_files._last_line(fd, len(content)) == last
    finally:
        os.close(fd)


def test_the_end_line_and_how_much_was_read(tmp_path: Path) -> None:
    """(end line, the file exists, all of it was read): the tail when its last line is an end line."""
    path = tmp_path / "evals.jsonl"
    end = {"event": "end", "status": "reached"}
    path.write_text(json.dumps({"event": "eval"}) + "\n" + json.dumps(end) + "\n")
    assert trial_files._end_line_read(str(path)) == (end, True, False)
    assert trial_files._end_line(str(path)) == (end, True)
    path.write_text(json.dumps(end) + "\n" + json.dumps({"event": "eval"}) + "\n")  # not last: read it all
    assert trial_files._end_line_read(str(path)) == (end, True, True)
    path.write_text(json.dumps({"event": "eval"}) + "\n" + '["end"]\n')
    assert trial_files._end_line_read(str(path)) == (None, True, True)
    path.write_text(json.dumps(end) + "\n" + '{"event": "end", "sta\n')
    with pytest.warns(UserWarning, match=r"evals\.jsonl:2: skipped a partial"):
        assert trial_files._end_line_read(str(path)) == (end, True, True)
    path.write_text(json.dumps({"event": "END", "status": "x"}) + "\n")
    assert trial_files._end_line_read(str(path)) == (None, True, True)
    path.write_text("")
    assert trial_files._end_line_read(str(path)) == (None, True, True)
    assert trial_files._end_line_read(str(tmp_path / "none.jsonl")) == (None, False, False)
    assert trial_files._end_line_read(str(tmp_path / "none" / "evals.jsonl")) == (None, False, False)
    (tmp_path / "folder.jsonl").mkdir()
    assert trial_files._end_line_read(str(tmp_path / "folder.jsonl")) == (None, False, False)
    assert trial_files._end_line(str(tmp_path / "none.jsonl")) == (None, False)


def test_an_unreadable_evals_file_is_read_in_full_or_warned_about(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "evals.jsonl"
    end = {"event": "end", "status": "reached"}
    path.write_text(json.dumps(end) + "\n")
    real_open = os.open

    def refuse(file: Any, *args: Any, **kwargs: Any) -> int:
        if str(file).startswith(str(tmp_path)):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(trial_files.os, "open", refuse)  # the tail cannot be opened: the file is read as a whole
    assert trial_files._end_line_read(str(path)) == (end, True, True)
    assert trial_files._end_line_read(str(tmp_path / "gone.jsonl")) == (None, False, False)  # refused, and no file
    (tmp_path / "folder.jsonl").mkdir()
    assert trial_files._end_line_read(str(tmp_path / "folder.jsonl")) == (None, False, False)
    write_trial(tmp_path / "trial", manifest("reached"))  # its manifest too: read by the full check instead
    read = read_records(tmp_path / "trial")
    assert read.trials.iloc[0]["status"] == "reached" and read.problems == []
    monkeypatch.undo()
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "evals.jsonl").mkdir()
    with pytest.warns(UserWarning, match=r"evals\.jsonl: cannot be read \(.*\); expected the trial's evaluations"):
        assert load_evals(tmp_path / "folder").empty


def test_a_curve_of_whole_numbers_is_of_floats(tmp_path: Path) -> None:
    folder = write_trial(tmp_path / "a", manifest("not_reached"), [
        {"event": "eval", "step": 1, "submission_time_s": 2, "metrics": {"validation/loss": 3}}])
    x, y = evaluation_curve(folder, "validation/loss")
    assert x.dtype == float and y.dtype == float and x.tolist() == [2.0] and y.tolist() == [3.0]


def test_the_schema_version_is_kept(tmp_path: Path) -> None:
    write_trial(tmp_path / "a", manifest(schema_version=2))
    assert read_records(tmp_path).trials.iloc[0]["schema_version"] == 2


FULL_OPTIONAL = {"study": 0, "trial": 1, "ruleset": "external", "submission_revision": 2, "hparams": {"lr": 0.1},
                 "schema_version": 1}
FULL_OPTIONAL_SUMMARY = {"steps_to_target": 300, "best_validation": 0.9, "memory": {}, "pruned": None,
                         "routing": None}


@pytest.mark.parametrize(("changes", "detail"), [
    ({"study": "1"}, "'study' should be int or null, found str '1'"),
    ({"hparams": None}, "'hparams' should be dict, found NoneType None"),
    ({"summary": {**FULL_OPTIONAL_SUMMARY, "memory": []}}, "summary.'memory' should be dict or null, found list []"),
])
def test_a_wrong_optional_field_is_found_when_every_other_one_is_there(tmp_path: Path, changes: dict[str, Any],
                                                                        detail: str) -> None:
    data = manifest(**FULL_OPTIONAL, summary=FULL_OPTIONAL_SUMMARY)
    data = {**data, **{k: v for k, v in changes.items() if k != "summary"},
            "summary": {**data["summary"], **changes.get("summary", {})}}
    write_trial(tmp_path / "a", data)
    [problem] = read_records(tmp_path).problems
    assert problem.kind == DAMAGED and problem.detail == f"damaged: {detail}"


def test_a_damaged_field_is_described_in_at_most_200_characters(tmp_path: Path) -> None:
    write_trial(tmp_path / "a", manifest(hparams="x" * 500))
    [problem] = read_records(tmp_path).problems
    assert problem.detail == "damaged: " + ("'hparams' should be dict, found str '" + "x" * 500)[:200]


def test_a_manifest_without_its_target_is_damaged(tmp_path: Path) -> None:
    write_trial(tmp_path / "a", {k: v for k, v in manifest().items() if k != "target"})
    [problem] = read_records(tmp_path).problems
    assert problem.kind == DAMAGED and "'target' should be int or float or null, found missing" in problem.detail


def test_a_well_formed_manifest_is_read_without_the_full_check(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick read of scoring (100,000 trials in seconds) hands only a manifest that fails its own
    checks to harness.core.records.read_manifest."""
    checked: list[Path] = []
    real = trial_files.read_manifest

    def spy(path: Path) -> Any:
        checked.append(Path(path))
        return real(path)

    monkeypatch.setattr(trial_files, "read_manifest", spy)
    write_trial(tmp_path / "reached", manifest("reached", **FULL_OPTIONAL, summary=FULL_OPTIONAL_SUMMARY))
    write_trial(tmp_path / "not_reached", manifest("not_reached"))
    running = manifest("running")
    del running["summary"]
    write_trial(tmp_path / "running", running, [])
    large = {f"p{i}": f"{i:05d}" * 20 for i in range(3000)}  # 330 kB: several reads of 64 kB
    write_trial(tmp_path / "large", manifest(hparams=large))
    write_trial(tmp_path / "unicode", manifest(submission="adamw-ü"))
    result = read_records(tmp_path)
    assert checked == []
    assert sorted(result.trials["submission"]) == ["adamw", "adamw", "adamw", "adamw-ü"]
    assert sorted(p.kind for p in result.problems) == ["running", "sweep"]  # a sweep's trial without its plan
    row = result.trials.set_index("record_dir").loc[str(tmp_path / "large")]
    assert {k: row[f"hp.{k}"] for k in large} == large
    write_trial(tmp_path / "damaged", manifest(seed="7"))
    write_trial(tmp_path / "summary", manifest(summary={"steps": "3"}))
    write_trial(tmp_path / "status", {**manifest("reached"), "status": "lost"})
    checked.clear()
    result = read_records(tmp_path)
    assert sorted(p.name for p in checked) == ["manifest.json"] * 3
    assert sorted(p.parent.name for p in checked) == ["damaged", "status", "summary"]


def test_only_a_cpu_trial_s_threads_are_read_as_its_cpu_threads(tmp_path: Path) -> None:
    write_trial(tmp_path / "a", manifest(device={"type": "cuda", "torch_threads": 8}))
    write_trial(tmp_path / "b", manifest(device={"type": "cpu", "torch_threads": 8}, seed=8))
    rows = read_records(tmp_path).trials.set_index("seed")
    assert pd.isna(rows.loc[7, "cpu_threads"]) and rows.loc[8, "cpu_threads"] == "8"


def test_the_hardware_is_a_gpu_s_name_or_a_cpu_trial_s_processor_model(tmp_path: Path) -> None:
    write_trial(tmp_path / "a", manifest(device={"type": "cuda", "name": "NVIDIA H200", "cpu_model": "Xeon"}))
    write_trial(tmp_path / "b", manifest(device={"type": "cpu", "cpu": "x86_64", "cpu_model": "Xeon"}, seed=8))
    write_trial(tmp_path / "c", manifest(device={"type": "cpu", "cpu": "x86_64"}, seed=9))  # older: not told
    rows = read_records(tmp_path).trials.set_index("seed")
    assert rows.loc[7, "hardware"] == "NVIDIA H200" and rows.loc[8, "hardware"] == "Xeon"
    assert pd.isna(rows.loc[9, "hardware"])
