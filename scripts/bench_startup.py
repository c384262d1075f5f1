"""Start-up cost of ``optbench trial``: a user's submission file against the same built-in one.

A user's submission is never imported by the harness: a child forked from the forkserver describes
it (harness/config/described.py), and the forkserver's own imports (torch, the trainer) cost ~5 s of
CPU. This script runs the same near-empty trial (fashion_mnist smoke, ``--steps`` SGD steps) as the
built-in ``sgd`` and as a file holding a subclass of it, each in a fresh ``optbench trial`` process
(with ``--nproc 2`` also as a 2-process data-parallel trial), alternating, and prints the median wall
seconds of each and the ratio file / built-in. All numbers come from one run of this script.

    python scripts/bench_startup.py [--repeats 3] [--steps 30] [--nproc 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USERS_FILE = '''
from submissions.sgd import SGD


class MySGD(SGD):
    """SGD, as a user's own file."""
'''


def trial_seconds(submission: str, nproc: int, steps: int, results: Path) -> float:
    """Wall seconds of one ``optbench trial`` process, start to exit."""
    command = [sys.executable, "-m", "harness.cli", "trial", "workload=fashion_mnist", "workload.size=smoke",
               f"submission={submission}", f"max_steps={steps}", f"nproc={nproc}", "threads=1", "device=cpu",
               "progress=false", f"results={results}", "workload.sizes.smoke.target=2.0"]  # never reached
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=600)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="optbench-startup-") as folder:
        users_file = Path(folder) / "my_sgd.py"
        users_file.write_text(USERS_FILE)
        sgd_config = (REPO / "configs" / "submission" / "sgd.yaml").read_text()  # the same hyperparameters
        users_file.with_suffix(".yaml").write_text(sgd_config.replace("name: sgd", "name: my_sgd"))
        kinds = {"built-in": "sgd", "file": f"{users_file}:MySGD"}
        for nproc in args.nproc:
            times: dict[str, list[float]] = {kind: [] for kind in kinds}
            for repeat in range(args.repeats):
                for kind, submission in kinds.items():  # alternating: the machine's drift hits both alike
                    results = Path(folder) / f"results-{nproc}-{kind}-{repeat}"
                    times[kind].append(trial_seconds(submission, nproc, args.steps, results))
            medians = {kind: statistics.median(values) for kind, values in times.items()}
            for kind, values in times.items():
                each = ", ".join(f"{v:.1f}" for v in values)
                print(f"nproc={nproc} {kind:8s} median {medians[kind]:5.1f} s  ({each})")
            print(f"nproc={nproc} ratio file / built-in: {medians['file'] / medians['built-in']:.2f}")


if __name__ == "__main__":
    main()
