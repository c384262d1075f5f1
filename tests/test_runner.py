"""The training loop's rules: the clock, the per-step budget, divergence, failure, no reruns."""

from __future__ import annotations

import itertools
import json
import platform
import time
from pathlib import Path

import pytest

import harness.core.runner as runner
from harness.core.records import read_json, read_jsonl
from harness.core.trial import run_trial
from submissions.sgd import SGD
from workloads.fashion_mnist import FashionMNIST

UNREACHABLE = "workload.sizes.smoke.target=2.0"


def events(summary: dict) -> list[dict]:
    return read_jsonl(Path(summary["record_dir"]) / "evals.jsonl")


def test_slow_evaluation_is_not_charged(smoke_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    real_evaluate = FashionMNIST.evaluate

    def slow_evaluate(self, model, split):
        time.sleep(0.5)
        return real_evaluate(self, model, split)

    monkeypatch.setattr(FashionMNIST, "evaluate", slow_evaluate)
    started = time.monotonic()
    summary = run_trial(smoke_cfg(UNREACHABLE, "max_steps=40", "workload.sizes.smoke.eval_every_steps=10"))
    wall = time.monotonic() - started
    evals = [e for e in events(summary) if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [10, 20, 30, 40]
    assert wall > 5 * 0.5  # validation at each of four evaluations, test once at the end
    # 2.5 s of evaluation happened; the clock must not have seen it (2 s at least if it did), the timing
    # audit must have
    assert summary["submission_time_s"] < 1.0
    timing = summary["timing"]
    assert timing["evaluation_s"] >= 5 * 0.5 and timing["submission_s"] == summary["submission_time_s"]
    parts = (timing["submission_s"] + timing["evaluation_s"] + timing["checkpoint_s"] + timing["record_s"]
             + timing["other_s"])
    assert parts == pytest.approx(timing["wall_s"] + timing["construction_s"])  # construction: charged, before
    assert 0 <= timing["other_s"] < 0.5 and timing["setup_s"] > 0 and not timing["clock_suspect"]
    gaps = [b["submission_time_s"] - a["submission_time_s"] for a, b in itertools.pairwise(evals)]
    assert all(g < 0.35 for g in gaps)  # 0.5 s at least where an evaluation was charged


def test_the_test_split_is_evaluated_once_at_the_end(smoke_cfg) -> None:
    """Validation decides the outcome and is measured at every evaluation; test only at the last."""
    for overrides, status in (([UNREACHABLE, "max_steps=40"], "not_reached"), (["max_runtime_s=60"], "reached")):
        summary = run_trial(smoke_cfg(*overrides, "workload.sizes.smoke.eval_every_steps=10"))
        evals = [e for e in events(summary) if e["event"] == "eval"]
        assert summary["status"] == status and len(evals) >= 2
        assert all("validation/accuracy" in e["metrics"] for e in evals)
        assert [("test/accuracy" in e["metrics"]) for e in evals] == [False] * (len(evals) - 1) + [True]


class SlowPrepare(SGD):
    def prepare_for_eval(self) -> None:
        time.sleep(0.2)


def test_prepare_for_eval_is_charged(smoke_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: SlowPrepare)
    summary = run_trial(smoke_cfg("submission=sgd", UNREACHABLE, "max_steps=30",
                                         "workload.sizes.smoke.eval_every_steps=10"))
    assert summary["submission_time_s"] >= 3 * 0.2


class SlowUpdate(SGD):
    pause_s = 0.2

    def update(self, batch, compute_loss):
        time.sleep(self.pause_s)
        return super().update(batch, compute_loss)


class SlowerUpdate(SlowUpdate):
    pause_s = 0.4


def test_budget_is_checked_every_step(smoke_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: SlowerUpdate)
    # max_steps: a step cap, so that a clock that stopped advancing ends the trial in 8 s (and fails
    # the test) instead of training forever
    # (0.4 s steps against 0.6 s: the first step stays within the budget unless the harness's own
    # cost per step passes 0.2 s, the second is past it unless the clock misses 0.2 s of sleeping)
    summary = run_trial(smoke_cfg("submission=sgd", UNREACHABLE, "max_runtime_s=0.6",
                                         "workload.sizes.smoke.eval_every_steps=1000", "max_steps=20"))
    assert summary["status"] == "not_reached" and summary["stopped_by"] == "budget"
    assert summary["steps"] == 2  # 0.8 s > 0.6 s after the second step, long before step 1000
    assert 0.6 < summary["submission_time_s"] < 1.3
    final = [e for e in events(summary) if e["event"] == "eval"]
    assert len(final) == 1 and final[0]["within_budget"] is False and final[0]["reached"] is False


def test_target_met_after_the_budget_does_not_count(smoke_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: SlowUpdate)
    summary = run_trial(smoke_cfg("submission=sgd", "workload.sizes.smoke.target=0.0",
                                         "max_runtime_s=0.05", "workload.sizes.smoke.eval_every_steps=1000",
                                         "max_steps=20"))
    assert summary["status"] == "not_reached" and summary["time_to_target_s"] is None


def test_huge_learning_rate_diverges(smoke_cfg) -> None:
    summary = run_trial(smoke_cfg("submission=sgd", "submission.hparams.lr=1e30"))
    assert summary["status"] == "diverged"
    assert summary["time_to_target_s"] is None and summary["steps_to_target"] is None
    assert events(summary)[-1]["status"] == "diverged"


class RaisesAtStep25(SGD):
    calls = 0

    def update(self, batch, compute_loss):
        RaisesAtStep25.calls += 1
        if RaisesAtStep25.calls == 25:
            raise RuntimeError("boom in submission code")
        return super().update(batch, compute_loss)


def test_exception_in_submission_fails_the_trial_and_keeps_records(smoke_cfg, monkeypatch) -> None:
    RaisesAtStep25.calls = 0
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: RaisesAtStep25)
    summary = run_trial(smoke_cfg("submission=sgd", UNREACHABLE, "workload.sizes.smoke.eval_every_steps=10"))
    assert summary["status"] == "failed" and summary["error_in"] == "submission.update"
    rows = events(summary)
    assert [r["step"] for r in rows if r["event"] == "eval"] == [10, 20]  # earlier evaluations kept
    assert "RuntimeError: boom in submission code" in rows[-1]["error"]
    assert "Traceback" in read_json(Path(summary["record_dir"]) / "manifest.json")["summary"]["error"]


class RaisesInInit(SGD):
    def __init__(self, *args, **kwargs):
        raise ValueError("bad optimizer construction")


def test_exception_in_submission_constructor_fails_the_trial(smoke_cfg, monkeypatch) -> None:
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: RaisesInInit)
    summary = run_trial(smoke_cfg("submission=sgd"))
    assert summary["status"] == "failed" and summary["error_in"] == "submission.__init__"
    assert "ValueError: bad optimizer construction" in summary["error"]


