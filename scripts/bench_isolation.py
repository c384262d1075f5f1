"""What isolation=process costs: throughput and start-up against in-process, per cpu workload.

For each workload (fashion_mnist, gpt, cifar10 at one size, ``mini`` by default: the main job's)
the same trial (adamw, seed 0, the size's own evaluation cadence, an unreachable target so that
every run does the same ``steps``, one torch thread) runs in-process and in a trainer process,
alternately (in-process first on even repeats, isolated first on odd ones) so that machine noise
hits both. Per run: steps per second of charged time, steps per second of the loop's wall time
(evaluation included: what a trial's end-to-end throughput is), and the set-up time (data, model;
in a trainer process also starting it). The table gives the median of the per-pair ratios
isolated / in-process and their range. The first isolated trial of a process also starts the
forkserver (torch imported once); it is reported apart and left out of the ratios. Each repeat
also runs the isolated trial with ``sandbox=false`` (the trainer not confined by Landlock,
harness/core/sandbox.py): the last columns are what the sandbox costs, confined against not.

Usage: python scripts/bench_isolation.py [data_dir=DIR] [size=mini] [steps=N] [repeats=R]
       [workloads=fashion_mnist,gpt,cifar10]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from typing import Any

from bench_overhead import parse  # scripts/ is on the path when a script runs

from harness.config.compose import compose_config
from harness.core.trial import run_trial

UNREACHABLE = {"fashion_mnist": 2.0, "cifar10": 2.0, "gpt": 0.0}  # accuracy above 1, a loss of 0

OPTIONS = {"steps": "400", "repeats": "5", "size": "mini", "data_dir": "", "workloads": "fashion_mnist,gpt,cifar10"}
#: the modes a trial runs in: its isolation and sandbox settings
MODES = {"inprocess": ["isolation=inprocess"], "process": ["isolation=process"],
         "unconfined": ["isolation=process", "sandbox=false"]}


def one_trial(workload: str, size: str, mode: str, steps: int, results: str, data_dir: str) -> dict[str, float]:
    """Charged and wall throughput, set-up and whole-call seconds of one trial."""
    overrides = [f"workload={workload}", f"workload.size={size}", "submission=adamw", "device=cpu", "threads=1",
                 f"max_steps={steps}", f"workload.sizes.{size}.target={UNREACHABLE[workload]}",
                 "max_runtime_s=100000", "progress=false", "checkpoint_every_s=null", *MODES[mode],
                 f"results={results}", "rerun=true"]
    if data_dir:
        overrides.append(f"data_dir={data_dir}")
    started = time.monotonic()
    summary = run_trial(compose_config("trial", overrides))
    call = time.monotonic() - started
    assert summary["steps"] == steps and summary["status"] == "not_reached", summary
    timing = summary["timing"]
    return {"charged": steps / summary["submission_time_s"], "wall": steps / timing["wall_s"],
            "setup": timing["setup_s"], "call": call}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def main() -> None:
    options = parse(sys.argv[1:], OPTIONS)
    steps, repeats, size = int(options["steps"]), int(options["repeats"]), options["size"]
    print(f"size {size}, {steps} steps per trial, {repeats} pairs per workload, adamw, 1 torch thread")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as results:
        for workload in options["workloads"].split(","):
            one_trial(workload, size, "inprocess", 20, results, options["data_dir"])  # loads the data once
            first = one_trial(workload, size, "process", 20, results, options["data_dir"])
            runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
            for repeat in range(repeats):
                order = list(MODES) if repeat % 2 == 0 else list(MODES)[::-1]
                for mode in order:
                    runs[mode].append(one_trial(workload, size, mode, steps, results, options["data_dir"]))
            pairs = list(zip(runs["inprocess"], runs["process"], strict=True))
            confined = list(zip(runs["unconfined"], runs["process"], strict=True))
            row = {
                "workload": workload,
                "charged": [p["charged"] / i["charged"] for i, p in pairs],
                "wall": [p["wall"] / i["wall"] for i, p in pairs],
                "startup": [p["setup"] - i["setup"] for i, p in pairs],
                "call": [p["call"] - i["call"] for i, p in pairs],
                "steps_s": statistics.median(i["charged"] for i in runs["inprocess"]),
                "first_setup": first["setup"],
                "sandbox_charged": [c["charged"] / u["charged"] for u, c in confined],
                "sandbox_startup": [c["setup"] - u["setup"] for u, c in confined],
            }
            rows.append(row)
            print(f"{workload}: in-process {row['steps_s']:.0f} steps/s charged; isolated/in-process charged "
                  f"{spread(row['charged'])}, wall {spread(row['wall'])}; start-up +{spread(row['startup'])} s "
                  f"(whole trial +{spread(row['call'])} s; first trial of the process: set-up "
                  f"{row['first_setup']:.2f} s); confined/unconfined charged {spread(row['sandbox_charged'])}, "
                  f"start-up +{spread(row['sandbox_startup'])} s", flush=True)
    print("\nworkload        charged ratio (median [range])   wall ratio                 start-up per trial (s)"
          "       sandbox: charged ratio       start-up (s)")
    for row in rows:
        print(f"{row['workload']:<15} {spread(row['charged']):<32} {spread(row['wall']):<26} "
              f"{spread(row['startup']):<29} {spread(row['sandbox_charged']):<28} {spread(row['sandbox_startup'])}")


if __name__ == "__main__":
    main()
