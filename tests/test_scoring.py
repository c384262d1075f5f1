"""The scoring maths with hand-computed answers, and the leaderboard built from records."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from harness.cli import main
from harness.errors import UserError
from scoring import trial_files
from scoring.leaderboard import build
from scoring.scores import area_score, bootstrap, profile, ranks, ratios, workload_times

INF = math.inf


def board_of(times: dict[str, list[float]], tau_max: float = 4.0) -> np.ndarray:
    return area_score(ratios(np.array(list(times.values()), dtype=float)), tau_max)


def test_median_over_studies_counts_inf_and_ignores_missing_studies() -> None:
    studies = np.array([[[1.0, 2.0, INF], [1.0, INF, np.nan], [3.0, np.nan, np.nan],
                         [np.nan, np.nan, np.nan], [INF, INF, 2.0], [4.0, 2.0, np.nan]]])
    assert workload_times(studies).tolist() == [[2.0, INF, 3.0, INF, INF, 3.0]]


def test_two_submissions_that_tie() -> None:
    # A: 10 s and 30 s, B: 20 s and 15 s -> ratios A (1, 2), B (2, 1): each (3 + 2) / 2 / 3.
    scores = board_of({"A": [10, 30], "B": [20, 15]})
    assert scores == pytest.approx([5 / 6, 5 / 6])
    assert ranks(scores).tolist() == [1, 1]
    assert ranks(np.array([0.5, 0.9, 0.5, 0.1])).tolist() == [2, 1, 2, 4]


def test_inf_everywhere_for_one_submission() -> None:
    scores = board_of({"A": [10, 30], "B": [20, 15], "C": [INF, INF]})
    assert scores == pytest.approx([5 / 6, 5 / 6, 0.0])


def test_one_workload() -> None:
    # ratios 1, 2.5, 4, 5: (4-1)/3, (4-2.5)/3, 0, 0
    assert board_of({"A": [10], "B": [25], "C": [40], "D": [50]}) == pytest.approx([1.0, 0.5, 0.0, 0.0])


def test_one_submission() -> None:
    assert board_of({"A": [3.0, 7.0]}) == pytest.approx([1.0])
    assert board_of({"A": [3.0, INF]}) == pytest.approx([0.5])


def test_a_workload_nobody_reached_adds_nothing() -> None:
    assert board_of({"A": [10, INF], "B": [20, INF]}) == pytest.approx([0.5, (4 - 2) / 3 / 2])


def test_closed_form_equals_the_integral_of_the_profile() -> None:
    rng = np.random.default_rng(0)
    times = np.exp(rng.normal(size=(6, 9)))
    times[rng.random(times.shape) < 0.2] = INF
    r = ratios(times)
    for tau_max in (2.0, 4.0, 7.5):
        exact = area_score(r, tau_max)
        for s in range(r.shape[0]):
            breaks = sorted({float(x) for x in r[s] if 1 < x < tau_max})
            numeric, _ = integrate.quad(lambda tau, s=s: float(profile(r[s:s + 1], np.array([tau]))[0, 0]),
                                        1.0, tau_max, points=breaks or None, limit=200, epsabs=1e-13, epsrel=1e-13)
            assert exact[s] == pytest.approx(numeric / (tau_max - 1), abs=1e-9)


def test_bootstrap_is_exact_without_variance_and_wide_with_it() -> None:
    steady = np.array([[[10.0, 10.0, 10.0]], [[20.0, 20.0, 20.0]]])
    result = bootstrap(steady, 4.0, samples=200, seed=1)
    assert result.low == pytest.approx([1.0, 2 / 3]) and result.high == pytest.approx([1.0, 2 / 3])
    assert result.rank_probability.tolist() == [1.0, 1.0]
    noisy = np.array([[[10.0, 30.0, INF]], [[12.0, 11.0, 13.0]]])
    result = bootstrap(noisy, 4.0, samples=500, seed=1)
    assert result.low[0] == 0.0 and result.high[0] == 1.0  # A's median can be 10, 30 or inf
    assert 0.0 < result.rank_probability[0] < 1.0
    again = bootstrap(noisy, 4.0, samples=500, seed=1)
    assert again.low.tolist() == result.low.tolist()  # seeded


def trial_row(submission: str, workload: str, study: int, trial: int, time: float | None, **extra) -> dict:
    return {"workload": workload, "size": "cpu", "submission": submission, "seed": 100 * study + trial,
            "study": study, "trial": trial, "ruleset": "external", "schema_version": 1,
            "status": "reached" if time is not None else "not_reached",
            "time_to_target_s": INF if time is None else time, "steps_to_target": None if time is None else time * 100,
            "best_validation": 0.9, "target": 0.9, "metric": "accuracy", "higher_is_better": True,
            "max_runtime_s": 100.0, **extra}


def test_a_submission_tuned_two_ways_is_refused_naming_each_sweep() -> None:
    """The refusal named the workloads only ("on w1-cpu, then on w1-cpu") and said "per workload"
    when both sweeps were of one workload: the user could not tell which folders to move."""
    def tuned(workload: str, sweep: str, lr_max: float) -> dict:
        setup = json.dumps({"search_space": {"lr": {"min": 1e-4, "max": lr_max}}}, sort_keys=True)
        return trial_row("A", workload, 0, 0, 10.0, tuning_setup=setup,
                         record_dir=f"results/{workload}-cpu/A/{sweep}/study0/trial0")
    for other, per in (("w1", "one workload"), ("w2", "per workload")):
        rows = [tuned("w1", "external-aaaa", 0.005), tuned(other, "external-bbbb", 0.01)]
        with pytest.raises(UserError) as refused:
            build(pd.DataFrame(rows), samples=0)
        message = str(refused.value)
        assert "results/w1-cpu/A/external-aaaa" in message and f"results/{other}-cpu/A/external-bbbb" in message
        assert "0.005 -> 0.01" in message and per in message, message


def test_leaderboard_from_trials_best_by_time_median_over_studies() -> None:
    rows = [trial_row("A", "w1", 0, 0, 12.0), trial_row("A", "w1", 0, 1, 10.0),  # study 0: 10
            trial_row("A", "w1", 1, 0, None), trial_row("A", "w1", 1, 1, 14.0),  # study 1: 14
            trial_row("A", "w1", 2, 0, None),                                    # study 2: inf
            trial_row("B", "w1", 0, 0, 20.0), trial_row("B", "w1", 1, 0, 20.0), trial_row("B", "w1", 2, 0, 30.0),
            trial_row("B", "w2", 0, 0, 5.0)]
    board = build(pd.DataFrame(rows), samples=0)
    a, b = board.submissions.index("A"), board.submissions.index("B")
    assert board.times[a].tolist() == [14.0, INF]  # A has no w2 records: inf
    assert board.times[b].tolist() == [20.0, 5.0]
    table = board.table.set_index("submission")
    assert table.loc["A", "score"] == pytest.approx((4 - 1) / 3 / 2)
    assert table.loc["B", "score"] == pytest.approx(((4 - 20 / 14) + 3) / 3 / 2)
    assert table.loc["B", "rank"] == 1


def test_mixed_targets_and_rulesets_are_refused() -> None:
    rows = [trial_row("A", "w1", 0, 0, 10.0), trial_row("B", "w1", 0, 0, 12.0, target=0.91)]
    with pytest.raises(UserError, match="different validation targets"):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 10.0), trial_row("B", "w1", 0, 0, 12.0, ruleset="self")]
    with pytest.raises(UserError, match="ruleset=external, ruleset=self or ruleset=single"):
        build(pd.DataFrame(rows), samples=0)
    # A lone untuned trial of one workload beside tuned sweeps of another: the lone trial's workload
    # would rank its one submission first there; refused too, naming each ruleset's workloads.
    rows = [trial_row("A", "w1", 0, 0, 10.0), trial_row("B", "w1", 0, 0, 12.0),
            trial_row("B", "w2", 0, 0, 3.0, ruleset="single", record_dir="results/w2-cpu/B/seed0-abc")]
    with pytest.raises(UserError, match=r"2 rulesets \(external on w1-cpu \(2 trials.*single on w2-cpu "
                                        r"\(1 trials, e.g. results/w2-cpu/B/seed0-abc\)\).*ruleset=single"):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 10.0), trial_row("B", "w1", 0, 0, 12.0, max_runtime_s=200.0)]
    with pytest.raises(UserError, match=r"different budgets \(100.0, 200.0\).*max_runtime_s="):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 10.0, device_type="cpu"), trial_row("B", "w1", 0, 0, 2.0, device_type="cuda")]
    with pytest.raises(UserError, match=r"different device types \(cpu, cuda\)"):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 10.0, device_type="cpu"), trial_row("B", "w2", 0, 0, 2.0, device_type="cuda")]
    assert build(pd.DataFrame(rows), samples=0).submissions == ["A", "B"]  # one device per workload: scored


def test_records_of_two_isolations_or_two_cpu_thread_counts_of_one_workload_are_refused() -> None:
    """Both change what a trial is charged (a trainer process's transfers; the cores a CPU trial uses)
    without changing its identity."""
    rows = [trial_row("A", "w1", 0, 0, 10.0, isolation="process"),
            trial_row("B", "w1", 0, 0, 9.0, isolation="inprocess")]
    with pytest.raises(UserError, match=r"different isolations \(inprocess, process\).*isolation="):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 10.0, cpu_threads=1), trial_row("B", "w1", 0, 0, 6.0, cpu_threads=2)]
    with pytest.raises(UserError, match=r"different CPU thread counts \(1, 2\).*threads="):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 10.0, cpu_threads=1, isolation="process"),
            trial_row("B", "w1", 0, 0, 6.0, cpu_threads=None, isolation="process"),  # a GPU trial's: not told
            trial_row("B", "w2", 0, 0, 6.0, cpu_threads=2, isolation="inprocess")]  # another workload
    assert build(pd.DataFrame(rows), samples=0).submissions == ["A", "B"]


def test_a_board_of_in_process_records_says_what_guards_them() -> None:
    """Before, nothing on the leaderboard told records made with the submission in the harness's
    process (optbench tune's default) from isolated ones; a cheat there ranked unmarked."""
    rows = [trial_row("A", "w1", 0, 0, 10.0, isolation="process"), trial_row("B", "w1", 0, 0, 9.0, isolation="process"),
            trial_row("A", "w2", 0, 0, 10.0, isolation="inprocess"), trial_row("B", "w2", 0, 0, 9.0)]
    rows[-1].pop("isolation", None)  # a record from before isolation existed: in process
    notes = [n for n in build(pd.DataFrame(rows), samples=0).notes if "isolation=inprocess" in n]
    assert len(notes) == 1 and notes[0].startswith("the records of w2") and "w1" not in notes[0]
    assert "could reach the clock" in notes[0] and "isolation=process prevents it" in notes[0]


def test_a_board_says_which_workloads_had_trainer_processes_that_were_not_confined() -> None:
    """Before, a record made by a trainer that could read the data's files and write files a later
    trial read (sandbox=false, or a kernel without Landlock) ranked unmarked beside confined ones."""
    rows = [trial_row("A", "w1", 0, 0, 10.0, isolation="process", sandbox="confined"),
            trial_row("B", "w1", 0, 0, 9.0, isolation="process", sandbox="confined"),
            trial_row("A", "w2", 0, 0, 10.0, isolation="process", sandbox="confined"),
            trial_row("B", "w2", 0, 0, 9.0, isolation="process", sandbox="sandbox=false")]
    notes = [n for n in build(pd.DataFrame(rows), samples=0).notes if "not confined" in n]
    assert len(notes) == 1 and notes[0].startswith("the records of w2") and "(sandbox=false)" in notes[0]
    assert "w1" not in notes[0] and "Landlock" in notes[0]


@pytest.mark.parametrize(("manifest", "column"), [
    ({"isolation": "process", "sandbox": {"confined": True, "landlock_abi": 7}}, "confined"),
    ({"isolation": "process", "sandbox": {"confined": False, "why": "no Landlock"}}, "no Landlock"),
    ({"isolation": "process"}, "made before trainer processes were confined"),
    ({"isolation": "inprocess", "sandbox": None}, None),
])
def test_a_record_s_sandbox_column(manifest: dict, column: str | None) -> None:
    assert trial_files._sandbox(manifest) == column


def test_records_of_one_workload_from_two_processor_or_gpu_models_are_refused() -> None:
    rows = [trial_row("A", "w1", 0, 0, 10.0, hardware="NVIDIA A100-SXM4-80GB"),
            trial_row("B", "w1", 0, 0, 6.0, hardware="NVIDIA H100 80GB HBM3")]
    with pytest.raises(UserError, match=r"different processor or GPU models \(NVIDIA A100-SXM4-80GB, NVIDIA H100 "
                                        r"80GB HBM3\).*--constraint"):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 10.0, hardware="NVIDIA H100 80GB HBM3"),
            trial_row("B", "w1", 0, 0, 6.0, hardware=None),  # made before the model was recorded: not told
            trial_row("B", "w2", 0, 0, 6.0, hardware="AMD EPYC 7763 64-Core Processor")]
    assert build(pd.DataFrame(rows), samples=0).submissions == ["A", "B"]


