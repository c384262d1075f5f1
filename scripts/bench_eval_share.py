"""How much of a trial's wall time goes to evaluation, per workload (goal: <= 10% each).

Runs one AdamW trial (defaults, seed 0) per workload at ``size`` (default cpu) for a fixed number
of steps, with an unreachable target so that every evaluation of the schedule happens, and
prints the trial's timing audit (the record's ``timing``: charged + evaluation + checkpoint +
other = loop wall time) and the evaluation share. Run it on an idle machine.

    python scripts/bench_eval_share.py [size=cpu] [workloads=fashion_mnist,gpt,cifar10] [steps=...] [data_dir=DIR]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEPS = {"fashion_mnist": 2000, "gpt": 200, "cifar10": 400}  # a few seconds to a minute each at size cpu


def main(argv: list[str]) -> None:
    args = dict(a.split("=", 1) for a in argv)
    size = args.get("size", "cpu")
    extra = [f"data_dir={args['data_dir']}"] if "data_dir" in args else []
    print(f"{'workload':<14} {'size':<5} {'steps':>6} {'wall s':>8} {'charged':>8} {'eval':>7} {'ckpt':>6} "
          f"{'other':>6} {'eval share':>10}")
    for workload in args.get("workloads", "fashion_mnist,gpt,cifar10").split(","):
        steps = int(args.get("steps", STEPS.get(workload, 500)))
        higher = workload != "gpt"
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [sys.executable, "-m", "harness.cli", "trial", f"workload={workload}", f"workload.size={size}",
                 f"max_steps={steps}", "max_runtime_s=100000", f"results={tmp}", "progress=false",
                 f"workload.sizes.{size}.target={2.0 if higher else -1.0}", *extra],
                cwd=REPO, check=True, capture_output=True, text=True).stdout
        timing = json.loads(out.strip().splitlines()[-1])["timing"]
        share = timing["evaluation_s"] / timing["wall_s"]
        print(f"{workload:<14} {size:<5} {steps:>6} {timing['wall_s']:8.2f} {timing['submission_s']:8.2f} "
              f"{timing['evaluation_s']:7.2f} {timing['checkpoint_s']:6.2f} {timing['other_s']:6.2f} {share:10.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
