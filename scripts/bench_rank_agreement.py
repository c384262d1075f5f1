"""Would the main job rank the optimizers the same way again? Two runs, two search seeds.

Runs `optbench suite` (the main job's preset unless ``suite=`` says otherwise) twice, with
``search_seed=0`` and ``search_seed=1`` (other hyperparameter points, other training seeds), into
``<out>/seed0`` and ``<out>/seed1``, then prints:
- Kendall's tau-b between the two runs' scores (1: the same order; ties count as ties);
- per run, the share of submission pairs whose order the bootstrap separates (their 95%
  intervals do not overlap), and how many of those separated pairs the other run orders the same way;
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

import pandas as pd
from scipy.stats import kendalltau

REPO = Path(__file__).resolve().parent.parent


def run_suite(folder: Path, seed: int, overrides: list[str]) -> tuple[pd.DataFrame, float]:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness.cli", "suite", f"search_seed={seed}", f"results={folder}",
                    "progress=false", *overrides], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    board = next(folder.glob("suite-*/leaderboard/leaderboard.csv"))
    return pd.read_csv(board).set_index("submission"), wall


def separated(board: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs (better, worse) whose bootstrap intervals do not overlap."""
    pairs = []
    for a, b in itertools.combinations(board.index, 2):
        if board.at[a, "score_ci_low"] > board.at[b, "score_ci_high"]:
            pairs.append((a, b))
        elif board.at[b, "score_ci_low"] > board.at[a, "score_ci_high"]:
            pairs.append((b, a))
    return pairs


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
    for seed, this, other in ((seeds[0], first, second), (seeds[1], second, first)):
        pairs = separated(this.loc[common])
        agree = sum(other.at[a, "score"] > other.at[b, "score"] for a, b in pairs)
        print(f"search_seed={seed}: {len(pairs)} of {total} pairs separated by the bootstrap intervals "
              f"({len(pairs) / total:.0%}); the other run orders {agree} of them the same way")


if __name__ == "__main__":
    main(sys.argv[1:])
