"""Exact pruning: pruned sweeps score exactly like unpruned ones; trials stop on the recorded caps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.core.pruning import INF, Outcome, RecordedTrial, competition_cap, replay, study_bests, study_cap
from harness.core.records import read_jsonl, write_json_atomic
from harness.core.trial import run_trial
from scoring.scores import area_score, bootstrap, ranks, ratios, workload_times

FIXTURE = Path(__file__).parent / "fixtures" / "unpruned_main_job.json"
UNREACHABLE = "workload.sizes.smoke.target=2.0"


# ------------------------------------------------------------------------------------ the rules
def test_study_cap_is_the_fastest_time_and_fewest_steps_of_its_reached_trials() -> None:
    assert study_cap([Outcome(INF, INF)]) is None
    cap = study_cap([Outcome(3.0, 900), Outcome(INF, INF), Outcome(4.0, 700)])
    assert (cap.seconds, cap.steps, cap.rule) == (3.0, 700, "study")
    assert not cap.passed(3.5, 600) and not cap.passed(2.9, 800) and cap.passed(3.0, 700)


def test_competition_cap_uses_the_slowest_study_of_the_fastest_finished_competitor() -> None:
    competitors = {"a": [Outcome(2.0, 400), Outcome(3.0, 300)], "b": [Outcome(1.0, 100), Outcome(INF, INF)]}
    odd = competition_cap(competitors, tau_max=4.0, studies=3)
    assert (odd.seconds, odd.steps, odd.competitor) == (12.0, 1600, "a")  # b never reached in a study
    even = competition_cap(competitors, tau_max=4.0, studies=2)
    assert (even.seconds, even.steps) == (24.0, 3200)  # an even median averages two: twice the bound
    assert competition_cap({"b": competitors["b"]}, 4.0, 3) is None


# ------------------------------------------------------------------------------------ exactness
def scoreboard(outcomes: list[Outcome], trials: list[RecordedTrial], view: str) -> np.ndarray:
    """study_times[s, w, k] of ``outcomes`` (by time or by steps), as scoring builds it."""
    subs = sorted({t.submission for t in trials})
    works = sorted({t.workload for t in trials})
    depth = max(t.study for t in trials) + 1
    out = np.full((len(subs), len(works), depth), np.nan)
    for s, sub in enumerate(subs):
        for w, work in enumerate(works):
            pairs = [(t.study, o) for t, o in zip(trials, outcomes) if t.submission == sub and t.workload == work]
            for k, best in study_bests(pairs).items():
                out[s, w, k] = best.seconds if view == "time" else best.steps
    return out


def assert_same_leaderboard(trials: list[RecordedTrial], pruned: list[Outcome], tau_max: float) -> None:
    """Scores, ranks and bootstrap intervals (time and steps views) identical; study and workload
    times identical, except where the unpruned value already lies beyond tau_max x the fastest
    (it scores 0 either way) and the pruned one is later or 'never' — only cap (b) does that."""
    unpruned = [next((Outcome(sec, float(step)) for step, sec, hit in t.curve if hit), Outcome(INF, INF))
                for t in trials]
    for view in ("time", "steps"):
        a, b = scoreboard(unpruned, trials, view), scoreboard(pruned, trials, view)
        times_a, times_b = workload_times(a), workload_times(b)
        limit = tau_max * times_a.min(axis=0)  # per workload: beyond it a time scores 0
        assert same_or_beyond(a, b, limit[None, :, None]) and same_or_beyond(times_a, times_b, limit[None, :])
        scores = area_score(ratios(times_a), tau_max)
        np.testing.assert_array_equal(scores, area_score(ratios(times_b), tau_max))
        np.testing.assert_array_equal(ranks(scores), ranks(area_score(ratios(times_b), tau_max)))
        boot_a, boot_b = bootstrap(a, tau_max, 200, 0), bootstrap(b, tau_max, 200, 0)
        np.testing.assert_array_equal(boot_a.low, boot_b.low)
        np.testing.assert_array_equal(boot_a.high, boot_b.high)
        np.testing.assert_array_equal(boot_a.rank_probability, boot_b.rank_probability)


def same_or_beyond(unpruned: np.ndarray, pruned: np.ndarray, limit: np.ndarray) -> bool:
    """Equal everywhere, except where both are at or beyond ``limit`` (pruning only ever delays)."""
    same = (unpruned == pruned) | (np.isnan(unpruned) & np.isnan(pruned))
    return bool(np.all(same | ((pruned >= unpruned) & (unpruned >= limit))))


def synthetic_sweeps(rng: np.random.Generator, studies: int, trials: int) -> list[RecordedTrial]:
    """Curves of 6 submissions x 2 workloads: some fast, some slow, some never reaching."""
    out = []
    for w in ("w1", "w2"):
        for s in range(6):
            for k in range(studies):
                for _ in range(trials):
                    speed = np.exp(rng.normal(0, 1.0)) * (1 + s)  # studies and trials vary a lot
                    reach_step = int(rng.integers(1, 40)) * 10 if rng.random() < 0.7 else None
                    curve = []
                    for step in range(10, 410, 10):
                        hit = reach_step is not None and step >= reach_step
                        curve.append((step, step * speed / 100, hit))
                        if hit:
                            break
                    out.append(RecordedTrial(f"s{s}", w, k, tuple(curve), curve[-1][1]))
    return out


@pytest.mark.parametrize("studies", [1, 2, 3, 4])
def test_pruned_sweeps_score_exactly_like_unpruned_ones(studies: int) -> None:
    for seed in range(12):
        trials = synthetic_sweeps(np.random.default_rng(seed), studies, trials=3)
        counts = {(t.submission, t.workload): studies for t in trials}
        outcomes, used = replay(trials, counts, tau_max=4.0)
        assert_same_leaderboard(trials, outcomes, tau_max=4.0)
        assert sum(used) < sum(t.final_seconds for t in trials)  # and it saved compute


def test_real_main_job_sweeps_replayed_through_the_rule_score_the_same() -> None:
    """Evaluation curves of every trial of a real main job run unpruned (tests/fixtures/)."""
    data = json.loads(FIXTURE.read_text())
    trials = [RecordedTrial(t["submission"], t["workload"], t["study"], tuple(map(tuple, t["curve"])),
                            t["final_seconds"]) for t in data["trials"]]
    counts = {(t.submission, t.workload): data["studies"] for t in trials}
    outcomes, used = replay(trials, counts, tau_max=data["tau_max"])
    assert_same_leaderboard(trials, outcomes, tau_max=data["tau_max"])
    saved = 1 - sum(used) / sum(t.final_seconds for t in trials)
    assert saved > 0.05, saved


# ------------------------------------------------------------------------------------ from the records
def finished_trial(folder: Path, seconds: float | None, steps: int | None, **slot: int) -> None:
    """A finished manifest with the outcome pruning reads; ``slot``: its study, trial and seed."""
    status = "reached" if seconds is not None else "not_reached"
    write_json_atomic(folder / "manifest.json", {"status": status, **slot, "summary": {
        "status": status, "time_to_target_s": seconds, "steps_to_target": steps}})


def test_a_trial_stops_once_its_study_has_reached_faster_and_in_fewer_steps(smoke_cfg, tmp_path: Path) -> None:
    sweep = tmp_path / "results" / "sweep"
    finished_trial(sweep / "study0" / "trial0", 1e-4, 20)  # a sibling reached at step 20
    cfg = smoke_cfg(UNREACHABLE, "max_steps=200", "workload.sizes.smoke.eval_every_steps=10", "study=0", "trial=1",
                    f"record_dir={sweep / 'study0' / 'trial1'}")
    summary = run_trial(cfg)
    assert summary["status"] == "pruned" and summary["steps"] == 20  # not at step 10: fewer steps than the sibling
    assert summary["pruned"]["rule"] == "study" and summary["time_to_target_s"] is None
    evals = [e for e in read_jsonl(Path(summary["record_dir"]) / "evals.jsonl") if e["event"] == "eval"]
    assert "test/accuracy" in evals[-1]["metrics"]  # the last evaluation reports the test split
    again = run_trial(cfg.copy())
    assert again["status"] == "pruned" and again.get("cached")  # a pruned trial is finished

    off = smoke_cfg(UNREACHABLE, "max_steps=40", "workload.sizes.smoke.eval_every_steps=10", "study=0", "trial=2",
                    f"record_dir={sweep / 'study0' / 'trial2'}", "prune=false")
    assert run_trial(off)["status"] == "not_reached"


@pytest.mark.parametrize(("studies", "factor"), [(1, 1), (2, 2)])
def test_a_trial_stops_past_tau_max_times_a_finished_competitor(smoke_cfg, tmp_path: Path, studies: int,
                                                                 factor: int) -> None:
    competitor, own = tmp_path / "results" / "adamw-sweep", tmp_path / "results" / "sgd-sweep"
    entries = []
    for k in range(studies):
        finished_trial(competitor / f"study{k}" / "trial0", 1e-5 * (k + 1), 5, study=k, trial=0, seed=k)
        entries.append({"index": k, "study": k, "trial": 0, "seed": k, "config": {},
                        "record_dir": f"study{k}/trial0"})
    write_json_atomic(competitor / "sweep.json", {
        "sweep_id": "stub", "workload": "fashion_mnist", "size": "smoke", "submission": "adamw",
        "ruleset": "external", "studies": studies, "trials_per_study": 1, "trials": entries})
    peers = tmp_path / "peers.json"
    write_json_atomic(peers, {"tau_max": 2.0, "sweeps": [
        {"dir": str(competitor), "submission": "adamw", "studies": studies},
        {"dir": str(own), "submission": "sgd", "studies": studies}]})
    cfg = smoke_cfg(UNREACHABLE, "max_steps=200", "workload.sizes.smoke.eval_every_steps=10", "study=0", "trial=0",
                    f"record_dir={own / 'study0' / 'trial0'}", f"prune_peers={peers}", "submission=sgd")
    summary = run_trial(cfg)
    assert summary["status"] == "pruned" and summary["pruned"]["rule"] == "competition"
    assert summary["pruned"]["competitor"] == "adamw" and summary["pruned"]["tau_max"] == 2.0
    assert summary["pruned"]["cap_steps"] == factor * 2.0 * 5 and summary["steps"] == factor * 10
    assert summary["pruned"]["cap_s"] == pytest.approx(factor * 2.0 * 1e-5 * studies)


def test_the_leaderboard_refuses_a_tau_max_beyond_the_one_trials_were_pruned_for(smoke_cfg, tmp_path: Path) -> None:
    from harness.errors import UserError
    from scoring.leaderboard import build
    from scoring.records import load_trials

    test_a_trial_stops_past_tau_max_times_a_finished_competitor(smoke_cfg, tmp_path, studies=1, factor=1)
    trials = load_trials(tmp_path / "results" / "sgd-sweep")  # the real record (the competitor's are stubs)
    assert list(trials["status"]) == ["pruned"]
    board = build(trials, tau_max=2.0, samples=0)
    # its competitor's records are not on this board: without them, the pruned trial might have mattered
    assert list(board.table["submission"]) == ["sgd"] and list(board.table["incomplete_on"]) == ["fashion_mnist-smoke"]
    assert any(note.startswith("sgd on fashion_mnist-smoke: 1 trial was pruned against adamw's times") and
               "prune=false" in note for note in board.notes), board.notes
    with pytest.raises(UserError, match="tau_max=2; with tau_max=4 they might have"):
        build(trials, tau_max=4.0, samples=0)


def test_the_suite_runs_baselines_first_and_tells_every_trial_its_competitors(results: Path) -> None:
    from harness.cli import main

    assert main(["suite", "suite=smoke", "workloads=[fashion_mnist]", "submissions=[sgd,adamw]", "studies=1",
                 "trials=2", f"results={results}", "progress=false", "device=cpu", "poll_s=1", "prune=false"]) == 0
    plan = json.loads(next(results.glob("launches/*/plan.json")).read_text())
    order = [json.loads((Path(job["sweep"]) / "sweep.json").read_text())["submission"] for job in plan["jobs"]]
    assert order == ["adamw", "adamw", "sgd", "sgd"]  # the reference baseline first
    settings = plan["jobs"][0]["settings"]
    assert settings["prune"] is False  # prune=false reaches trials of a kept plan too
    peers = json.loads(Path(settings["prune_peers"]).read_text())
    assert peers["tau_max"] == 4.0 and sorted(s["submission"] for s in peers["sweeps"]) == ["adamw", "sgd"]


def test_bench_pruning_reads_an_unpruned_suites_records(results: Path) -> None:
    """scripts/bench_pruning.py finds every trial's record: a sweep file keeps them relative to itself."""
    import sys

    from harness.cli import main

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from bench_pruning import recorded

    assert main(["suite", "suite=smoke", "workloads=[fashion_mnist]", "submissions=[sgd]", "studies=1",
                 "trials=2", f"results={results}", "progress=false", "device=cpu", "poll_s=1", "prune=false"]) == 0
    trials, studies = recorded(results)
    assert [(t.submission, t.study) for t in trials] == [("sgd", 0), ("sgd", 0)]
    assert all(t.curve and t.final_seconds > 0 for t in trials)
    assert studies == {("sgd", "fashion_mnist-smoke"): 1}


