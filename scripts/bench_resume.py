"""Kill a trial mid-run, resume it, and compare with an uninterrupted run of the same trial.

Runs ``optbench trial`` (default: fashion_mnist cpu, AdamW defaults, seed 0) once uninterrupted,
then again with SIGKILL sent once a checkpoint past ``--kill-after-step`` exists, then the same
command a third time (which resumes from the checkpoint). Prints steps-to-target and
time-to-target of both and their ratio; all numbers come from this one run.

    python scripts/bench_resume.py [--data-dir DIR] [--kill-after-step 2000] [overrides ...]

Without ``--data-dir`` the workload finds its data as ``optbench trial`` does without ``data_dir=``.
A trial that fails (bad input, missing data) stops the script with that trial's own message and
exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def trial(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "trial", *args]


def common_settings(data_dir: str | None, overrides: list[str]) -> list[str]:
    """The settings of all three runs: ``data_dir=`` only when one was given (no folder outside the
    repository is assumed), a checkpoint at every evaluation, no progress lines."""
    return [*overrides, *([f"data_dir={data_dir}"] if data_dir else []), "checkpoint_every_s=0", "progress=false"]


def summary_of(command: list[str]) -> dict:
    """Run ``command`` (an ``optbench trial``) to its end and return its JSON summary; when it fails,
    stop with its own stderr and exit status instead of a traceback of this script."""
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(out.returncode)
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_for_checkpoint(results: Path, process: subprocess.Popen, min_step: int) -> int:
    while process.poll() is None:
        for path in results.rglob("checkpoint.pt"):
            try:
                step = torch.load(path, weights_only=False)["step"]
            except Exception:  # being replaced right now
                continue
            if step >= min_step:
                return step
        time.sleep(0.2)
    raise SystemExit("the trial ended before it wrote a checkpoint past --kill-after-step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="the data root (data_dir=); default: the workload's search")
    parser.add_argument("--kill-after-step", type=int, default=2000)
    parser.add_argument("overrides", nargs="*", default=["workload=fashion_mnist", "submission=adamw"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="optbench-bench-resume-"))
    common = common_settings(args.data_dir, args.overrides)

    plain = summary_of(trial([*common, f"results={root / 'plain'}"]))

    killed = subprocess.Popen(trial([*common, f"results={root / 'killed'}"]), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    step = wait_for_checkpoint(root / "killed", killed, args.kill_after_step)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    resumed = summary_of(trial([*common, f"results={root / 'killed'}"]))

    print(f"killed with SIGKILL after the checkpoint at step {step}, then resumed")
    print(f"{'run':<14} {'status':<12} {'steps to target':>16} {'time to target s':>17}")
    for name, s in (("uninterrupted", plain), ("resumed", resumed)):
        seconds = s["time_to_target_s"] or float("inf")
        print(f"{name:<14} {s['status']:<12} {s['steps_to_target']!s:>16} {seconds:17.2f}")
    if plain["time_to_target_s"] and resumed["time_to_target_s"]:
        print(f"same steps to target: {plain['steps_to_target'] == resumed['steps_to_target']}; "
              f"time ratio resumed/uninterrupted: {resumed['time_to_target_s'] / plain['time_to_target_s']:.3f}")


if __name__ == "__main__":
    main()
