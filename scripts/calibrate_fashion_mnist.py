"""Measure the fashion_mnist target and budget (see harness/calibrate.py for the procedure).

Usage: python scripts/calibrate_fashion_mnist.py DATA_DIR [SIZE] [OUT.json]
Prints progress and the chosen numbers; writes every raw figure to OUT.json (default
workloads/calibration/fashion_mnist-<size>.json). Copy the numbers into
configs/workload/fashion_mnist.yaml and workloads/fashion_mnist.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.calibrate import calibrate

GRIDS = {
    "adamw": [{"lr": lr} for lr in (1e-3, 2e-3, 4e-3, 8e-3)],
    "momentum": [{"lr": lr, "nesterov": True} for lr in (0.02, 0.05, 0.1, 0.2)],
}
STEP_HINTS = (2000, 4000, 8000)


def main() -> None:
    data_dir = sys.argv[1]
    size = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    out = Path(sys.argv[3] if len(sys.argv) > 3 else f"workloads/calibration/fashion_mnist-{size}.json")
    report = calibrate(
        "fashion_mnist", size, GRIDS, STEP_HINTS, extra=[f"data_dir={data_dir}"],
        results=f"/tmp/optbench-calibration-{size}",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    keys = ("target", "max_runtime_s", "step_hint", "reference", "reference_hparams", "median_best", "time_to_target")
    print(json.dumps({k: report[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