def test_records_of_one_workload_trained_by_two_process_counts_are_refused() -> None:
    """nproc=8 trains on 8 GPUs (or splits the CPU's cores): its time is not one GPU's."""
    rows = [trial_row("A", "w1", 0, 0, 10.0, nproc=1), trial_row("B", "w1", 0, 0, 2.0, nproc=8)]
    with pytest.raises(UserError, match=r"different process counts \(1, 8\).*nproc="):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 10.0, nproc=2), trial_row("B", "w1", 0, 0, 2.0, nproc=2)]
    assert build(pd.DataFrame(rows), samples=0).submissions == ["A", "B"]


def test_one_submission_s_records_of_two_codes_are_refused_across_workloads_too() -> None:
    """Its row of the table is one algorithm: two files of one name (or an edit between two workloads'
    tuning) were ranked as one submission."""
    rows = [trial_row("A", "w1", 0, 0, 10.0, submission_code_sha256="a" * 64),
            trial_row("A", "w2", 0, 0, 10.0, submission_code_sha256="b" * 64), trial_row("B", "w1", 0, 0, 12.0)]
    with pytest.raises(UserError, match=r"Records of A on w1-cpu, w2-cpu were made with 2 versions of its code"):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 10.0, submission_revision=1), trial_row("A", "w2", 0, 0, 9.0,
                                                                               submission_revision=2)]
    with pytest.raises(UserError, match=r"Records of A on w1-cpu, w2-cpu come from different revisions"):
        build(pd.DataFrame(rows), samples=0)


