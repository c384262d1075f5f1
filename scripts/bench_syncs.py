"""Host synchronisations per training step of a CUDA trial, counted by PyTorch itself.

A step that makes the host wait for the GPU (``.item()``, a device-to-host copy, a ``nonzero``)
stalls the queue of kernels; the harness's own steps must not (its divergence flag is read every
``divergence_check_every`` steps, 25 by default on CUDA). This runs the same in-process trial
twice, for ``short`` and ``long`` steps with no evaluation between (one at the end of each), with
``torch.cuda.set_sync_debug_mode("warn")`` on, and counts the synchronising calls PyTorch warns of.
What setup, the final evaluation and the record cost is the same in both runs, so
(long's count - short's count) / (long - short) is the syncs per step: about 1/25 from the
divergence check plus whatever the submission's own update does. Each call site of the
difference is printed with its count.

Usage: python scripts/bench_syncs.py [workload=gpt] [size=gpu] [submission=adamw] [short=50] [long=150]
       [data_dir=DIR]  (needs CUDA; compile=false: compilation's own syncs are not a step's)
"""

from __future__ import annotations

import collections
import sys
import tempfile
import warnings

import torch
from bench_overhead import parse  # scripts/ is on the path when a script runs

from harness.config.compose import compose_config
from harness.config.registry import workload_class
from harness.core.trial import run_trial

SYNC_WARNING = "called a synchronizing CUDA operation"


def sync_sites(overrides: list[str], workload: str, size: str, steps: int, results: str) -> collections.Counter[str]:
    """The file:line of every synchronising call during a trial of ``steps`` steps, counted."""
    unreachable = 1e9 if workload_class(workload).higher_is_better else -1e9
    cfg = compose_config("trial", [
        *overrides, f"workload={workload}", f"workload.size={size}", f"max_steps={steps}",
        f"workload.sizes.{size}.eval_every_steps=null", f"workload.sizes.{size}.eval_period_s=1e9",
        f"workload.sizes.{size}.target={unreachable}", "compile=false",
        "device=cuda", "progress=false", "checkpoint_every_s=null", f"results={results}",
    ])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            summary = run_trial(cfg)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    if summary["steps"] != steps:
        raise SystemExit(f"the trial ended at step {summary['steps']} ({summary['status']}), not {steps}")
    return collections.Counter(f"{w.filename}:{w.lineno}" for w in caught if SYNC_WARNING in str(w.message))


def main() -> None:
    options = parse(sys.argv[1:], {"workload": "gpt", "size": "gpu", "submission": "adamw", "short": "50",
                                   "long": "150", "data_dir": ""})
    if not torch.cuda.is_available():
        sys.exit("bench_syncs.py counts CUDA synchronisations: PyTorch sees no CUDA device here.")
    short, long = int(options["short"]), int(options["long"])
    overrides = [f"submission={options['submission']}"]
    if options["data_dir"]:
        overrides.append(f"data_dir={options['data_dir']}")
    with tempfile.TemporaryDirectory() as results:
        name, size = options["workload"], options["size"]
        sync_sites(overrides, name, size, short, f"{results}/warm-up")  # loads the data, warms the caches
        few = sync_sites(overrides, name, size, short, f"{results}/short")
        many = sync_sites(overrides, name, size, long, f"{results}/long")
    extra = many - few
    for site, count in extra.most_common():
        print(f"{count / (long - short):8.3f} per step  {site}")
    total = many.total() - few.total()
    print(f"{options['workload']} {options['size']} {options['submission']}: {few.total()} syncs in {short} steps, "
          f"{many.total()} in {long}; syncs per step = {total / (long - short):.3f}")


if __name__ == "__main__":
    main()