def test_finished_trial_is_never_run_again(smoke_cfg) -> None:
    first = run_trial(smoke_cfg())
    lines = (Path(first["record_dir"]) / "evals.jsonl").read_text()
    second = run_trial(smoke_cfg())
    assert second["cached"] is True and second["record_dir"] == first["record_dir"]
    assert (Path(first["record_dir"]) / "evals.jsonl").read_text() == lines


def test_unfinished_attempt_is_kept_aside(smoke_cfg) -> None:
    cfg = smoke_cfg()
    summary = run_trial(cfg)
    folder = Path(summary["record_dir"])
    manifest = read_json(folder / "manifest.json")
    interrupted = {k: v for k, v in manifest.items() if k != "summary"}
    (folder / "manifest.json").write_text(json.dumps({**interrupted, "status": "running"}))  # as if killed
    old = (folder / "evals.jsonl").read_text()
    again = run_trial(cfg)
    assert again.get("cached") is None and again["status"] == manifest["status"]
    assert (folder / "evals.attempt1.jsonl").read_text() == old


def test_manifest_describes_the_trial(smoke_cfg) -> None:
    summary = run_trial(smoke_cfg("seed=3"))
    manifest = read_json(Path(summary["record_dir"]) / "manifest.json")
    for key in ("workload", "size", "submission", "hparams", "seed", "config_hash", "git", "versions",
                "device", "submission_source_sha256", "target", "max_runtime_s", "status", "summary"):
        assert key in manifest, key
    assert manifest["seed"] == 3 and manifest["hparams"]["lr"] == pytest.approx(2e-3)
    assert manifest["versions"]["torch"] and manifest["device"]["type"] == "cpu"


