"""The leaderboard a person reads: what the page states per workload, which uncertainty it shows and
on what basis, honest rank probabilities for submissions tied at 0, memory only where it was
measured, ratio columns, a page that stays small for a large board, and a fast records reader that
reads what the plain one read.

Every record here is synthetic (written in milliseconds), never trained.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.core.records import append_jsonl, write_json_atomic
from harness.core.sweep_file import write_sweep
from scoring.leaderboard import MIN_STUDIES, build
from scoring.records import read_records
from scoring.report import PAGE_BYTES, markdown_table, render_html
from scoring.scores import bootstrap

INF = float("inf")
MiB = 2**20


# ------------------------------------------------------------------------------- synthetic records
def write_trial(folder: Path, submission: str, time: float | None, *, workload: str = "w1", study: int | None = None,
                trial: int | None = None, ruleset: str = "external", seed: int = 0, device: str = "cpu",
                pid: int | None = None, peak_mib: float | None = 100.0, state: float = 8.0, budget: float = 50.0,
                metric: str = "accuracy", higher: bool = True, target: float = 0.9) -> Path:
    """A finished trial's manifest.json and evals.jsonl (one evaluation, then the end line), with
    its memory record, device and process as harness/core/runner.py writes them."""
    status = "reached" if time is not None else "not_reached"
    steps = 100 if time is None else int(time * 10)
    kind = "cuda_allocated_growth" if device == "cuda" else "cpu_rss_growth"
    memory = {"parameters": 1000, "optimizer_state_bytes": int(state * 1000),
              "optimizer_state_bytes_per_parameter": state,
              "peak_memory_bytes": None if peak_mib is None else int(peak_mib * MiB), "peak_memory_kind": kind}
    summary = {"status": status, "time_to_target_s": time, "steps_to_target": None if time is None else steps,
               "best_validation": 0.95 if time is not None else 0.5, "target": target, "metric": metric,
               "higher_is_better": higher, "steps": steps, "submission_time_s": time or budget,
               "max_runtime_s": budget, "workload": workload, "size": "cpu", "memory": memory}
    manifest = {"schema_version": 1, "trial_id": folder.name, "workload": workload, "size": "cpu",
                "submission": submission, "hparams": {"lr": 1e-3 * (1 + seed)}, "seed": seed, "study": study,
                "trial": trial, "ruleset": ruleset, "config_hash": f"{seed:012d}", "metric": metric,
                "higher_is_better": higher, "target": target, "max_runtime_s": budget, "status": status,
                "device": {"type": device, "host": "node1"}, "summary": summary}
    if pid is not None:
        manifest["attempts"] = [{"started_at": "2026-01-01T00:00:00Z", "host": "node1", "pid": pid}]
    write_json_atomic(folder / "manifest.json", manifest)
    append_jsonl(folder / "evals.jsonl", {"event": "eval", "step": steps, "submission_time_s": time or budget,
                                          "metrics": {f"validation/{metric}": summary["best_validation"]}})
    append_jsonl(folder / "evals.jsonl", {"event": "end", **summary})
    return folder


def write_sweep_records(results: Path, submission: str, times: list[list[float | None]], workload: str = "w1",
                        **trial_options) -> Path:
    """A sweep as `optbench tune` leaves it; ``times[k][j]``: trial j of study k (None: not reached).
    ``pid``, when given, is a function of (study, trial) naming the process that ran it."""
    pid = trial_options.pop("pid", None)
    folder = results / f"{workload}-cpu" / submission / "external-0123456789"
    entries = []
    for k, study in enumerate(times):
        for j, time in enumerate(study):
            seed = 1000 * k + j
            record = write_trial(folder / f"study{k}" / f"trial{j}", submission, time, workload=workload, study=k,
                                 trial=j, seed=seed, pid=pid(k, j) if pid else None, **trial_options)
            entries.append({"index": len(entries), "study": k, "trial": j, "seed": seed, "hparams": {},
                            "record_dir": str(record), "config": {}})
    write_sweep({"kind": "optbench-sweep", "sweep_id": "0123456789", "dir": str(folder), "workload": workload,
                 "size": "cpu", "submission": submission, "ruleset": "external", "studies": len(times),
                 "trials_per_study": len(times[0]), "trials": entries})
    return folder


def unique_pid():
    counter = iter(range(10_000, 1_000_000))
    return lambda study, trial: next(counter)


def score(results: Path, out: Path, *extra: str, monkeypatch: pytest.MonkeyPatch | None = None) -> dict:
    """`optbench score` on ``results``; the plots are left out (their own tests draw them)."""
    if monkeypatch is not None:
        import scoring.report

        monkeypatch.setattr(scoring.report, "leaderboard_plots", lambda *args, **kwargs: {})
    assert main(["score", f"results={results}", f"out={out}", *extra]) == 0
    return {"md": (out / "leaderboard.md").read_text(), "html": (out / "leaderboard.html").read_text(),
            "csv": pd.read_csv(out / "leaderboard.csv").set_index("submission")}


def table_rows(page: str, table: str = "leaderboard") -> tuple[list[str], list[list[tuple[str, str]]]]:
    """(header, rows of (cell text, cell attributes)) of the page's ``table#<table>``."""
    body = page.split(f'<table id="{table}">')[1].split("</table>")[0]
    head = re.findall(r"<th>(.*?)</th>", body)
    rows = [re.findall(r"<td([^>]*)>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)[1:]]
    return head, [[(text, attributes) for attributes, text in row] for row in rows]


def cells_of(page: str, submission: str) -> dict[str, tuple[str, str]]:
    head, rows = table_rows(page)
    row = next(r for r in rows if r[1][0].split(" (")[0] == submission)  # the name, without its marks
    return dict(zip(head, row))


# ------------------------------------------------------------------------------- per-workload facts
def test_the_page_states_target_budget_studies_trials_and_ruleset_per_workload(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    for submission, base in (("A", 10.0), ("B", 14.0)):
        write_sweep_records(results, submission, [[base, None], [base + 1, None], [None, base + 2]], workload="w1",
                            budget=50.0)
        write_sweep_records(results, submission, [[base * 2, None], [base * 2 + 1, None], [None, base * 2]],
                            workload="w2", budget=120.0, metric="loss", higher=False, target=1.47)
    devices = {"w1": ({"type": "cpu", "cpu_model": "Xeon X", "torch_threads": 1}, 1),
               "w2": ({"type": "cuda", "name": "NVIDIA H200"}, 2)}
    for manifest_path in results.rglob("manifest.json"):  # what the times were measured on: named per workload
        manifest = json.loads(manifest_path.read_text())
        manifest["device"], manifest["nproc"] = devices[manifest["workload"]]
        manifest_path.write_text(json.dumps(manifest))
    page = score(results, tmp_path / "board", "bootstrap=50", monkeypatch=monkeypatch)
    head, rows = table_rows(page["html"], "workloads")
    assert head[:5] == ["workload", "target", "budget (s)", "studies x trials", "ruleset"]
    by_workload = {row[0][0]: [text for text, _ in row] for row in rows}
    assert by_workload["w1-cpu"][1:5] == ["accuracy &gt;= 0.9", "50", "3 x 2", "external"]
    assert by_workload["w2-cpu"][1:5] == ["loss &lt;= 1.47", "120", "3 x 2", "external"]
    assert by_workload["w1-cpu"][5:] == ["fp32", "Xeon X, 1 thread", "2 of 2", "11 (A)"]  # no precision: fp32
    assert by_workload["w2-cpu"][6] == "2 x NVIDIA H200"  # a data-parallel trial's GPUs
    assert "seconds of submission time" in page["html"] and "not data loading" in page["md"]
    for text in ("| w1-cpu | accuracy >= 0.9 | 50 | 3 x 2 | external |", "| w2-cpu | loss <= 1.47 | 120 | 3 x 2 |"):
        assert text in page["md"]
    for column in ("score", "95% CI", "P(rank holds)", "P(above next)", "studies", "steps score", "incomplete on",
                   "x fastest"):
        assert f"<dt>{column}" in page["html"] or f"<dt>&lt;workload&gt; {column}" in page["html"], column
        assert f"- **{column}" in page["md"] or f"- **<workload> {column}" in page["md"], column


def test_plot_captions_are_shown_under_each_image(tmp_path: Path) -> None:
    board = build(pd.DataFrame([trial_row("A", "w1", 0, 10.0), trial_row("B", "w1", 0, 20.0)]), samples=0)
    png = tmp_path / "profiles.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    other = tmp_path / "curves_w1_cpu.png"
    other.write_bytes(png.read_bytes())
    page = render_html(board, "t", {"profiles": png, "curves w1-cpu": other},
                       captions={"profiles": "Fraction of workloads within tau of the fastest."})
    figures = re.findall(r"<figure.*?<img alt=\"(.*?)\".*?<figcaption>(.*?)</figcaption></figure>", page, re.S)
    assert figures[0] == ("profiles", "<b>profiles</b>: Fraction of workloads within tau of the fastest.")
    assert figures[1][0] == "curves w1-cpu" and "validation metric against submission time" in figures[1][1]


# ------------------------------------------------------------------------------- uncertainty and its basis
def trial_row(submission: str, workload: str, study: int, time: float | None, trial: int = 0, **extra) -> dict:
    return {"workload": workload, "size": "cpu", "submission": submission, "seed": 100 * study + trial,
            "study": study, "trial": trial, "ruleset": "external", "schema_version": 1,
            "status": "reached" if time is not None else "not_reached",
            "time_to_target_s": INF if time is None else time, "steps_to_target": None if time is None else time * 10,
            "best_validation": 0.9, "target": 0.9, "metric": "accuracy", "higher_is_better": True,
            "max_runtime_s": 100.0, **extra}


@pytest.mark.parametrize("few", [1, 2])
def test_uncertainty_is_greyed_below_three_studies_and_shown_from_three(few: int, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    write_sweep_records(results, "few", [[10.0 + k] for k in range(few)])
    write_sweep_records(results, "enough", [[8.0], [30.0], [9.0]])
    page = score(results, tmp_path / "board", "bootstrap=100", monkeypatch=monkeypatch)
    few_cells, enough_cells = cells_of(page["html"], "few"), cells_of(page["html"], "enough")
    for column in ("95% CI", "P(rank holds)"):
        text, attributes = few_cells[column]
        assert text == "—" and "class=weak" in attributes and f"fewer than {MIN_STUDIES} studies" in attributes
        # enough's ratios are to the fastest time of the workload, whose studies are too few to resample
        # (the interval ignored that time's uncertainty): greyed too
        text, attributes = enough_cells[column]
        assert text == "—" and "class=weak" in attributes
    assert few_cells["studies"][0] == str(few) and "weak" in few_cells["studies"][1]  # the basis, in the table
    assert enough_cells["studies"][0] == "3"
    assert not page["csv"].loc["few", "uncertainty_shown"] and not page["csv"].loc["enough", "uncertainty_shown"]
    assert page["csv"].loc["few", "studies"] == few
    assert "the ranks are point estimates" in page["md"]
    # with a third study of few's, both are shown
    shutil.rmtree(results / "w1-cpu" / "few")
    write_sweep_records(results, "few", [[10.0 + k] for k in range(MIN_STUDIES)])
    page = score(results, tmp_path / "board2", "bootstrap=100", monkeypatch=monkeypatch)
    for name in ("few", "enough"):
        assert cells_of(page["html"], name)["95% CI"][0] != "—" and page["csv"].loc[name, "uncertainty_shown"]
    assert re.fullmatch(r"\[0\.\d{3}, 1\.000\]", cells_of(page["html"], "enough")["95% CI"][0])
    assert "the ranks are point estimates" not in page["md"]


def test_p_above_next_is_the_paired_comparison_of_neighbouring_rows(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # C is the fastest (its median study 1, 1.5 or 2 in a resample); A and B never vary, so their ratios
    # share C's time: their intervals overlap, yet A is above B in every resample.
    results = tmp_path / "results"
    # D is B again: tied with it in every resample, never above ('tied' on the page, not 0.00).
    for name, times in (("A", [2.4] * 3), ("B", [2.8] * 3), ("C", [1.0, 1.5, 2.0]), ("D", [2.8] * 3)):
        write_sweep_records(results, name, [[t] for t in times])
    page = score(results, tmp_path / "board", "bootstrap=200", monkeypatch=monkeypatch)
    table = page["csv"]
    assert table.index.tolist() == ["C", "A", "B", "D"]
    assert table.loc["A", "score_ci_low"] < table.loc["B", "score_ci_high"]  # overlapping intervals
    assert table.loc["C", "p_above_next"] == 1.0 and table.loc["A", "p_above_next"] == 1.0
    assert table.loc["B", "p_above_next"] == 0.0 and np.isnan(table.loc["D", "p_above_next"])  # the last: no next
    assert cells_of(page["html"], "A")["P(above next)"][0] == "1.00"
    text, attributes = cells_of(page["html"], "B")["P(above next)"]
    assert text == "tied" and "class=weak" in attributes and "above it in 0.00 of the resamples" in attributes
    assert cells_of(page["html"], "D")["P(above next)"][0] == ""
    assert "| 2 | A | 0.800 |" in page["md"] and "- **P(above next)**: " in page["md"]
    assert "told apart" not in page["md"].split("note:")[-1]  # no note of unseparated neighbours: shown


def test_with_two_studies_a_note_names_the_neighbours_the_bootstrap_does_not_separate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The main job's shape (2 studies): no interval is shown, but the ranks are not all alike. A's median
    # is 10, 11 or 12 in a resample (1/4, 1/2, 1/4), B's 11, 12 or 13: A is above B in 11/16 of them.
    # C (30-32) is below B in every resample: that pair is not named.
    results = tmp_path / "results"
    for name, times in (("A", [10.0, 12.0]), ("B", [11.0, 13.0]), ("C", [30.0, 32.0])):
        write_sweep_records(results, name, [[t] for t in times])
    page = score(results, tmp_path / "board", "bootstrap=2000", monkeypatch=monkeypatch)
    assert page["csv"].loc["A", "p_above_next"] == pytest.approx(11 / 16, abs=0.04)
    assert page["csv"].loc["B", "p_above_next"] == 1.0
    text, attributes = cells_of(page["html"], "A")["P(above next)"]
    assert text == "—" and "class=weak" in attributes and "over-confident" in attributes
    notes = [line for line in page["md"].splitlines() if line.startswith("note: even the bootstrap")]
    assert len(notes) == 1 and re.search(r"A \(rank 1\) and B \(rank 2\): A above in (6\d|7[0-2])% of the", notes[0])
    assert "and C (rank 3)" not in notes[0]


def test_the_rank_agreement_benchmark_counts_pairs_by_the_paired_bootstrap(tmp_path: Path) -> None:
    # The pair of test_p_above_next_...: A's and B's intervals overlap, yet A is above B in every resample.
    # scripts/bench_rank_agreement.py counted separated pairs by non-overlapping intervals: it found
    # (C, A) and (C, B), C's interval [1, 1] lying above theirs, but not (A, B); the paired test finds all three.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from bench_rank_agreement import paired_bootstrap, separated_pairs

    for name, times in (("A", [2.4] * 3), ("B", [2.8] * 3), ("C", [1.0, 1.5, 2.0])):
        write_sweep_records(tmp_path, name, [[t] for t in times])  # where a suite writes them: <workload>-<size>/
    (tmp_path / "suite-mini" / "leaderboard").mkdir(parents=True)  # and its tables beside them
    (tmp_path / "suite-mini" / "leaderboard" / "leaderboard.csv").write_text("submission,score\nC,1.0\n")
    names, beats = paired_bootstrap(tmp_path, samples=200)
    assert sorted(separated_pairs(names, beats)) == [("A", "B"), ("C", "A"), ("C", "B")]


def test_a_submission_at_zero_in_every_resample_holds_its_shared_last_rank() -> None:
    # One workload. A is always fastest; B and D score 0 at the point estimate but not in every
    # resample (their median can fall to 12 or 11); C never reaches: 0 in every resample. Ranked by
    # number alone, C's rank (1 + those above it) moved whenever B or D rose: P was (20/27)^2 = 0.55.
    study_times = np.array([[[10.0, 10.0, 10.0]], [[12.0, 100.0, 100.0]], [[INF, INF, INF]], [[45.0, 45.0, 11.0]]])
    result = bootstrap(study_times, 4.0, samples=2000, seed=0)
    assert result.rank_probability[2] == 1.0  # C: tied last in every resample
    assert result.rank_probability[0] == 1.0
    for s in (1, 3):  # B, D: hold the last place exactly in the resamples where they score 0 again
        assert 0.0 < result.rank_probability[s] < 1.0
    rows = [trial_row(s, "w1", k, None if not np.isfinite(t) else float(t))
            for s, times in zip("ABCD", study_times[:, 0]) for k, t in enumerate(times)]
    table = build(pd.DataFrame(rows), samples=2000, seed=0).table.set_index("submission")
    assert table.loc["C", "rank"] == table.loc["B", "rank"] == table.loc["D", "rank"] == 2  # tied last, score 0
    assert table.loc["C", "rank_probability"] == 1.0


# ------------------------------------------------------------------------------- memory
def test_peak_memory_only_where_it_is_one_trial_s_measurement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    shared = lambda study, trial: 500 + study  # noqa: E731  (launcher=parallel: a study's trials, one process)
    write_sweep_records(results, "cpu_shared", [[10.0, 11.0], [12.0, 13.0], [14.0, 15.0]], pid=shared, peak_mib=116)
    write_sweep_records(results, "cpu_alone", [[10.0, 11.0], [12.0, 13.0], [14.0, 15.0]], pid=unique_pid(),
                        peak_mib=40, state=4.0)
    write_sweep_records(results, "gpu", [[10.0, 11.0], [12.0, 13.0], [14.0, 15.0]], pid=lambda k, j: 600 + k,
                        device="cuda", peak_mib=300, state=12.0, workload="w2")  # a board's CUDA workload
    write_sweep_records(results, "cpu_unknown", [[10.0, 11.0], [12.0, 13.0], [14.0, 15.0]], peak_mib=80)
    # CUDA peaks of an earlier optbench counted the device-resident data: left out, and said so
    for name, studies in (("gpu_old", "study*"), ("gpu_mixed", "study0")):
        folder = write_sweep_records(results, name, [[10.0, 11.0], [12.0, 13.0], [14.0, 15.0]],
                                     pid=lambda k, j: 700 + k, device="cuda", peak_mib=300, workload="w2")
        for record in folder.glob(f"{studies}/*/*.json*"):
            record.write_text(record.read_text().replace("cuda_allocated_growth", "cuda_max_allocated"))
    compiled = write_sweep_records(results, "cpu_compiled", [[10.0, 11.0], [12.0, 13.0], [14.0, 15.0]],
                                   peak_mib=None)
    for record in compiled.glob("study*/*/*.json*"):  # TorchInductor's memory in the peak: not measured
        record.write_text(record.read_text().replace('"cpu_rss_growth"', '"not_measured_compiled_on_cpu"'))
    page = score(results, tmp_path / "board", "bootstrap=0", monkeypatch=monkeypatch)
    csv = page["csv"]
    assert np.isnan(csv.loc["cpu_compiled", "peak_memory_mb"])
    assert csv.loc["cpu_compiled", "peak_memory_note"].startswith("n/a: compiled on the CPU")
    assert np.isnan(csv.loc["cpu_shared", "peak_memory_mb"]) and csv.loc["cpu_shared", "peak_memory_note"].startswith(
        "n/a: CPU resident-set growth of processes that ran several trials (up to 2)")
    assert csv.loc["cpu_alone", "peak_memory_mb"] == pytest.approx(40)
    assert csv.loc["gpu", "peak_memory_mb"] == pytest.approx(300)  # CUDA: the trial's own, shared process or not
    assert np.isnan(csv.loc["cpu_unknown", "peak_memory_mb"])
    assert "do not say which process" in csv.loc["cpu_unknown", "peak_memory_note"]
    assert np.isnan(csv.loc["gpu_old", "peak_memory_mb"])
    assert csv.loc["gpu_old", "peak_memory_note"].startswith("n/a: CUDA peaks of an earlier optbench")
    assert csv.loc["gpu_mixed", "peak_memory_mb"] == pytest.approx(300)  # its 4 new trials
    assert csv.loc["gpu_mixed", "peak_memory_note"] == (
        "CUDA; 2 CUDA trial(s) whose peak counted the device-resident data left out")  # not "shared a process"
    assert csv["state_bytes_per_param"].to_dict() == {"cpu_shared": 8.0, "cpu_alone": 4.0, "gpu": 12.0,
                                                      "cpu_unknown": 8.0, "gpu_old": 8.0,
                                                      "gpu_mixed": 8.0, "cpu_compiled": 8.0}  # always shown
    cells = {s: cells_of(page["html"], s) for s in csv.index}
    text, attributes = cells["cpu_shared"]["peak memory (MiB)"]
    assert text == "n/a" and "weak" in attributes and "ran several trials" in attributes
    assert cells["gpu"]["peak memory (MiB)"][0] == "300" and cells["cpu_alone"]["peak memory (MiB)"][0] == "40"
    assert cells["cpu_shared"]["optimizer state (B/param)"][0] == "8.0"
    assert "shown for 3 of 7 submissions" in page["html"] and "ran no other trial" in page["md"]


# ------------------------------------------------------------------------------- ratios
def test_ratio_columns_are_time_over_the_fastest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    for submission, (t1, t2) in {"A": (10.0, 30.0), "B": (14.0, 20.0), "C": (50.0, None)}.items():
        write_sweep_records(results, submission, [[t1]] * 3, workload="w1")
        write_sweep_records(results, submission, [[t2]] * 3, workload="w2")
    page = score(results, tmp_path / "board", "bootstrap=0", monkeypatch=monkeypatch)
    csv = page["csv"]
    assert csv["ratio:w1-cpu"].to_dict() == pytest.approx({"A": 1.0, "B": 1.4, "C": 5.0})
    assert csv.loc["A", "ratio:w2-cpu"] == pytest.approx(1.5) and csv.loc["B", "ratio:w2-cpu"] == 1.0
    assert np.isnan(csv.loc["C", "ratio:w2-cpu"])  # never reached
    cells = {s: cells_of(page["html"], s) for s in "ABC"}
    assert [cells[s]["w1-cpu x fastest"][0] for s in "ABC"] == ["1.00", "1.40", "5.00 (0)"]
    assert [cells[s]["w2-cpu x fastest"][0] for s in "ABC"] == ["1.50", "1.00", "-"]
    assert [cells[s]["w1-cpu (s)"][0] for s in "ABC"] == ["10", "14", "50"]
    assert "| w1-cpu (s) | w1-cpu x fastest |" in page["md"]


def test_a_ratio_just_under_the_cap_is_not_printed_as_the_cap() -> None:
    from scoring.report import _ratio
    assert _ratio(3.999, 4.0) == "3.999" and _ratio(3.99999, 4.0) == "3.99999"  # "4.00" would read as capped
    assert _ratio(4.0, 4.0) == "4.00 (0)" and _ratio(2.5, 4.0) == "2.50" and _ratio(float("nan"), 4.0) == "-"


# ------------------------------------------------------------------------------- size
def test_the_page_of_a_large_board_stays_under_a_megabyte(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from bench_scoring import synthetic_trials

    board = build(synthetic_trials(200, 20, 5, 1), samples=20)
    rng = np.random.default_rng(0)
    plots = {}
    for name in ["profiles", "time_to_target", *(f"curves w{j}-cpu" for j in range(20)),
                 *(f"sensitivity s{i}" for i in range(10))]:
        path = tmp_path / (name.replace(" ", "_") + ".png")
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(60_000))  # incompressible, as PNGs are
        plots[name] = path
    page = render_html(board, "large", plots, folder=tmp_path)
    assert len(page.encode()) < PAGE_BYTES
    assert page.count("<img ") == len(plots) and page.count("<figcaption>") == len(plots)  # every plot is there
    embedded = page.count('src="data:image/png;base64,')
    assert 2 <= embedded < len(plots)  # the first ones embedded, the rest linked beside the page, and said so
    assert f"{len(plots) - embedded} of {len(plots)} plots are not embedded" in page
    assert 'src="sensitivity_s9.png"' in page
    assert len(table_rows(page)[1]) == 200 and len(markdown_table(board).splitlines()) > 200


# ------------------------------------------------------------------------------- the fast reader
def test_reading_in_several_processes_reads_what_one_process_reads(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for i in range(6):
        write_sweep_records(results, f"s{i}", [[10.0 + i, None], [None, 12.0 + i]], workload=f"w{i % 2}")
    lone = write_trial(results / "w0-cpu" / "s0" / "seed7-abc", "s0", 9.0, seed=7, study=None, ruleset="single")
    (results / "w1-cpu" / "s1" / "external-0123456789" / "study1" / "trial1" / "manifest.json").unlink()
    evals = results / "w0-cpu" / "s2" / "external-0123456789" / "study0" / "trial0" / "evals.jsonl"
    evals.write_text("".join(evals.read_text().splitlines(keepends=True)[:-1]))  # its end line lost
    serial, parallel = read_records(results, workers=1), read_records(results, workers=2)
    pd.testing.assert_frame_equal(serial.trials, parallel.trials)
    assert serial.problems == parallel.problems and serial.planned == parallel.planned
    assert [(p.kind, p.submission) for p in serial.problems] == [("evals", "s2"), ("missing", "s1")]
    assert str(lone) in set(serial.trials["record_dir"]) and len(serial.trials) == 6 * 4
    assert list(serial.trials["record_dir"]) == sorted(serial.trials["record_dir"], key=lambda p: Path(p).parts)


def test_an_end_line_is_found_from_the_tail_and_a_torn_tail_is_read_in_full(tmp_path: Path) -> None:
    from scoring.trial_files import _end_line

    path = tmp_path / "evals.jsonl"
    for step in range(2000):  # a long file: the end line is found without reading it all
        append_jsonl(path, {"event": "eval", "step": step, "metrics": {"validation/accuracy": 0.5}})
    append_jsonl(path, {"event": "end", "status": "reached", "routing": {"names": ["x" * 50] * 2000}})  # > 16 kB
    end, present = _end_line(str(path))
    assert present and end["status"] == "reached" and len(end["routing"]["names"]) == 2000
    with open(path, "a") as f:
        f.write('{"event": "eval", "st')  # a torn last line: the whole file is read, the tear reported
    with pytest.warns(UserWarning, match=r"evals.jsonl:2002: skipped a partial"):
        end, present = _end_line(str(path))
    assert present and end["status"] == "reached"
    assert _end_line(str(tmp_path / "none.jsonl")) == (None, False)
    (tmp_path / "folder.jsonl").mkdir()
    assert _end_line(str(tmp_path / "folder.jsonl")) == (None, False)
    json.dumps(end)  # a plain object
