"""Time the scoring of a large synthetic leaderboard: 200 submissions x 20 workloads x 5 studies
x 5 trials (100,000 trials), from the trials table to the leaderboard with bootstrap CIs.

The table has the columns `scoring.records.load_trials` produces from records on disk (reading
the records is file-system work, not timed here). All numbers come from one run.

    python scripts/bench_scoring.py [--submissions 200] [--workloads 20] [--studies 5] [--trials 5]
                                    [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from scoring.leaderboard import build


def synthetic_trials(submissions: int, workloads: int, studies: int, trials: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = submissions * workloads * studies * trials
    s, w, k, j = np.unravel_index(np.arange(n), (submissions, workloads, studies, trials))
    skill = rng.lognormal(0.0, 0.3, submissions)[s] * rng.lognormal(3.0, 0.5, workloads)[w]
    times = skill * rng.lognormal(0.0, 0.25, n)
    reached = rng.random(n) < 0.7
    return pd.DataFrame({
        "workload": np.char.add("w", w.astype(str)), "size": "cpu", "submission": np.char.add("s", s.astype(str)),
        "seed": 1000 * k + j, "study": k, "trial": j, "ruleset": "external", "schema_version": 1,
        "status": np.where(reached, "reached", "not_reached"),
        "time_to_target_s": np.where(reached, times, np.inf), "steps_to_target": np.where(reached, times * 50, np.nan),
        "best_validation": 0.9, "target": 0.9, "metric": "accuracy", "higher_is_better": True, "max_runtime_s": 1e4,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--workloads", type=int, default=20)
    parser.add_argument("--studies", type=int, default=5)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    trials = synthetic_trials(args.submissions, args.workloads, args.studies, args.trials)
    started = time.perf_counter()
    board = build(trials, samples=0)
    point = time.perf_counter() - started
    started = time.perf_counter()
    board = build(trials, samples=args.bootstrap)
    full = time.perf_counter() - started
    print(f"{len(trials):,} trials: {args.submissions} submissions x {args.workloads} workloads x "
          f"{args.studies} studies x {args.trials} trials")
    print(f"leaderboard without bootstrap: {point:.2f} s")
    print(f"leaderboard with {args.bootstrap} bootstrap resamples: {full:.2f} s (goal < 5 s)")
    print(f"top: {board.table.loc[0, 'submission']} score {board.table.loc[0, 'score']:.3f}")


if __name__ == "__main__":
    main()
