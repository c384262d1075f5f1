"""Checkpoints: a trial interrupted at any point resumes exactly where its last checkpoint was."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import harness.core.runner as runner
from harness.core.checkpoint import CHECKPOINT_NAME, capture_rng, restore_rng
from harness.core.progress import Progress
from harness.core.records import read_json, read_jsonl
from harness.core.trial import run_trial
from workloads.fashion_mnist import FashionMNIST

UNREACHABLE = "workload.sizes.smoke.target=2.0"
REPO = Path(__file__).resolve().parent.parent


def evals(record_dir: Path) -> list[dict]:
    return [e for e in read_jsonl(record_dir / "evals.jsonl") if e["event"] == "eval"]


def metrics_by_step(record_dir: Path) -> dict[int, dict]:
    return {e["step"]: e["metrics"] for e in evals(record_dir)}


@pytest.mark.parametrize("submission", ["adamw", "momentum"])
def test_interrupted_trial_resumes_exactly(smoke_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           submission: str) -> None:
    settings = [f"submission={submission}", UNREACHABLE, "max_steps=60", "checkpoint_every_s=0"]
    reference = run_trial(smoke_cfg(*settings, f"results={tmp_path / 'a'}"))

    real_evaluate, calls = FashionMNIST.evaluate, []

    def interrupted_evaluate(self, model, split):
        calls.append(split)
        if len(calls) == 4:  # the 4th evaluation (step 40; validation only until the last): the process "dies"
            raise KeyboardInterrupt
        return real_evaluate(self, model, split)

    cfg = smoke_cfg(*settings, f"results={tmp_path / 'b'}")
    monkeypatch.setattr(FashionMNIST, "evaluate", interrupted_evaluate)
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg)
    monkeypatch.setattr(FashionMNIST, "evaluate", real_evaluate)
    record_dir = Path(reference["record_dir"].replace(str(tmp_path / "a"), str(tmp_path / "b")))
    assert (record_dir / CHECKPOINT_NAME).is_file()
    assert read_json(record_dir / "manifest.json")["status"] == "running"

    loop_starts: list[float] = []  # the progress ETA's pace starts with the resumed steps (tests/test_progress.py)
    real_loop_started = Progress.loop_started
    monkeypatch.setattr(Progress, "loop_started",
                        lambda self, charged: (loop_starts.append(charged), real_loop_started(self, charged)))
    resumed = run_trial(cfg)
    assert resumed["steps"] == reference["steps"] == 60
    at_30 = next(e["submission_time_s"] for e in evals(record_dir) if e["step"] == 30)
    # the checkpoint's charged time, plus the submission's load_state_dict (charged: a fraction of a ms)
    assert len(loop_starts) == 1 and at_30 <= loop_starts[0] < at_30 + 0.5, (loop_starts, at_30)
    # Bit-for-bit the same training: every evaluation, before and after the interruption.
    assert metrics_by_step(record_dir) == metrics_by_step(Path(reference["record_dir"]))
    rows = read_jsonl(record_dir / "evals.jsonl")
    resume = [r for r in rows if r["event"] == "resume"]
    assert len(resume) == 1 and resume[0]["step"] == 30
    times = [e["submission_time_s"] for e in evals(record_dir)]
    assert times == sorted(times)  # the clock continued from the checkpoint, it did not restart
    manifest = read_json(record_dir / "manifest.json")
    assert [a.get("resumed_from_step") for a in manifest["attempts"]] == [None, 30]
    assert not (record_dir / CHECKPOINT_NAME).exists()  # removed once the trial ended


def test_evaluations_after_the_checkpoint_are_set_aside(smoke_cfg, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """When the newest checkpoint is older than the last logged evaluation, the evaluations of the
    dead attempt after it move to evals.superseded.jsonl (kept, not scored) and are recomputed."""
    settings = [UNREACHABLE, "max_steps=40", "checkpoint_every_s=0"]
    reference = run_trial(smoke_cfg(*settings, f"results={tmp_path / 'ref'}"))
    real_save, real_evaluate, calls = runner.save_checkpoint, FashionMNIST.evaluate, []

    def keep_every_checkpoint(folder, state, **options):
        path = real_save(folder, state, **options)
        shutil.copy(path, folder / f"kept-{state['step']}.pt")
        return path

    def interrupted_evaluate(self, model, split):
        calls.append(split)
        if len(calls) == 4:  # the 4th evaluation (step 40)
            raise KeyboardInterrupt
        return real_evaluate(self, model, split)

    cfg = smoke_cfg(*settings, f"results={tmp_path / 'b'}")
    monkeypatch.setattr(runner, "save_checkpoint", keep_every_checkpoint)
    monkeypatch.setattr(FashionMNIST, "evaluate", interrupted_evaluate)
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg)
    monkeypatch.setattr(FashionMNIST, "evaluate", real_evaluate)
    record_dir = next(Path(cfg.results).rglob("manifest.json")).parent
    shutil.copy(record_dir / "kept-20.pt", record_dir / CHECKPOINT_NAME)  # as if the last one was lost

    run_trial(cfg)
    assert [r["step"] for r in read_jsonl(record_dir / "evals.superseded.jsonl")] == [30]
    assert metrics_by_step(record_dir) == metrics_by_step(Path(reference["record_dir"]))


def test_killed_process_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """A real SIGKILL of `optbench trial`, then the same command again: same evaluations as an
    uninterrupted run."""
    base = [sys.executable, "-m", "harness.cli", "trial", "workload.size=smoke", UNREACHABLE,
            "max_steps=400", "checkpoint_every_s=0", "progress=false", "device=cpu", "threads=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([*base, f"results={tmp_path / 'a'}"], check=True, capture_output=True, env=env, cwd=REPO)
    killed = subprocess.Popen([*base, f"results={tmp_path / 'b'}"], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    checkpoint = None
    while time.monotonic() < deadline and killed.poll() is None:
        found = list((tmp_path / "b").rglob(CHECKPOINT_NAME))
        if found:
            checkpoint = found[0]
            break
        time.sleep(0.05)
    assert checkpoint is not None, "the trial never wrote a checkpoint"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    subprocess.run([*base, f"results={tmp_path / 'b'}"], check=True, capture_output=True, env=env, cwd=REPO)
    a = next((tmp_path / "a").rglob("manifest.json")).parent
    b = next((tmp_path / "b").rglob("manifest.json")).parent
    assert metrics_by_step(a) == metrics_by_step(b)
    assert read_json(b / "manifest.json")["summary"]["steps"] == 400


def test_a_cuda_checkpoint_keeps_the_trial_s_gpu_generator_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A data-parallel rank puts rank 0's CUDA generator into its own GPU's: every GPU's list, saved
    by rank 0 and put back whole, gave rank 1's GPU rank 0's copy of it, which rank 0 never drew
    from (its dropout masks started over), and read every GPU (a context on each). Faked CUDA."""
    states = {0: torch.tensor([10], dtype=torch.uint8), 1: torch.tensor([11], dtype=torch.uint8)}
    read: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": read.append(device.index) or
                        states[device.index].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": states.__setitem__(device.index,
                                                                                                        state))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: read.extend(states) or list(states.values()))
    saved = capture_rng(torch.device("cuda", 0))  # rank 0
    assert read == [0] and torch.equal(saved["cuda"], states[0])
    states[0] = torch.tensor([99], dtype=torch.uint8)  # rank 0 draws on after the checkpoint
    restore_rng(saved, torch.device("cuda", 1))  # rank 1 resumes: its GPU continues from where rank 0's was
    assert states[1].item() == 10 and states[0].item() == 99
    restored: list = []  # a checkpoint made before: every GPU's list, put back as it was then
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    restore_rng({**saved, "cuda": [states[0], states[1]]}, torch.device("cuda", 1))
    assert len(restored) == 1 and len(restored[0]) == 2