def test_records_of_changed_code_are_refused_and_records_that_do_not_tell_are_not() -> None:
    a1, a2, w1, w2 = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    same = [trial_row("A", "w1", 0, 0, 10.0, submission_source_sha256=a1, workload_source_sha256=w1),
            trial_row("A", "w1", 1, 0, 11.0, submission_source_sha256=None, workload_source_sha256=None),  # older
            trial_row("B", "w1", 0, 0, 12.0, submission_source_sha256=a2, workload_source_sha256=w1)]  # B's own
    assert build(pd.DataFrame(same), samples=0).submissions == ["A", "B"]
    two_submissions = [*same, trial_row("A", "w1", 2, 0, 9.0, submission_source_sha256=a2, workload_source_sha256=w1)]
    with pytest.raises(UserError, match="Records of A on w1-cpu were made with 2 versions of its source"):
        build(pd.DataFrame(two_submissions), samples=0)
    two_workloads = [*same, trial_row("B", "w1", 1, 0, 9.0, submission_source_sha256=a2, workload_source_sha256=w2)]
    with pytest.raises(UserError, match="Records of w1-cpu were made with 2 versions of the workload's source"):
        build(pd.DataFrame(two_workloads), samples=0)


def test_records_of_other_workload_settings_caps_or_copies_are_refused() -> None:
    setup = json.dumps({"model": "mlp", "model_options": {}, "spec": {"eval_every_steps": 50}})
    steeper = json.dumps({"model": "mlp", "model_options": {"curvature": 100}, "spec": {"eval_every_steps": 50}})
    rows = [trial_row("A", "w1", 0, 0, 10.0, workload_setup=setup),
            trial_row("B", "w1", 0, 0, 9.0, workload_setup=None)]
    assert build(pd.DataFrame(rows), samples=0).submissions == ["A", "B"]  # an older record does not say
    rows = [trial_row("A", "w1", 0, 0, 10.0, workload_setup=steeper), trial_row("B", "w1", 0, 0, 9.0,
                                                                                 workload_setup=setup)]
    with pytest.raises(UserError, match=r"different workload settings.*model_options.curvature"):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, None, max_steps=15), trial_row("B", "w1", 0, 0, 9.0, max_steps="none")]
    with pytest.raises(UserError, match=r"different step caps \(15, none\).*max_steps="):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 5.0, config_hash="abc", record_dir="r/a"),
            trial_row("A", "w1", 1, 0, 9.0, config_hash="def", record_dir="r/b"),
            trial_row("A", "w1", 0, 0, 5.0, config_hash="abc", record_dir="copy/a")]
    with pytest.raises(UserError, match=r"The same trial.*r/a, copy/a"):
        build(pd.DataFrame(rows), samples=0)
    rows = [trial_row("A", "w1", 0, 0, 5.0, record_dir="r/external-1/study0/trial0"),
            trial_row("A", "w1", 0, 1, 9.0, record_dir="r/external-1/study0/trial1"),
            trial_row("B", "w1", 0, 0, 7.0, record_dir="r/external-3/study0/trial0")]
    assert build(pd.DataFrame(rows), samples=0).submissions == ["A", "B"]
    rows.append(trial_row("B", "w1", 0, 1, 4.0, record_dir="r/external-2/study0/trial0"))  # a second sweep of B
    with pytest.raises(UserError, match=r"B on w1-cpu come from 2 sweeps \(r/external-2, r/external-3\)"):
        build(pd.DataFrame(rows), samples=0)
    # the same tune run again with trials=2: its study0/trial0 is the first run's (the same point and seed),
    # which read as a copied record; it is a second sweep
    rows = [trial_row("B", "w1", 0, 0, 7.0, config_hash="abc", record_dir="r/external-1/study0/trial0"),
            trial_row("B", "w1", 0, 0, 7.0, config_hash="abc", record_dir="r/external-2/study0/trial0"),
            trial_row("B", "w1", 0, 1, 8.0, config_hash="def", record_dir="r/external-2/study0/trial1")]
    with pytest.raises(UserError, match=r"B on w1-cpu come from 2 sweeps \(r/external-1, r/external-2\)"):
        build(pd.DataFrame(rows), samples=0)


