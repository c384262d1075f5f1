"""Does running two trials side by side (one thread each) bias their times? Throughput and times.

For each workload (at ``size``, default mini) the calibration's reference baseline with its tuned
hyperparameters (workloads/calibration/<workload>-<size>.json; it reaches the target) runs as:
  A. one trial alone with 2 torch threads,
  B. one trial alone with 1 thread,
  C. two identical trials at once, 1 thread each (what `launcher=parallel` does).
The trajectories are identical (same seed and settings), so only the clock differs. Printed per
workload: submission seconds per 100 steps, the time to target each reports, and throughput
(trials per second of wall) of C relative to A and to B. Run it on an idle machine.

    python scripts/bench_packing.py [size=mini] [workloads=fashion_mnist,gpt,cifar10] [data_dir=DIR]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def reference(workload: str, size: str) -> tuple[str, dict]:
    raw = json.loads((REPO / "workloads" / "calibration" / f"{workload}-{size}.json").read_text())
    return raw["reference"], raw["reference_hparams"]


def command(workload: str, size: str, threads: int, results: Path, extra: list[str]) -> list[str]:
    submission, hparams = reference(workload, size)
    return [sys.executable, "-m", "harness.cli", "trial", f"workload={workload}", f"workload.size={size}",
            f"submission={submission}", f"threads={threads}", f"results={results}", "progress=false",
            *[f"submission.hparams.{k}={v}" for k, v in hparams.items()], *extra]


def run(commands: list[list[str]]) -> tuple[list[dict], float]:
    """Start ``commands`` together; their JSON summaries and the wall time until the last ended."""
    started = time.monotonic()
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
                 for c in commands]
    outputs = [p.communicate()[0] for p in processes]
    wall = time.monotonic() - started
    return [json.loads(out.strip().splitlines()[-1]) for out in outputs], wall


def per_100_steps(summary: dict) -> float:
    return 100 * summary["submission_time_s"] / summary["steps"]


def main(argv: list[str]) -> None:
    args = dict(a.split("=", 1) for a in argv)
    size = args.get("size", "mini")
    workloads = args.get("workloads", "fashion_mnist,gpt,cifar10").split(",")
    extra = [f"data_dir={args['data_dir']}"] if "data_dir" in args else []
    print(f"{'workload':<14} {'setting':<22} {'s/100 steps':>11} {'time to target':>15} {'wall':>7}")
    for workload in workloads:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            run([command(workload, size, 1, root / "warm", extra)])  # caches (decoded data), page cache
            (a,), wall_a = run([command(workload, size, 2, root / "a", extra)])
            (b,), wall_b = run([command(workload, size, 1, root / "b", extra)])
            (c1, c2), wall_c = run([command(workload, size, 1, root / f"c{i}", extra) for i in (1, 2)])
            rows = {"A alone, 2 threads": (a, wall_a), "B alone, 1 thread": (b, wall_b),
                    "C packed, 1 thread #1": (c1, wall_c), "C packed, 1 thread #2": (c2, wall_c)}
            for name, (summary, wall) in rows.items():
                ttt = summary["time_to_target_s"]
                print(f"{workload:<14} {name:<22} {per_100_steps(summary):11.3f} "
                      f"{'not reached' if ttt is None else f'{ttt:.2f} s':>15} {wall:6.1f}s")
            print(f"{workload:<14} throughput of C: {2 * wall_a / wall_c:.2f}x A's, {2 * wall_b / wall_c:.2f}x B's; "
                  f"packed time per step / alone: {per_100_steps(c1) / per_100_steps(b):.3f} and "
                  f"{per_100_steps(c2) / per_100_steps(b):.3f} (vs 1 thread), "
                  f"{per_100_steps(c1) / per_100_steps(a):.3f} (vs 2 threads)")


if __name__ == "__main__":
    main(sys.argv[1:])
