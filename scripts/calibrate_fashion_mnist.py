"""The grid calibration that set fashion_mnist's cpu numbers (see workloads/fashion_mnist.md).

Usage: python scripts/calibrate_fashion_mnist.py DATA_DIR [SIZE] [OUT.json]
Runs harness.tools.calibrate with an explicit learning-rate x schedule-length grid (the quasirandom
form of the same procedure is `optbench calibrate`) and writes every raw figure to OUT.json
(default workloads/calibration/fashion_mnist-<size>.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.tools.calibrate import calibrate

LEARNING_RATES = {"adamw": (1e-3, 2e-3, 4e-3, 8e-3), "momentum": (0.02, 0.05, 0.1, 0.2)}
FIXED = {"adamw": {}, "momentum": {"nesterov": True}}
STEP_HINTS = (2000, 4000, 8000)


def main() -> None:
    data_dir = sys.argv[1]
    size = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    out = Path(sys.argv[3] if len(sys.argv) > 3 else f"workloads/calibration/fashion_mnist-{size}.json")
    points = {
        name: [({"lr": lr, **FIXED[name]}, hint) for lr in rates for hint in STEP_HINTS]
        for name, rates in LEARNING_RATES.items()
    }
    base = ["workload=fashion_mnist", f"workload.size={size}", f"data_dir={data_dir}",
            f"results=/tmp/optbench-calibration-{size}"]
    report = calibrate(base, points)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    keys = ("target", "max_runtime_s", "step_hint", "reference", "reference_hparams", "median_best")
    print(json.dumps({k: report[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
