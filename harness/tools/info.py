"""``optbench info``: what a workload costs and declares, measured here."""

from __future__ import annotations

import sys
from typing import Any

from harness.config.compose import compose_config, split_overrides, validate_trial_config
from harness.config.registry import submission_class, workload_class
from harness.config.schema import InfoConfig
from harness.core.compile import compiles, trial_compile_setting
from harness.core.precision import size_precision
from harness.core.runner import resolve_device, use_threads
from harness.errors import UserError
from harness.identity import relation as meets_as
from harness.routing import describe_routing
from harness.tools.measure import measure_steps


def run_info(overrides: list[str]) -> dict[str, Any]:
    own, trial_overrides = split_overrides(overrides, InfoConfig)
    options = compose_config("info", own)
    if options.steps < 1 or options.warmup < 0:
        raise UserError(f"steps={options.steps} warmup={options.warmup}: info times steps >= 1 steps after "
                        f"warmup >= 0 untimed ones (e.g. steps=30 warmup=5).")
    cfg = compose_config("trial", trial_overrides)
    validate_trial_config(cfg)
    use_threads(cfg.threads)  # as a trial would: step times depend on it
    device = resolve_device(str(cfg.device))
    cls = submission_class(cfg.submission.name, cfg.submission.get("source"))
    hparams = cls.Hparams.from_mapping(cfg.submission.hparams, cfg.submission.name)
    workload = workload_class(cfg.workload.name, cfg.workload.get("source"))(cfg.workload, device, cfg.data_dir)
    workload.check_batch_size(hparams.batch_size)
    workload.load()
    compiled = compiles(trial_compile_setting(cfg), workload, device)
    measured = measure_steps(workload, cls, hparams, steps=options.steps, warmup=options.warmup,
                             compile_setting=compiled)
    precision = size_precision(workload)
    spec = workload.spec
    info = {
        "workload": workload.label,
        "size": workload.size,
        "model": workload.model_name,
        "model_options": workload.model_options,
        "parameters": measured["parameters"],
        "metric": workload.metric,
        "higher_is_better": workload.higher_is_better,
        "target": workload.target,
        "max_runtime_s": workload.max_runtime_s,
        "step_hint": workload.step_hint,
        "eval_every_steps": spec.eval_every_steps,
        "eval_period_s": spec.eval_period_s,
        "batch_size_range": [spec.min_batch_size, spec.max_batch_size],
        "num_train_examples": workload.num_train_examples,
        "data_source": workload.describe_data(),
        "device": str(device),
        "precision": precision,
        "compile": compiled,
        "compile_s": measured["compile_s"],
        "reference_submission": cfg.submission.name,
        "batch_size": hparams.batch_size,
        **{k: measured[k] for k in ("step_time_s", "steps_per_s", "batch_fraction", "peak_memory_bytes",
                                     "peak_memory_kind")},
        "step_hint_time_s": measured["step_time_s"] * workload.step_hint,
        "routing": measured["routing"],
    }
    relation = meets_as(workload.higher_is_better)
    lines = [
        f"workload      {workload.label} (size {workload.size}, model {workload.model_name})",
        f"parameters    {measured['parameters']:,}",
        f"target        validation {workload.metric} {relation} {workload.target:g}",
        f"budget        {workload.max_runtime_s:g} s of submission time ({spec.device_class})",
        f"step hint     {workload.step_hint} steps (~{info['step_hint_time_s']:.1f} s here)",
        f"step time     {measured['step_time_s'] * 1e3:.2f} ms with {cfg.submission.name} at batch "
        f"{hparams.batch_size} on {device} ({measured['steps_per_s']:.0f} steps/s); "
        f"{100 * measured['batch_fraction']:.1f}% producing batches",
        f"precision     {precision}" + ("" if precision == "fp32" else " (autocast; fp32 weights and gradients)"),
        "compile       " + (f"yes: {measured['compile_s']:.1f} s before the clock, step time compiled" if compiled
                             else f"no (compile={cfg.compile})"),
        f"peak memory   {measured['peak_memory_bytes'] / 2**20:.1f} MiB ({measured['peak_memory_kind']})",
        f"data          {workload.num_train_examples:,} training examples from {workload.describe_data()}",
    ]
    if measured["routing"] is not None:
        routing = describe_routing(measured["routing"])
        lines += [f"{'routing' if i == 0 else '':<14}{line}" for i, line in enumerate(routing)]
    print("\n".join(lines), file=sys.stderr, flush=True)
    return info
