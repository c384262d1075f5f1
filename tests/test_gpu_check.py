"""scripts/gpu_check.sh runs once on a lent GPU: every trial and calibration it would start must be
a valid command before it gets there (its DRY_RUN prints them; here each is composed)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config.compose import compose_config, split_overrides
from harness.config.schema import CalibrateConfig

REPO = Path(__file__).resolve().parent.parent


def dry_run(tmp_path: Path, *args: str, **env: str) -> dict[str, list[str]]:
    """Name -> the arguments after ``harness.cli`` of every command the script would run."""
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), *args], cwd=tmp_path,
                          env={**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "OUT": str(tmp_path / "out"),
                               **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    commands = {}
    for line in done.stdout.splitlines():
        name, _, command = line.partition(": ")
        words = shlex.split(command)
        if words[:1] == [sys.executable]:
            commands[name] = words[1:]
    assert (tmp_path / "out.tgz").is_file()  # what comes back from a machine that returns few files
    return commands


def test_every_trial_it_would_run_composes(tmp_path: Path) -> None:
    # an nvidia-smi that lists a GPU and its two MIG instances: three lines, one device torch can use
    # (none here); the data-parallel trial needs two that torch sees, or it fails and wastes the loan
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\n"
                                      "echo '  MIG 3g.71gb Device 0: (UUID: MIG-0)'\n"
                                      "echo '  MIG 3g.71gb Device 1: (UUID: MIG-1)'\n")
    (tools / "nvidia-smi").chmod(0o755)
    commands = dry_run(tmp_path, PATH=f"{tools}:{os.environ['PATH']}", CUDA_VISIBLE_DEVICES="")  # no GPU for torch
    trials = {name: words[3:] for name, words in commands.items() if words[:3] == ["-m", "harness.cli", "trial"]}
    assert {"gpt-gpu", "cifar10-gpu", "cifar10-gpu-isolated-300", "cifar10-gpu-inprocess-300-again"} <= trials.keys()
    assert "smoke-nproc2" not in trials
    for name, overrides in trials.items():
        cfg = compose_config("trial", overrides)
        assert cfg.device == "cuda" and cfg.workload.size in ("gpu", "smoke"), name
    gpt = compose_config("trial", trials["gpt-gpu"])
    assert gpt.max_steps == gpt.workload.sizes.gpu.step_hint  # the schedule's learning rate is 0 after it
    isolated = compose_config("trial", trials["cifar10-gpu-isolated-300"])
    assert isolated.isolation == "process" and isolated.workload.sizes.gpu.eval_period_s is None
    unconfined = compose_config("trial", trials["cifar10-gpu-isolated-unconfined-100"])
    assert isolated.sandbox == "auto" and unconfined.isolation == "process"
    assert str(unconfined.sandbox).lower() == "false"  # Hydra reads false as a bool, the str field keeps "False"
    scripts = [words[0] for words in commands.values() if words[0].endswith(".py")]
    assert scripts and all((REPO / script).is_file() for script in scripts)


def test_rest_runs_only_the_checks_after_the_first_three(tmp_path: Path) -> None:
    """A loan's budget runs out before the isolated and data-parallel checks: ``rest`` starts there."""
    trials = dry_run(tmp_path, "rest", CUDA_VISIBLE_DEVICES="")
    assert {"cifar10-gpu-isolated-300", "syncs-gpt"} <= trials.keys(), trials.keys()
    assert not {"gpt-gpu", "overhead-gpt", "cifar10-gpu"} & trials.keys()
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "everything"], cwd=tmp_path,
                          env={**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "OUT": str(tmp_path / "o")},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown argument 'everything'" in done.stderr, done.stderr


@pytest.mark.parametrize("workload", ["cifar10"])  # the command differs by the workload's name alone
def test_the_calibration_it_would_run_composes(workload: str, tmp_path: Path) -> None:
    words = dry_run(tmp_path, "calibrate", workload)["calibrate"]
    assert words[:3] == ["-m", "harness.cli", "calibrate"]
    own, trial_overrides = split_overrides(words[3:], CalibrateConfig)  # as `optbench calibrate` splits them
    compose_config("calibrate", own)
    trial = compose_config("trial", trial_overrides)
    assert trial.workload.name == workload and trial.workload.size == "gpu" and trial.device == "cuda"


def test_the_calibration_takes_more_settings_after_the_workload(tmp_path: Path) -> None:
    """The next loan searches gpt's schedule length (its calibrated run overfits after ~2000 of 5000
    steps): settings after the workload's name reach ``optbench calibrate``, after the script's own."""
    words = dry_run(tmp_path, "calibrate", "gpt", "step_hints=[1500,2500,5000]", "confirm_seeds=[1,2,3]")["calibrate"]
    own, trial_overrides = split_overrides(words[3:], CalibrateConfig)
    calibrate = compose_config("calibrate", own)
    assert list(calibrate.step_hints) == [1500, 2500, 5000] and list(calibrate.confirm_seeds) == [1, 2, 3]
    assert compose_config("trial", trial_overrides).workload.name == "gpt"


def report(*arguments: str) -> subprocess.CompletedProcess:
    """scripts/gpu_check_report.py as gpu_check.sh runs it."""
    return subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check_report.py"), *arguments],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)