@pytest.fixture(scope="module")
def scored_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real sweep on the smoke workload (2 submissions x 2 studies x 2 trials)."""
    from harness.orchestration.tune import run_tune

    results = tmp_path_factory.mktemp("scored") / "results"
    for submission in ("adamw", "sgd"):
        run_tune(["workload=fashion_mnist", "workload.size=smoke", f"submission={submission}", "max_steps=60",
                  "studies=2", "trials=2", f"results={results}", "progress=false", "device=cpu"], log=lambda _: None)
    return results


def test_score_command_writes_the_four_outputs(scored_results: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "board"
    assert main(["score", f"results={scored_results}", f"out={out}", "bootstrap=200"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = pd.read_csv(out / "leaderboard.csv")
    assert {"submission", "score", "score_ci_low", "score_ci_high", "steps_score"} <= set(table.columns)
    assert sorted(table["submission"]) == ["adamw", "sgd"] and table["score"].max() == pytest.approx(1.0)
    assert "| rank | submission | score |" in (out / "leaderboard.md").read_text()
    page = (out / "leaderboard.html").read_text()
    assert '<table id="leaderboard">' in page
    assert page.split('<table id="leaderboard">')[1].split("</table>")[0].count("<tr>") == 3  # header + 2 rows
    assert 'id="profiles"' in page and "data:image/png;base64," in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained
    assert Path(summary["html"]).is_file() and all(Path(p).is_file() for p in summary["plots"])
    assert "ran with at most 60 steps (max_steps=)" in (out / "leaderboard.md").read_text()  # the sweeps' cap


def test_limits_other_than_the_size_s_are_called_out() -> None:
    """A board of trials run with max_runtime_s=3 (the size registers 10 s) or max_steps=40 showed only
    its budget column: nothing said it ranked another benchmark than the size's."""
    from scoring.marks import changed_limits
    rows = [trial_row("A", "w1", 0, 0, 2.0, max_runtime_s=3.0, size_budget_s=10.0, max_steps="none"),
            trial_row("B", "w1", 0, 0, 2.5, max_runtime_s=3.0, size_budget_s=10.0, max_steps="none"),
            trial_row("A", "w2", 0, 0, 2.0, max_runtime_s=10.0, size_budget_s=10.0, max_steps=40),
            trial_row("A", "w3", 0, 0, 2.0, max_runtime_s=10.0, size_budget_s=10.0, max_steps="none"),
            trial_row("A", "w4", 0, 0, 2.0, max_runtime_s=30.0, size_budget_s=10.0, ruleset="self"),
            trial_row("A", "w5", 0, 0, 2.0, max_runtime_s=30.0, size_budget_s=None, max_steps=None)]
    assert changed_limits(pd.DataFrame(rows)) == {
        "w1-cpu": "a budget of 3 s (max_runtime_s=) where the size registers 10 s",
        "w2-cpu": "at most 40 steps (max_steps=)"}  # w4: self-tuning's budget is a multiple; w5: not told