def test_rule_b_is_exact_on_a_board_holding_the_competitor_its_record_names() -> None:
    """A pruned trial's record names one competitor (``optbench score`` marks a board without it
    incomplete), so that competitor alone must bound both views: here another competitor's fewer
    steps would have pruned z before it reached in fewer steps than x, changing x's and z's steps
    scores on a board of x and z."""
    x = RecordedTrial("x", "w", 0, ((1000, 1.0, True),), 1.0)  # fastest by time, many steps
    y = RecordedTrial("y", "w", 0, ((100, 3.0, True),), 3.0)  # slower, but in few steps
    z = RecordedTrial("z", "w", 0, tuple((s, s / 100, s == 500) for s in range(100, 600, 100)), 5.0)
    trials = [x, y, z]
    outcomes, _ = replay(trials, {(t.submission, "w"): 1 for t in trials}, tau_max=4.0)
    assert competition_cap({"x": [Outcome(1.0, 1000)], "y": [Outcome(3.0, 100)]}, 4.0, 1).competitor == "x"
    without_y = [0, 2]
    assert_same_leaderboard([trials[i] for i in without_y], [outcomes[i] for i in without_y], tau_max=4.0)


@pytest.mark.parametrize(("copy", "outcome"), [("stray", "not_reached"), ("foreign", "not_reached"),
                                              ("planned", "pruned")])
