"""Per-trial launch overhead of each launcher: wall seconds per trial beyond training.

Runs the same sweep of near-empty trials (fashion_mnist smoke, ``max_steps`` steps each) through
``launcher=inline`` (in-process, the baseline), ``local`` (submitit_local processes) and, when a
SLURM cluster is reachable (``SLURM_CONF`` set, e.g. by ``scripts/slurm/up.sh``), ``slurm`` (a
job array), and prints for each: total wall time, the trials' own wall time (from their records),
and the overhead per trial. All numbers come from one run of this script.

    python scripts/bench_launch.py [--trials 6] [--max-steps 20] [--parallelism 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from harness.core.records import read_jsonl
from harness.core.sweep_file import load_sweep
from harness.orchestration.tune import run_tune


def trial_wall(sweep_dir: Path) -> float:
    """Sum over the sweep's trials of the training loop's wall time (its last evaluation's)."""
    total = 0.0
    for entry in load_sweep(sweep_dir)["trials"]:
        evals = [r for r in read_jsonl(Path(entry["record_dir"]) / "evals.jsonl") if r["event"] == "eval"]
        total += float(evals[-1]["wall_time_s"]) if evals else 0.0
    return total


def measure(launcher: str, trials: int, max_steps: int, parallelism: int, root: Path) -> dict[str, float]:
    results = root / launcher
    extra = [f"hydra.launcher.array_parallelism={parallelism}"] if launcher == "slurm" else []
    started = time.monotonic()
    outcome = run_tune([
        "workload=fashion_mnist", "workload.size=smoke", "submission=sgd", f"max_steps={max_steps}",
        "studies=1", f"trials={trials}", f"launcher={launcher}", f"results={results}", "progress=false",
        "device=cpu", "threads=1", "poll_s=1", *extra,
    ], log=lambda text: None)
    wall = time.monotonic() - started
    own = trial_wall(Path(outcome["sweep"]))
    return {"wall_s": wall, "trials_wall_s": own, "overhead_per_trial_s": (wall - own) / trials,
            "launched": outcome["launched"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--parallelism", type=int, default=1, help="SLURM array parallelism")
    args = parser.parse_args()
    launchers = ["inline", "local"] + (["slurm"] if os.environ.get("SLURM_CONF") and shutil.which("sbatch") else [])
    root = Path(tempfile.mkdtemp(prefix="optbench-bench-launch-"))
    try:
        rows = {name: measure(name, args.trials, args.max_steps, args.parallelism, root) for name in launchers}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.trials} trials of {args.max_steps} steps each (fashion_mnist smoke, sgd)")
    print(f"{'launcher':<8} {'wall s':>8} {'trials s':>9} {'overhead s/trial':>17}")
    for name, row in rows.items():
        print(f"{name:<8} {row['wall_s']:8.1f} {row['trials_wall_s']:9.2f} {row['overhead_per_trial_s']:17.2f}")
    if "slurm" not in rows:
        print("slurm: skipped (no SLURM_CONF; start a cluster with scripts/slurm/up.sh and source its env.sh)")


if __name__ == "__main__":
    main()