def test_a_submission_s_python_and_numpy_draws_come_from_the_trial_s_seed() -> None:
    """The ranks of a data-parallel trial build their submissions alike: Python's and NumPy's
    global generators are seeded with torch's, or a submission drawing from them (a random
    learning-rate jitter, say) would train each replica differently, unseen by DDP."""
    import random

    import numpy as np
    import torch

    from harness.core.parts import build_submission

    class Draws:
        def __init__(self, model, hparams, info):
            self.drawn = (random.random(), float(np.random.rand()), float(torch.rand(())))

    random.seed(1)
    np.random.seed(1)
    first = build_submission(Draws, None, None, None, 7).drawn
    random.seed(2)  # what ran before differs, as it does between two processes
    np.random.seed(2)
    assert build_submission(Draws, None, None, None, 7).drawn == first
    assert build_submission(Draws, None, None, None, 8).drawn[:2] != first[:2]


def test_a_trial_records_its_processor_s_model_where_the_system_says_it(smoke_cfg, tmp_path: Path) -> None:
    """score compares it: times on two kinds of machine are not one race (platform.processor() is
    often empty or the architecture only)."""
    from harness.core.environment import cpu_model

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763 64-Core Processor\n")
    assert cpu_model(str(info)) == "AMD EPYC 7763 64-Core Processor"
    info.write_text("processor\t: 0\nBogoMIPS\t: 48.00\n")  # no model line (some ARM kernels)
    assert cpu_model(str(info)) in (None, platform.processor())
    summary = run_trial(smoke_cfg("submission=sgd", "max_steps=5"))
    manifest = read_json(Path(summary["record_dir"]) / "manifest.json")
    assert manifest["device"]["cpu_model"] == cpu_model()
    if Path("/proc/cpuinfo").is_file() and "model name" in Path("/proc/cpuinfo").read_text():
        assert manifest["device"]["cpu_model"]  # Linux on x86: always told


def test_a_trial_without_threads_runs_with_torch_s_default_not_an_earlier_trial_s(smoke_cfg) -> None:
    """A trial with threads=1 (calibrate's runs, an inline sweep's) left the process at 1 thread: a
    later trial with threads unset trained on one core (a time-budgeted one then missed its target)."""
    first = run_trial(smoke_cfg(UNREACHABLE, "max_steps=5", "threads=1"))
    later = run_trial(smoke_cfg(UNREACHABLE, "max_steps=5", "seed=1"))
    threads = [json.loads((Path(s["record_dir"]) / "manifest.json").read_text())["device"]["torch_threads"]
               for s in (first, later)]
    assert threads == [1, runner.DEFAULT_THREADS], threads


def test_info_without_threads_measures_with_torch_s_default_not_an_earlier_command_s() -> None:
    """``optbench info threads=1`` left the process at one thread: a later info (or trial) of the
    same process with threads unset timed its steps on one core."""
    import torch

    from harness.tools.info import run_info

    seen = []
    for threads in (["threads=1"], []):
        run_info(["workload=rosenbrock", "workload.size=smoke", "device=cpu", "steps=1", "warmup=0", *threads])
        seen.append(torch.get_num_threads())
    assert seen == [1, runner.DEFAULT_THREADS], seen


def test_a_target_outside_the_metric_s_values_is_noted(smoke_cfg, capsys: pytest.CaptureFixture) -> None:
    """An accuracy target of 2 ran every trial to its budget without a word (tests use it on purpose)."""
    from types import SimpleNamespace

    from harness.workload import target_out_of_range

    def workload(target: float, higher: bool = True) -> SimpleNamespace:
        return SimpleNamespace(metric_range=(0.0, 1.0) if higher else (0.0, float("inf")), target=target,
                               higher_is_better=higher, metric="accuracy" if higher else "loss")

    assert "no trial can meet it" in target_out_of_range(workload(2.0))
    assert "every trial meets it at its first evaluation" in target_out_of_range(workload(-0.5))
    assert "no trial can meet it" in target_out_of_range(workload(-1.0, higher=False))
    assert target_out_of_range(workload(0.87)) == target_out_of_range(workload(float("inf"))) == ""
    run_trial(smoke_cfg(UNREACHABLE, "max_steps=5", "progress=true"))
    assert "note: the target 2 lies outside the values validation accuracy takes (0 to 1)" in capsys.readouterr().err
