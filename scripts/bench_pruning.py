"""What exact pruning saves, replayed on the records of a suite that ran without it.

Reads an unpruned suite's records (``optbench suite prune=false results=DIR``), takes its trials in
the order they were launched (the launch plan), replays them through harness.core.pruning's rules
(``replay``: the same caps the runner applies) and prints the submission time each workload
would have used, the share saved, and whether study times, workload times, scores and ranks come
out identical. ``fixture=PATH`` also writes the evaluation curves as the compact JSON that
``tests/test_pruning.py`` replays.

    python scripts/bench_pruning.py results=DIR [tau_max=4] [fixture=tests/fixtures/unpruned_main_job.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from harness.core.pruning import INF, Outcome, RecordedTrial, replay, study_bests
from harness.core.records import read_json, read_jsonl
from harness.core.sweep_file import load_sweep
from scoring.scores import area_score, ranks, ratios, workload_times


def recorded(results: Path) -> tuple[list[RecordedTrial], dict[tuple[str, str], int]]:
    """Every trial of the newest launch plan under ``results``, in launch order."""
    plan = read_json(sorted(results.glob("launches/*/plan.json"))[-1])
    trials, studies = [], {}
    for job in plan["jobs"]:
        sweep = load_sweep(Path(job["sweep"]))  # its record_dirs, stored relative to it, made whole
        entry = sweep["trials"][job["index"]]
        folder = Path(entry["record_dir"])
        manifest = read_json(folder / "manifest.json")
        if manifest["status"] == "pruned":
            raise SystemExit(f"{folder} was pruned: replay needs a suite run with prune=false")
        curve = tuple((row["step"], row["submission_time_s"], bool(row["reached"]))
                      for row in read_jsonl(folder / "evals.jsonl") if row.get("event") == "eval")
        workload = f"{sweep['workload']}-{sweep['size']}"
        trials.append(RecordedTrial(sweep["submission"], workload, int(entry["study"]), curve,
                                    float(manifest["summary"]["submission_time_s"])))
        studies[(sweep["submission"], workload)] = int(sweep["studies"])
    return trials, studies


def leaderboard(trials: list[RecordedTrial], outcomes: list[Outcome], tau_max: float) -> dict[str, np.ndarray]:
    subs, works = sorted({t.submission for t in trials}), sorted({t.workload for t in trials})
    depth = max(t.study for t in trials) + 1
    study_times = np.full((len(subs), len(works), depth), np.nan)
    for s, sub in enumerate(subs):
        for w, work in enumerate(works):
            pairs = [(t.study, o) for t, o in zip(trials, outcomes) if (t.submission, t.workload) == (sub, work)]
            for k, best in study_bests(pairs).items():
                study_times[s, w, k] = best.seconds
    times = workload_times(study_times)
    scores = area_score(ratios(times), tau_max)
    return {"study_times": study_times, "times": times, "scores": scores, "ranks": ranks(scores)}


def report(label: str, full: float, kept: float) -> None:
    print(f"{label:<20} submission time {full:7.1f} s unpruned, {kept:7.1f} s pruned: {1 - kept / full:.1%} saved")


def main(argv: list[str]) -> None:
    args = dict(a.split("=", 1) for a in argv)
    tau_max = float(args.get("tau_max", 4.0))
    trials, studies = recorded(Path(args["results"]))
    unpruned = [next((Outcome(sec, float(step)) for step, sec, hit in t.curve if hit), Outcome(INF, INF))
                for t in trials]
    outcomes, used = replay(trials, studies, tau_max)
    print(f"{len(trials)} trials; pruned in replay: {sum(u < t.final_seconds - 1e-9 for u, t in zip(used, trials))}")
    for workload in sorted({t.workload for t in trials}):
        full = sum(t.final_seconds for t in trials if t.workload == workload)
        kept = sum(u for u, t in zip(used, trials) if t.workload == workload)
        report(workload, full, kept)
    report("all", sum(t.final_seconds for t in trials), sum(used))
    a, b = leaderboard(trials, unpruned, tau_max), leaderboard(trials, outcomes, tau_max)
    for key in ("study_times", "times", "scores", "ranks"):
        same = np.array_equal(a[key], b[key], equal_nan=True)
        print(f"{key:<12} identical: {same}")
    if "fixture" in args:
        fixture = {"source": "optbench suite prune=false (the main job's preset), records replayed in launch order",
                   "tau_max": tau_max, "studies": max(studies.values()),
                   "trials": [{"submission": t.submission, "workload": t.workload, "study": t.study,
                               "curve": [[s, round(sec, 6), hit] for s, sec, hit in t.curve],
                               "final_seconds": round(t.final_seconds, 6)} for t in trials]}
        Path(args["fixture"]).parent.mkdir(parents=True, exist_ok=True)
        Path(args["fixture"]).write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
        print(f"wrote {args['fixture']} ({Path(args['fixture']).stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
