"""Share of submission time spent producing batches, per workload at size cpu (goal: < 10%).

For every registered workload (and its variants with ``variants=true``), times batch production
alone and whole AdamW steps (default hyperparameters) in separate loops, and prints
batch time / step time. The last line lists every fraction.

Usage: python scripts/bench_batches.py [data_dir=DIR] [steps=40] [size=cpu] [device=cpu] [variants=false]
"""

from __future__ import annotations

import sys

from harness.config.compose import compose_config
from harness.config.names import workload_names
from harness.config.registry import submission_class, workload_class
from harness.core.runner import resolve_device
from harness.errors import UserError
from harness.tools.measure import measure_steps


def main() -> None:
    options = {"data_dir": "", "steps": "40", "size": "cpu", "device": "cpu", "variants": "false"}
    for item in sys.argv[1:]:
        key, _, value = item.partition("=")
        if key not in options:
            sys.exit(f"unknown option {key}; valid: {', '.join(options)}")
        options[key] = value
    device = resolve_device(options["device"])
    fractions = {}
    for name in workload_names():
        base = compose_config("trial", [f"workload={name}"]).workload
        variants = ["base", *base.variants] if options["variants"] == "true" else ["base"]
        for variant in variants:
            overrides = [f"workload={name}", f"workload.size={options['size']}", f"workload.variant={variant}",
                         "submission=adamw"]
            if options["data_dir"]:
                overrides.append(f"data_dir={options['data_dir']}")
            cfg = compose_config("trial", overrides)
            workload = workload_class(name)(cfg.workload, device, cfg.data_dir)
            try:
                workload.load()
            except UserError as error:
                print(f"{workload.label:<24} skipped: {error}")
                continue
            cls = submission_class("adamw")
            hparams = cls.Hparams.from_mapping(cfg.submission.hparams)
            m = measure_steps(workload, cls, hparams, steps=int(options["steps"]))
            fractions[workload.label] = m["batch_fraction"]
            step_ms, batch_ms = m["step_time_s"] * 1e3, m["batch_time_s"] * 1e3
            print(f"{workload.label:<24} step {step_ms:8.2f} ms   batch {batch_ms:7.3f} ms   "
                  f"batches = {100 * m['batch_fraction']:5.1f}% of submission time", flush=True)
    print("batch share: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in fractions.items()))


if __name__ == "__main__":
    main()
