"""Harness overhead: steps/second of an `optbench` trial vs a bare hand-written PyTorch loop.

Both train the same model (fashion_mnist MLP, same seed) on the same device-resident data with
the same optimizer (AdamW + warmup/cosine schedule, default hyperparameters) and batch size,
with no evaluation. Runs alternate (bare, harness, bare, harness, ...) so that machine noise
hits both; the median of each is compared. The last stdout line ends with the ratio
harness ÷ bare (1.0 = no overhead).

Usage: python scripts/bench_overhead.py [data_dir=DIR] [steps=N] [repeats=R] [device=cpu|cuda]
With no data_dir, the workload's default locations are used (Debian's dataset package, ...).
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from harness.config.compose import compose_config
from harness.config.registry import submission_class, workload_class
from harness.core.runner import resolve_device, run_trial


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


def bare_loop(train_x: torch.Tensor, train_y: torch.Tensor, hp: dict, step_hint: int, steps: int,
              device: torch.device) -> float:
    """Steps per second of a plain loop: shuffled batches, forward, backward, AdamW, schedule."""
    from workloads.fashion_mnist import build_mlp

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_mlp().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                                  eps=hp["eps"], weight_decay=hp["weight_decay"])
    warmup = round(hp["warmup_fraction"] * step_hint)
    end = round(hp["decay_fraction"] * step_hint)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (end - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    batch, n = hp["batch_size"], train_x.shape[0]
    generator = torch.Generator().manual_seed(0)
    order, position = torch.randperm(n, generator=generator).to(device), 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        if position + batch > n:
            order, position = torch.randperm(n, generator=generator).to(device), 0
        index = order[position : position + batch]
        position += batch
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(train_x[index]), train_y[index])
        loss.backward()
        optimizer.step()
        scheduler.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def harness_trial(overrides: list[str], steps: int, results: str, run: int) -> float:
    """Steps per second of submission time of an `optbench` trial with evaluation disabled."""
    cfg = compose_config("trial", [
        *overrides, f"max_steps={steps}", "workload.sizes.cpu.eval_every_steps=1000000000",
        "workload.sizes.cpu.target=2.0", "progress=false", f"results={results}/{run}",
    ])
    summary = run_trial(cfg)
    assert summary["steps"] == steps, summary
    return steps / summary["submission_time_s"]


def main() -> None:
    options = parse(sys.argv[1:])
    steps, repeats = int(options["steps"]), int(options["repeats"])
    overrides = ["workload=fashion_mnist", "submission=adamw", f"device={options['device']}"]
    if options["data_dir"]:
        overrides.append(f"data_dir={options['data_dir']}")
    cfg = compose_config("trial", overrides)
    device = resolve_device(options["device"])
    workload = workload_class("fashion_mnist")(cfg.workload, device, cfg.data_dir)
    workload.load()
    hp = submission_class("adamw").Hparams.from_mapping(cfg.submission.hparams).as_dict()
    train_x, train_y = workload._train
    print(f"device {device}, {steps} steps per run, {repeats} runs each, batch {hp['batch_size']}, "
          f"torch threads {torch.get_num_threads()}")
    bare_loop(train_x, train_y, hp, workload.step_hint, 200, device)  # warm-up, not measured
    bare, harness = [], []
    with tempfile.TemporaryDirectory() as results:
        for run in range(repeats):
            bare.append(bare_loop(train_x, train_y, hp, workload.step_hint, steps, device))
            harness.append(harness_trial(overrides, steps, results, run))
            print(f"run {run}: bare {bare[-1]:8.1f} steps/s   harness {harness[-1]:8.1f} steps/s")
    b, h = statistics.median(bare), statistics.median(harness)
    print(f"median: bare {b:.1f} steps/s, harness {h:.1f} steps/s; ratio harness/bare = {h / b:.3f}")


if __name__ == "__main__":
    main()