def test_a_record_the_plan_does_not_hold_sets_no_study_cap(smoke_cfg, tmp_path: Path, copy: str,
                                                           outcome: str) -> None:
    """A reached record that optbench score does not score (a backup folder beside the trials, or
    another slot's record copied into a sibling's) must not stop a trial: it could be its study's
    fastest. Siblings are the plan's trials of the study, each its own record (which does stop it)."""
    sweep = tmp_path / "results" / "sweep"
    write_json_atomic(sweep / "sweep.json", {
        "sweep_id": "stub", "workload": "fashion_mnist", "size": "smoke", "submission": "sgd", "ruleset": "external",
        "studies": 1, "trials_per_study": 2, "trials": [
            {"index": j, "study": 0, "trial": j, "seed": 10 + j, "config": {}, "record_dir": f"study0/trial{j}"}
            for j in range(2)]})
    sibling = sweep / "study0" / ("trial0.bak" if copy == "stray" else "trial0")
    finished_trial(sibling, 1e-4, 10, study=0, trial=0, seed=10 if copy == "planned" else 99)  # the plan's: 10
    cfg = smoke_cfg(UNREACHABLE, "max_steps=30", "workload.sizes.smoke.eval_every_steps=10", "study=0", "trial=1",
                    "seed=11", "ruleset=external", f"record_dir={sweep / 'study0' / 'trial1'}")
    assert run_trial(cfg)["status"] == outcome
