"""Would the main job rank the optimizers the same way again? Two runs, two search seeds.

Runs `optbench suite` (the main job's preset unless ``suite=`` says otherwise) twice, with
``search_seed=0`` and ``search_seed=1`` (other hyperparameter points, other training seeds), into
``<out>/seed0`` and ``<out>/seed1``, then prints:
- Kendall's tau-b between the two runs' scores (1: the same order; ties count as ties);
- per run, the share of submission pairs whose order the bootstrap separates (a paired test: the
  two are scored on the same resamples, and one is clearly above the other in at least 97.5% of
  them; two intervals that do not overlap are not that test, see scoring.scores.Uncertainty), and
  how many of those separated pairs the other run orders the same way;
- the wall time of each run.
Runs already finished are reused (the suite resumes), so it can be interrupted and rerun.

    python scripts/bench_rank_agreement.py [out=rank-agreement] [seeds=0,1] [any optbench suite override ...]
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scoring.leaderboard import studies_of  # noqa: E402
from scoring.records import read_records  # noqa: E402
from scoring.scores import bootstrap, separated  # noqa: E402


def run_suite(folder: Path, seed: int, overrides: list[str]) -> tuple[pd.DataFrame, float]:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness.cli", "suite", f"search_seed={seed}", f"results={folder}",
                    "progress=false", *overrides], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    board = next(folder.glob("suite-*/leaderboard/leaderboard.csv"))
    return pd.read_csv(board).set_index("submission"), wall


def paired_bootstrap(folder: Path, samples: int = 1000, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """The submissions of the suite whose results folder is ``folder`` (its records under
    ``<workload>-<size>/``, its tables under ``suite-<name>/``) and the bootstrap's ``beats`` matrix of
    their scores (scoring.scores.Uncertainty; the same resamples ``optbench score`` draws with its
    defaults)."""
    records = read_records(folder)
    found = studies_of(records.trials, problems=records.problems, per_study=records.per_study)
    return found.submissions, bootstrap(found.study_times, 4.0, samples, seed).beats


def separated_pairs(submissions: list[str], beats: np.ndarray) -> list[tuple[str, str]]:
    """Pairs (better, worse) that the paired bootstrap separates at 95% (scoring.scores.separated)."""
    apart = separated(beats)
    return [(submissions[i], submissions[j]) for i, j in itertools.permutations(range(len(submissions)), 2)
            if apart[i, j]]


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith(("out=", "seeds="))]
    out = Path(next((a.split("=", 1)[1] for a in argv if a.startswith("out=")), "rank-agreement"))
    seeds = [int(s) for s in next((a.split("=", 1)[1] for a in argv if a.startswith("seeds=")), "0,1").split(",")]
    boards = {}
    for seed in seeds:
        boards[seed], wall = run_suite(out / f"seed{seed}", seed, args)
        print(f"search_seed={seed}: {wall / 60:.1f} min; scores: "
              + ", ".join(f"{s} {v:.3f}" for s, v in boards[seed]["score"].sort_values(ascending=False).items()))
    first, second = (boards[s] for s in seeds[:2])
    common = first.index.intersection(second.index)
    tau = kendalltau(first.loc[common, "score"], second.loc[common, "score"]).statistic
    total = len(common) * (len(common) - 1) // 2
    print(f"Kendall's tau-b between the two rankings: {tau:.3f} ({len(common)} submissions)")
    for seed, other in ((seeds[0], second), (seeds[1], first)):
        names, beats = paired_bootstrap(out / f"seed{seed}")
        pairs = [(a, b) for a, b in separated_pairs(names, beats) if a in common and b in common]
        agree = sum(other.at[a, "score"] > other.at[b, "score"] for a, b in pairs)
        print(f"search_seed={seed}: {len(pairs)} of {total} pairs separated by the paired bootstrap "
              f"({len(pairs) / total:.0%}); the other run orders {agree} of them the same way")


if __name__ == "__main__":
    main(sys.argv[1:])