def test_a_board_of_real_trials_given_another_budget_says_so(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "board"
    for submission in ("adamw", "sgd"):
        assert main(["trial", "workload=rosenbrock", "workload.size=smoke", f"submission={submission}",
                     "max_runtime_s=0.5", f"results={results}", "progress=false", "device=cpu", "threads=1"]) == 0
    assert main(["score", f"results={results}", f"out={out}", "bootstrap=0"]) == 0
    assert ("rosenbrock-smoke: its records ran with a budget of 0.5 s (max_runtime_s=) where the size registers 10 s"
            in (out / "leaderboard.md").read_text())


def test_corrupt_record_line_is_skipped_with_a_warning(scored_results: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(scored_results, copy)
    evals = next(copy.rglob("evals.jsonl"))
    with open(evals, "a") as f:
        f.write('{"event": "eval", "step": 99, "submission_ti')
    with pytest.warns(UserWarning, match=r"evals.jsonl:\d+: skipped a partial or corrupt record line"):
        assert main(["score", f"results={copy}", f"out={tmp_path / 'b'}", "bootstrap=0"]) == 0


def test_a_failed_write_of_the_board_is_named_and_leaves_the_old_files(scored_results: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """A file-size limit (a full disk) while writing leaderboard.html was a traceback, and left a
    truncated page beside the new CSV and Markdown: a board of two runs. Now: exit 2 naming the
    file, and the old board's three files as they were."""
    import subprocess
    import sys

    board = tmp_path / "board"
    score = ["score", f"results={scored_results}", f"out={board}", "bootstrap=0", "index=false"]
    assert main(score) == 0
    before = {name: (board / name).read_bytes() for name in ("leaderboard.csv", "leaderboard.md", "leaderboard.html")}
    limit = len(before["leaderboard.html"]) // 1024 - 4  # KiB: the page cannot be written, the others can
    assert limit * 1024 > max(len(before["leaderboard.csv"]), len(before["leaderboard.md"]))
    command = " ".join([f"ulimit -f {limit};", sys.executable, "-m", "harness.cli", *score, "tau_max=3"])
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 2 and "leaderboard.html" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert {name: (board / name).read_bytes() for name in before} == before
    assert not [path.name for path in board.iterdir() if path.name.endswith(".tmp")]
    (board / "leaderboard.md").unlink()
    (board / "leaderboard.md").mkdir()  # a folder where a file goes
    assert main(score) == 2
    err = capsys.readouterr().err
    assert "leaderboard.md" in err and "Traceback" not in err
    assert (board / "leaderboard.csv").read_bytes() == before["leaderboard.csv"]


def test_a_torn_line_is_warned_of_once_in_optbench_s_words(scored_results: Path, tmp_path: Path) -> None:
    """Torn evaluation lines were warned of in Python's raw format (a source path and line of
    optbench's own, then that line of code), and twice for a best trial (read again for its curve)."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "copy"
    shutil.copytree(scored_results, copy)
    files = sorted(copy.rglob("evals.jsonl"))
    for evals in files:
        with open(evals, "a") as f:
            f.write('{"event": "eval", "step": 99, "submission_ti')
    done = subprocess.run([sys.executable, "-m", "harness.cli", "score", f"results={copy}", f"out={tmp_path / 'b'}",
                           "bootstrap=0"], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "skipped a partial or corrupt record line" in line]
    assert sorted(line.split(": ")[2].rsplit(":", 1)[0] for line in warned) == list(map(str, files)), done.stderr
    assert all(line.startswith("optbench: warning: ") for line in warned), done.stderr
    assert "UserWarning" not in done.stderr, done.stderr


def test_empty_or_missing_results_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["score", f"results={tmp_path / 'nope'}"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["score", f"results={tmp_path}"]) == 2
    assert "No finished trial records" in capsys.readouterr().err


def test_a_workload_a_submission_never_ran_reads_not_run_not_not_reached() -> None:
    """B has no record of w2: it counts as infinite there (scores 0), but the table said 'not reached',
    as if B had trained on w2 and failed."""
    from scoring.report import markdown_table

    rows = [trial_row("A", "w1", 0, 0, 10.0), trial_row("A", "w2", 0, 0, 5.0),
            trial_row("B", "w1", 0, 0, 8.0), trial_row("C", "w1", 0, 0, 9.0), trial_row("C", "w2", 0, 0, None)]
    board = build(pd.DataFrame(rows), samples=0)
    table = board.table.set_index("submission")
    assert table.loc["B", "not_run_on"] == "w2-cpu"
    assert table.loc["A", "not_run_on"] == table.loc["C", "not_run_on"] == ""
    assert board.times[board.submissions.index("B"), board.workloads.index("w2-cpu")] == INF  # scored as before
    lines = markdown_table(board).splitlines()
    b_row = next(line for line in lines if "| B (not run on w2-cpu) |" in line)
    c_row = next(line for line in lines if "| C |" in line)
    assert "| not run |" in b_row and "not reached" not in b_row
    assert "| not reached |" in c_row  # C ran w2 and missed the target
    assert any("B has no record of w2-cpu" in note and "scores 0 there" in note for note in board.notes)


def test_a_trial_pruned_against_a_competitor_is_provisional_only_where_that_competitor_is_absent() -> None:
    pruned = {"status": "pruned", "pruned_rule": "competition", "pruned_competitor": "A", "pruned_tau_max": 4.0}
    rows = [trial_row("A", "w1", 0, 0, 10.0), trial_row("B", "w1", 0, 0, None, **pruned),
            trial_row("A", "w2", 0, 0, 10.0), trial_row("B", "w2", 0, 0, 30.0)]
    board = build(pd.DataFrame(rows), samples=0)
    assert set(board.table["incomplete_on"]) == {""} and not any("pruned against" in n for n in board.notes)
    rows = [trial_row("C", "w1", 0, 0, 12.0), trial_row("B", "w1", 0, 0, None, **pruned),  # A scored apart
            trial_row("B", "w1", 1, 0, None, **pruned)]
    board = build(pd.DataFrame(rows), samples=0)
    assert board.table.set_index("submission").loc["B", "incomplete_on"] == "w1-cpu"
    assert [n for n in board.notes if "pruned against" in n] == [
        "B on w1-cpu: 2 trials were pruned against A's times (exact pruning, rule b), and A has no record of w1-cpu "
        "here: without them, they might have changed this leaderboard. Score with A's records, or rerun them with "
        "prune=false"]


def test_records_without_a_target_are_refused_not_a_traceback() -> None:
    """target=inf (never met; calibrate's runs) is recorded as null: score crashed in its plots."""
    rows = [trial_row("A", "w1", 0, 0, None, target=None), trial_row("B", "w1", 0, 0, None, target=None)]
    with pytest.raises(UserError, match=r"Records of w1-cpu have no validation target"):
        build(pd.DataFrame(rows), samples=0)


# ------------------------------------------------------------------------------------ step rates
def rate_rows(rows: list[tuple[str, int, float, dict]]) -> pd.DataFrame:
    """Trials of workload w (size cpu): (submission, steps, submission seconds, hyperparameters)."""
    return pd.DataFrame([{"workload": "w", "size": "cpu", "submission": s, "steps": steps, "submission_time_s": t,
                          **{f"hp.{k}": v for k, v in hp.items()}} for s, steps, t, hp in rows])


def test_trials_of_one_setting_at_very_different_step_rates_are_named() -> None:
    """A shared machine made one setting's trials run at 179 and 666 steps/s: the board said nothing."""
    from scoring.marks import uneven_step_rates
    slowed = rate_rows([("A", 400, 1.0, {"lr": 0.1}), ("A", 400, 3.0, {"lr": 0.013}), ("B", 400, 1.0, {"lr": 0.1})])
    assert uneven_step_rates(slowed) == {"w-cpu": "A's ran at 133 to 400 steps/s (x3.0)"}
    steady = rate_rows([("A", 400, 1.0, {"lr": 0.1}), ("A", 400, 1.2, {"lr": 0.3})])  # x1.2: noise
    assert uneven_step_rates(steady) == {}
    settings = rate_rows([("S", 400, 1.0, {"lr": 0.1, "every": 10}), ("S", 400, 3.0, {"lr": 0.2, "every": 50}),
                          ("S", 400, 2.0, {"lr": 0.1, "batch_size": 256, "every": 10})])
    assert uneven_step_rates(settings) == {}  # an interval or a batch size changes the work per step
    short = rate_rows([("A", 99, 0.1, {"lr": 0.1}), ("A", 400, 4.0, {"lr": 0.2})])  # 99 steps: warming up
    assert uneven_step_rates(short) == {}
    absent = rate_rows([("A", 400, 1.0, {"lr": 0.1}), ("A", 400, 3.0, {"lr": 0.2})])
    absent["hp.nesterov"] = [None, None]  # another submission's hyperparameter, absent here
    assert uneven_step_rates(absent) == {"w-cpu": "A's ran at 133 to 400 steps/s (x3.0)"}


# ------------------------------------------------------------------------------------ the suite's table
def test_the_suite_table_says_not_reached_alike_where_nobody_reached_and_writes_it_as_the_leaderboard() -> None:
    """Never reached was 'not reached' on a workload someone reached and '-' (inf / inf) where nobody did;
    suite.csv wrote 'inf' where leaderboard.csv leaves the cell empty."""
    from scoring.tables import to_csv, to_markdown, tuned_table
    rows = [{"workload": w, "size": "cpu", "submission": s, "study": 0, "time_to_target_s": t,
             "steps_to_target": None if t == INF else 10, "status": "reached" if t < INF else "not_reached",
             "best_validation": 0.9, "higher_is_better": True, "target": 0.9, "max_runtime_s": 50.0}
            for w, s, t in (("w1", "A", 5.0), ("w1", "B", INF), ("w2", "A", INF), ("w2", "B", INF))]
    table = tuned_table(pd.DataFrame(rows))
    assert np.isinf(table["ratio_to_best"].to_numpy()[[1, 2, 3]]).all() and table["ratio_to_best"].iloc[0] == 1.0
    ratio_cells = [line.split(" | ")[-1].strip(" |") for line in to_markdown(table).splitlines()[2:]]
    assert ratio_cells == ["1", "not reached", "not reached", "not reached"]
    assert "inf" not in to_csv(table)
    assert pd.read_csv(io.StringIO(to_csv(table)))["ratio_to_best"].isna().sum() == 3
