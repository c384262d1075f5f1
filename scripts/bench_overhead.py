"""Harness overhead: steps/second of an `optbench` trial vs a bare hand-written PyTorch loop.

Both train the workload's own model on its own batch stream (device-resident data, same seed)
with the same loss, in the size's precision (bf16 autocast where the size says so), with the
same optimizer (AdamW + warmup/cosine schedule, default hyperparameters) and batch size, eager
(compile=false), with no evaluation: what differs is the harness's loop around the step (clock,
contract and divergence checks, progress, records). Runs alternate (bare, harness, bare,
harness, ...) so that machine noise hits both; the median of each is compared. The last stdout
line ends with the ratio harness ÷ bare (1.0 = no overhead).

Usage: python scripts/bench_overhead.py [workload=fashion_mnist] [size=cpu] [data_dir=DIR] [steps=N]
       [repeats=R] [device=cpu|cuda]
With no data_dir, the workload's default locations are used (Debian's dataset package, the data
shipped in workloads/data/, ...); on a GPU, `workload=gpt size=gpu device=cuda` needs nothing else.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time

import torch

from harness.config.compose import compose_config
from harness.config.registry import submission_class, workload_class
from harness.core.runner import resolve_device
from harness.core.trial import run_trial
from harness.workload import Workload


def parse(argv: list[str], defaults: dict[str, str] | None = None) -> dict[str, str]:
    """The ``key=value`` options of a bench script's command line, over ``defaults`` (this script's
    when None); an unknown key ends the script naming the valid ones."""
    options = dict(defaults or {"steps": "3000", "repeats": "3", "device": "cpu", "data_dir": ""})
    for item in argv:
        key, _, value = item.partition("=")
        if key not in options:
            sys.exit(f"unknown option {key}; valid: {', '.join(options)}")
        options[key] = value
    return options


def bare_loop(workload: Workload, hp: dict, steps: int, device: torch.device) -> float:
    """Steps per second of a plain loop: the workload's next batch, forward and loss (under
    bfloat16 autocast for a bf16 size), backward, AdamW, schedule."""
    model = workload.build_model(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                                  eps=hp["eps"], weight_decay=hp["weight_decay"])
    warmup = round(hp["warmup_fraction"] * workload.step_hint)
    end = round(hp["decay_fraction"] * workload.step_hint)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (end - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    batches = workload.train_batches(hp["batch_size"], 0)
    bf16 = workload.spec.precision == "bf16"
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = workload.loss(model, next(batches))
        loss.backward()
        optimizer.step()
        scheduler.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def harness_trial(overrides: list[str], size: str, unreachable: float, steps: int, results: str, run: int) -> float:
    """Steps per second of submission time of an `optbench` trial with evaluation disabled."""
    cfg = compose_config("trial", [
        *overrides, f"max_steps={steps}", f"workload.sizes.{size}.eval_every_steps=1000000000",
        f"workload.sizes.{size}.eval_period_s=null", f"workload.sizes.{size}.target={unreachable}",
        "max_runtime_s=1000000", "compile=false", "progress=false", f"results={results}/{run}",
    ])
    summary = run_trial(cfg)
    assert summary["steps"] == steps, summary
    return steps / summary["submission_time_s"]


def main() -> None:
    options = parse(sys.argv[1:], {"workload": "fashion_mnist", "size": "cpu", "steps": "3000", "repeats": "3",
                                   "device": "cpu", "data_dir": ""})
    steps, repeats, name, size = int(options["steps"]), int(options["repeats"]), options["workload"], options["size"]
    overrides = [f"workload={name}", f"workload.size={size}", "submission=adamw", f"device={options['device']}"]
    if options["data_dir"]:
        overrides.append(f"data_dir={options['data_dir']}")
    cfg = compose_config("trial", overrides)
    device = resolve_device(options["device"])
    workload = workload_class(name)(cfg.workload, device, cfg.data_dir)
    workload.load_training_data()
    hp = submission_class("adamw").Hparams.from_mapping(cfg.submission.hparams).as_dict()
    unreachable = 1e9 if workload.higher_is_better else -1e9
    print(f"{name} {size} ({workload.spec.precision}) on {device}, {steps} steps per run, {repeats} runs each, "
          f"batch {hp['batch_size']}, torch threads {torch.get_num_threads()}")
    bare_loop(workload, hp, min(200, steps), device)  # warm-up, not measured
    bare, harness = [], []
    with tempfile.TemporaryDirectory() as results:
        for run in range(repeats):
            bare.append(bare_loop(workload, hp, steps, device))
            harness.append(harness_trial(overrides, size, unreachable, steps, results, run))
            print(f"run {run}: bare {bare[-1]:8.1f} steps/s   harness {harness[-1]:8.1f} steps/s")
    b, h = statistics.median(bare), statistics.median(harness)
    print(f"median: bare {b:.1f} steps/s, harness {h:.1f} steps/s; ratio harness/bare = {h / b:.3f}")


if __name__ == "__main__":
    main()
