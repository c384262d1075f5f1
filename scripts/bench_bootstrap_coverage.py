"""How often does the leaderboard's 95% bootstrap interval hold the true score? A simulation.

Four submissions x three workloads with known true workload times (the median of each study's
time); each study's time is that median x a log-normal factor exp(sigma * N(0, 1)), and with
``miss`` > 0 a study misses the target (inf) with that probability (the true time is then the
population median of the mix, finite while ``miss`` < 0.5). Each repetition draws ``studies``
studies per (submission, workload), runs the leaderboard's bootstrap (scoring.scores.bootstrap)
and checks whether each submission's interval holds its true score (the score of the true
times). Printed per number of studies: the coverage per submission (0.95 is right), the mean
width, and the point score's mean error (its bias).

    python scripts/bench_bootstrap_coverage.py [--sigma 0.3] [--miss 0] [--reps 300] [--samples 200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.scores import area_score, bootstrap, ratios, workload_times

TRUE_TIMES = np.array([[10.0, 20.0, 30.0], [12.0, 15.0, 45.0], [18.0, 30.0, 33.0], [25.0, 50.0, 60.0]])  # [s, w]


def coverage(studies: int, sigma: float, miss: float, reps: int, samples: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coverage, mean width, mean error of the point score) per submission, over ``reps`` boards."""
    scale = TRUE_TIMES / np.exp(sigma * norm.ppf(0.5 / (1 - miss)))  # so that the mix's median is TRUE_TIMES
    truth = area_score(ratios(TRUE_TIMES))
    held, width, error = np.zeros(len(truth)), np.zeros(len(truth)), np.zeros(len(truth))
    for rep in range(reps):
        times = scale[:, :, None] * np.exp(sigma * rng.standard_normal((*TRUE_TIMES.shape, studies)))
        times[rng.random(times.shape) < miss] = np.inf
        result = bootstrap(times, 4.0, samples, seed=rep)
        held += (result.low <= truth + 1e-12) & (truth - 1e-12 <= result.high)
        width += result.high - result.low
        error += area_score(ratios(workload_times(times))) - truth
    return held / reps, width / reps, error / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--miss", type=float, default=0.0)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--studies", default="2,3,5,10")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print(f"true scores {np.round(area_score(ratios(TRUE_TIMES)), 3).tolist()}; sigma {args.sigma}, miss {args.miss}")
    for studies in (int(k) for k in args.studies.split(",")):
        held, width, error = coverage(studies, args.sigma, args.miss, args.reps, args.samples, rng)
        print(f"{studies} studies: coverage {np.round(held, 2).tolist()}, width {np.round(width, 2).tolist()}, "
              f"bias {np.round(error, 3).tolist()}")


if __name__ == "__main__":
    main()