def test_the_report_reads_each_trial_and_compares_two_trials_evaluations(smoke_cfg, tmp_path: Path) -> None:
    from harness.core.trial import run_trial

    summaries = []
    for name in ("inprocess", "other"):  # the same trial twice, in two results folders
        summary = run_trial(smoke_cfg("workload.sizes.smoke.target=2.0", "max_steps=30",
                                      "workload.sizes.smoke.eval_every_steps=10", f"results={tmp_path / name}"))
        summaries.append(tmp_path / f"{name}.json")
        summaries[-1].write_text(json.dumps(summary))
    line = report("trial", str(summaries[0]))
    assert line.returncode == 0, line.stderr
    assert line.stdout.startswith("not_reached: 30 steps") and "target >= 2.0" in line.stdout
    assert "fp32, compiled False" in line.stdout
    same = report("same", *map(str, summaries))
    assert same.returncode == 0 and same.stdout.startswith("equal evaluations at steps [10, 20, 30]"), same.stdout
    # one metric of the other trial's step 20, 0.1% off: different, and said where
    evals = Path(json.loads(summaries[1].read_text())["record_dir"]) / "evals.jsonl"
    rows = [json.loads(line) for line in evals.read_text().splitlines()]
    changed = next(row for row in rows if row.get("step") == 20)
    metric = sorted(changed["metrics"])[0]
    changed["metrics"][metric] = changed["metrics"][metric] * 1.001 + 1e-3
    evals.write_text("".join(json.dumps(row) + "\n" for row in rows))
    differ = report("same", *map(str, summaries))
    assert differ.returncode == 1 and differ.stdout.startswith("DIFFERENT"), differ.stdout
    assert f"({metric} at step 20)" in differ.stdout
    assert report("same", *map(str, summaries), "rel=0.01").returncode == 0  # within a looser tolerance


def test_the_report_shows_how_far_a_stopped_trial_got(tmp_path: Path) -> None:
    (tmp_path / "gpt-gpu.json").write_text("")  # the trial was killed by its time box: no summary
    (tmp_path / "gpt-gpu.log").write_text("[gpt/gpu adamw seed 0] step 4000  submission time 150.1s / 270s\n")
    line = report("trial", str(tmp_path / "gpt-gpu.json"))
    assert line.returncode == 1 and line.stdout.rstrip().endswith("step 4000  submission time 150.1s / 270s")
    assert report("same", str(tmp_path / "gpt-gpu.json"), str(tmp_path / "gpt-gpu.json")).returncode == 1


def _record(tmp_path: Path, name: str, summary: dict, manifest: dict | None, evals: list[dict]) -> Path:
    """A trial's summary as gpu_check.sh keeps it (NAME.json), with its record folder beside it."""
    record_dir = tmp_path / "records" / name
    record_dir.mkdir(parents=True)
    if manifest is not None:
        (record_dir / "manifest.json").write_text(json.dumps(manifest))
    (record_dir / "evals.jsonl").write_text("".join(json.dumps(row) + "\n" for row in evals))
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"record_dir": str(record_dir), **summary}))
    return path


_ENDED = {"status": "not_reached", "steps": 300, "submission_time_s": 12.5, "metric": "accuracy",
          "higher_is_better": True, "target": 0.93, "best_validation": 0.81, "time_to_target_s": None,
          "steps_to_target": None, "memory": None, "timing": {"compile_s": 0.0, "wall_s": 20.0}}


def test_the_report_reads_failed_cached_old_and_skipped_trials(tmp_path: Path) -> None:
    """The trials this check exists to show: one refused in its warm-up (its record has no timing),
    one an earlier run left (cached, and written before records said their precision), one the
    budget skipped (its NAME.json holds the script's message): a line each, not a traceback."""
    failed = _record(tmp_path, "failed", {**_ENDED, "status": "failed", "steps": 0, "timing": None,
                                          "best_validation": None, "error_in": "harness",
                                          "error_message": "harness.errors.UserError: torch.compile compiled "
                                                           "nothing of the model\nmore"},
                     {"precision": "bf16", "compile": True}, [])
    line = report("trial", str(failed))
    assert line.returncode == 0, line.stderr
    assert line.stdout.startswith("failed: 0 steps") and "bf16, compiled True" in line.stdout
    assert "error in harness: harness.errors.UserError: torch.compile compiled nothing of the model" in line.stdout
    old = _record(tmp_path, "old", {**_ENDED, "cached": True}, {"config_hash": "x"}, [])
    line = report("trial", str(old))
    assert line.returncode == 0, line.stderr
    assert "fp32, compiled False" in line.stdout and "cached: an earlier run's record" in line.stdout
    lost = _record(tmp_path, "lost", _ENDED, None, [])  # its record folder is not here (another machine)
    line = report("trial", str(lost))
    assert line.returncode == 0 and "precision ?, compiled ?" in line.stdout, line.stdout + line.stderr
    skipped = tmp_path / "gpt-gpu.json"
    skipped.write_text("gpt-gpu: skipped, 12 s of BUDGET_S left\n")
    line = report("trial", str(skipped))
    assert line.returncode == 1 and line.stdout.rstrip().endswith("gpt-gpu: skipped, 12 s of BUDGET_S left")


def test_the_report_compares_evaluations_that_diverged(tmp_path: Path) -> None:
    """Records keep a NaN or infinite metric as null: null against null is equal, against a number different."""
    rows = [{"event": "eval", "step": 10, "metrics": {"validation/loss": None, "validation/accuracy": 0.5}}]
    first = _record(tmp_path, "first", _ENDED, {}, rows)
    second = _record(tmp_path, "second", _ENDED, {}, rows)
    same = report("same", str(first), str(second))
    assert same.returncode == 0 and same.stdout.startswith("equal evaluations at steps [10]"), same.stdout + same.stderr
    rows[0]["metrics"]["validation/loss"] = 2.3
    third = _record(tmp_path, "third", _ENDED, {}, rows)
    differ = report("same", str(first), str(third))
    assert differ.returncode == 1 and "DIFFERENT" in differ.stdout and "validation/loss" in differ.stdout, \
        differ.stdout + differ.stderr