def test_a_trial_started_on_another_processor_is_not_resumed_here(smoke_cfg, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial requeued onto another node type (or its folder copied to another machine) resumed
    silently: its charged time was measured on two processors, its manifest named the first alone,
    and score's one-hardware check could not see it."""
    from harness.errors import UserError

    cfg = smoke_cfg(UNREACHABLE, "max_steps=40", "checkpoint_every_s=0", f"results={tmp_path}")
    real_evaluate, calls = FashionMNIST.evaluate, []

    def interrupted_evaluate(self, model, split):
        calls.append(split)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_evaluate(self, model, split)

    monkeypatch.setattr(FashionMNIST, "evaluate", interrupted_evaluate)
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg)
    monkeypatch.setattr(FashionMNIST, "evaluate", real_evaluate)
    record_dir = next(tmp_path.rglob(CHECKPOINT_NAME)).parent
    manifest = read_json(record_dir / "manifest.json")
    manifest["device"]["cpu_model"] = "Machine A processor"
    (record_dir / "manifest.json").write_text(__import__("json").dumps(manifest))
    with pytest.raises(UserError, match=r"other hardware: cpu_model 'Machine A processor' then, .* now.*"
                                        r"rerun=true"):
        run_trial(cfg)
    assert (record_dir / CHECKPOINT_NAME).is_file()  # kept: it may still be resumed on the first kind
    cfg.rerun = True
    summary = run_trial(cfg)
    assert summary["steps"] == 40
    manifest = read_json(record_dir / "manifest.json")
    assert manifest["device"]["cpu_model"] != "Machine A processor"  # started over here, and says so
    assert [a.get("resumed_from_step") for a in manifest["attempts"]] == [None]
