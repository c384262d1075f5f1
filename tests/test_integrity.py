"""What a submission can do to the benchmark from inside the harness's process, and what the
harness does about it (docs/writing-a-submission.md, what a submission may not touch). Each probe
is a submission file of the kind a participant could hand in, run through the real command."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import time
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
import torch

from harness.cli import main
from harness.core.records import read_json, read_jsonl
from harness.core.source_audit import audit_source

SMOKE = ["workload=fashion_mnist", "workload.size=smoke", "progress=false", "device=cpu",
         "workload.sizes.smoke.target=2.0", "workload.sizes.smoke.eval_every_steps=1000", "max_runtime_s=60"]

HEADER = '''
import dataclasses, sys, time
import torch
from harness.submission import TorchOptimSubmission, TrainingHparams


@dataclasses.dataclass(kw_only=True)
class Hparams(TrainingHparams):
    lr: float = 0.01


class Base(TorchOptimSubmission):
    Hparams = Hparams
    search_space = {"lr": {"min": 0.001, "max": 0.1, "scaling": "log"}}

    def build_optimizer(self, params, hp):
        return torch.optim.SGD(params, lr=hp.lr)
'''

HONEST = HEADER + '''

class Honest(Base):
    def update(self, batch, compute_loss):
        time.sleep(0.01)  # a step's worth of work
        return super().update(batch, compute_loss)
'''

CLOCK_ATTACK = HEADER + '''

class ClockAttack(Base):
    """After each step, restart the harness's clock (found in the caller's frame): no step is charged."""

    def update(self, batch, compute_loss):
        time.sleep(0.01)
        loss = super().update(batch, compute_loss)
        frame = sys._getframe(1)
        while frame is not None and "clock" not in frame.f_locals:
            frame = frame.f_back
        if frame is not None:
            frame.f_locals["clock"]._started = time.perf_counter()
        return loss
'''

SLOW_INIT = HEADER + '''

class SlowInit(Base):
    """Does its preparation in __init__ (here: waits), where it used to be free."""

    def __init__(self, model, hparams, info):
        time.sleep(0.6)
        super().__init__(model, hparams, info)
'''


def run_trial(tmp_path: Path, source: str, cls: str, capsys: pytest.CaptureFixture, *extra: str) -> dict:
    path = tmp_path / f"{cls.lower()}.py"
    path.write_text(source)
    code = main(["trial", f"submission={path}:{cls}", *SMOKE, f"results={tmp_path / 'results'}", *extra])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, out
    return json.loads(out[-1])


def test_resetting_the_clock_from_inside_update_is_caught_by_the_harness_s_own_measurement(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    honest = run_trial(tmp_path, HONEST, "Honest", capsys, "max_steps=150")
    attack = run_trial(tmp_path, CLOCK_ATTACK, "ClockAttack", capsys, "max_steps=150")
    assert honest["submission_time_s"] > 1.5 and not honest["timing"]["clock_suspect"]
    # In-process the attack works on the clock (the docs say so) ...
    assert attack["submission_time_s"] < 0.2 * honest["submission_time_s"]
    # ... and the harness's independent measurement flags it, in the record and on the leaderboard.
    assert attack["timing"]["clock_suspect"] and attack["timing"]["other_s"] > 1.0
    manifest = read_json(Path(attack["record_dir"]) / "manifest.json")
    assert "interpreter frames" in manifest["submission_audit"]["kinds"]
    assert main(["score", f"results={tmp_path / 'results'}", f"out={tmp_path / 'board'}", "bootstrap=0"]) == 0
    capsys.readouterr()
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv").set_index("submission")
    assert table.loc["clockattack", "clock_suspect_on"] == "fashion_mnist-smoke"
    assert "interpreter frames" in table.loc["clockattack", "audit"]
    assert pd.isna(table.loc["honest", "clock_suspect_on"]) and pd.isna(table.loc["honest", "audit"])
    page = (tmp_path / "board" / "leaderboard.html").read_text()
    assert "clockattack (clock suspect on fashion_mnist-smoke; source uses" in page


SLOW_TIME = HONEST.replace("class Honest(Base):", '''_perf, _mono = time.perf_counter, time.monotonic
time.perf_counter = lambda: _perf() * 0.1  # at import: every clock read through the time module runs slow
time.monotonic = lambda: _mono() * 0.1


class SlowTime(Base):''')


def test_a_submission_that_slows_the_time_module_does_not_slow_the_harness_s_clock(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness binds its clocks when imported. Before, it read them through the time module:
    slowing perf_counter cut the charged time tenfold, and slowing monotonic as well hid it from
    the wall-time cross-check (clock_suspect stayed false)."""
    monkeypatch.setattr(time, "perf_counter", time.perf_counter)  # restored after the test, whatever it set
    monkeypatch.setattr(time, "monotonic", time.monotonic)
    honest = run_trial(tmp_path, HONEST, "Honest", capsys, "max_steps=100")
    slowed = run_trial(tmp_path, SLOW_TIME, "SlowTime", capsys, "max_steps=100")
    assert time.perf_counter.__name__ == time.monotonic.__name__ == "<lambda>"  # the module's patches happened
    assert honest["submission_time_s"] > 1.0
    assert slowed["submission_time_s"] > 0.7 * honest["submission_time_s"]


def test_work_done_in_init_is_charged(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    summary = run_trial(tmp_path, SLOW_INIT, "SlowInit", capsys, "max_steps=5")
    assert summary["timing"]["construction_s"] >= 0.6 and summary["submission_time_s"] >= 0.6
    assert not summary["timing"]["clock_suspect"]


@pytest.mark.parametrize(("source", "kinds"), [
    ("import gc\nobjs = gc.get_objects()", {"garbage collector"}),
    ("import sys\nf = sys._getframe(1).f_locals", {"interpreter frames"}),
    ("w = compute_loss.func.__self__", {"bound methods"}),
    ("g = fn.__globals__\nc = fn.__closure__", {"function globals", "closures"}),
    ("data = open('/data/val.bin').read()", {"file access"}),
    ("import socket, subprocess\nsubprocess.run(['ls'])", {"network", "subprocesses"}),
    ("import torch\nx = torch.zeros(3).mul_(2)", set()),
    # before, none of these was named (a review's cheats that ranked with an empty audit):
    ("import time\n_real = time.perf_counter\ntime.perf_counter = lambda: _real() * 0.1", {"patches imported code"}),
    ("import harness.core.runner as r\nr._evaluate = lambda *a: {}", {"harness internals", "patches imported code"}),
    ("from harness.core import runner\nsetattr(runner, '_evaluate', None)", {"harness internals",
                                                                            "patches imported code"}),
    ("from workloads.fashion_mnist import read_split", {"workload code (its data)"}),
    ("from harness.submission import Submission\nfrom harness import workload, routing", set()),
    ("model.register_forward_hook(lambda m, i, o: o * 0.01)", {"model hooks"}),
    ("from pathlib import Path\nx = Path('/data/val.npz').read_bytes()", {"file access"}),
    ("import numpy as np\nx = np.load('/data/val.npz')", {"file access"}),
    ("import threading\nthreading.Thread(target=print).start()", {"threads"}),
    ("self.lr = 0.1\nstate.step += 1", set()),  # the submission's own attributes
    ("import sys\nsys.modules['time'].perf_counter = f", {"module table", "patches imported code"}),
    ("import time\ntime.__dict__['perf_counter'] = f", {"patches imported code"}),
    ("import time\nt = time\nt.perf_counter = f", {"patches imported code"}),
    ("from torch import load\nx = load(p)", {"file access"}),
    ("from pathlib import Path\nx = Path(p).open()", {"file access"}),
    ("import torch\nfor m in model.modules():\n    group['lr'] = 1\nself.state[p] = {}", set()),
])
def test_the_static_audit_names_each_escape_hatch(source: str, kinds: set[str]) -> None:
    assert {f["kind"] for f in audit_source(source)} == kinds


def test_the_audit_reads_the_modules_the_submission_imports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Before, only the class's own file was read: a helper module beside it (imported by it) that used
    gc.get_objects() left the audit empty."""
    (tmp_path / "helper_objs.py").write_text("import gc\n\ndef everything():\n    return gc.get_objects()\n")
    source = HONEST.replace("import torch", "import torch\nimport helper_objs", 1)
    assert "import helper_objs" in source
    summary = run_trial(tmp_path, source, "Honest", capsys, "max_steps=5")
    audit = json.loads((Path(summary["record_dir"]) / "manifest.json").read_text())["submission_audit"]
    assert audit["kinds"] == ["garbage collector"]
    assert {f["file"] for f in audit["findings"]} == {str(tmp_path / "helper_objs.py")}


# ---------------------------------------------------------------------------- what the submission is handed
LEADS = ("func", "__self__", "__closure__", "__dict__", "__wrapped__", "args", "keywords", "__func__")


def reaches_workload(obj: object, depth: int = 3) -> bool:
    """Whether a Workload is reachable from ``obj`` through the attributes a probe would try first."""
    from harness.workload import Workload

    if isinstance(obj, Workload):
        return True
    if depth == 0:
        return False
    children: list = []
    for name in LEADS:
        try:
            value = getattr(obj, name)
        except (AttributeError, ValueError):
            continue
        children += list(value.values()) if isinstance(value, dict) else \
            [c.cell_contents for c in value] if name == "__closure__" and value else \
            list(value) if isinstance(value, tuple) else [value]
    return any(reaches_workload(child, depth - 1) for child in children)


def test_the_loss_function_leads_to_no_workload_object(smoke_cfg) -> None:
    from harness.config.registry import workload_class
    from harness.core.parts import model_and_info, training_stream
    from harness.core.runner import loaded

    cfg = smoke_cfg()
    workload = loaded(workload_class("fashion_mnist")(cfg.workload, torch.device("cpu"), None), cfg)
    model, _ = model_and_info(workload, 32, 0)
    batches, compute_loss = training_stream(workload, model, 32, 0)
    assert not reaches_workload(compute_loss)
    assert not any(reaches_workload(getattr(compute_loss, name)) for name in dir(compute_loss)
                   if not name.startswith("__"))
    with pytest.raises(TypeError):
        vars(compute_loss)
    with pytest.raises(TypeError):
        copy.copy(compute_loss)
    assert torch.isfinite(compute_loss(next(batches)))  # and it still is the workload's loss


# ---------------------------------------------------------------------------- isolation=process
PROCESS = "isolation=process"
# The probes below that report through files beside them run unconfined (a confined trainer cannot
# write there: tests/test_sandbox.py): each defence must hold on a kernel without Landlock too.
UNCONFINED = "sandbox=false"
PROBE_TARGET = 0.91234  # a value found nowhere else, so that a search for it finds only the target

GC_PROBE = HEADER + '''
import gc, json, math, warnings
from pathlib import Path

TARGET = ''' + repr(PROBE_TARGET) + '''


def search():
    """Everything the garbage collector reaches: workloads, the target, held-out tensors."""
    from harness.workload import Workload
    found = {"workloads": [], "target": 0, "held_out": 0, "objects": 0}
    warnings.simplefilter("ignore")  # isinstance() on some of torch's lazy modules warns
    for obj in gc.get_objects():
        found["objects"] += 1
        if isinstance(obj, Workload):
            found["workloads"].append({"target": obj.target, "splits": sorted(getattr(obj, "_splits", {}))})
        elif isinstance(obj, torch.Tensor) and obj.ndim >= 1 and obj.shape[0] in (200, 300):
            found["held_out"] += 1  # the smoke size's 200 validation and 300 test examples
        elif isinstance(obj, (dict, list, tuple)) and obj is not globals():
            values = obj.values() if isinstance(obj, dict) else obj
            found["target"] += sum(1 for v in values if (isinstance(v, float) and v == TARGET)
                                   or (isinstance(v, str) and repr(TARGET) in v))
    return found


class GcProbe(Base):
    """In __init__, look for the workload; if found, train on its validation split."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        found = search()
        Path(__file__).with_suffix(".found.json").write_text(json.dumps(found))
        for obj in gc.get_objects():
            splits = getattr(obj, "_splits", None) if type(obj).__name__ == "FashionMNIST" else None
            if splits:
                images, labels = splits["validation"]
                for _ in range(300):
                    loss = torch.nn.functional.cross_entropy(model(images), labels)
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
'''

THREAD_PROBE = HEADER + '''
import threading
from pathlib import Path


class ThreadProbe(Base):
    """Starts a thread that keeps working (here: writes the time every 2 ms) whenever it can run, until
    a file .stop beside it says to (in-process, nothing else ends it before the test process does)."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        path, stop = Path(__file__).with_suffix(".ticks"), Path(__file__).with_suffix(".stop")

        def work():
            with open(path, "a") as out:
                while not stop.exists():
                    out.write(f"{time.time()}\\n")
                    out.flush()
                    time.sleep(0.002)

        threading.Thread(target=work, daemon=True).start()
'''

DIES = HEADER + '''
import os, signal


class Dies(Base):
    """Kills its own process at the fifth step."""

    def update(self, batch, compute_loss):
        if getattr(self, "steps", 0) == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        self.steps = getattr(self, "steps", 0) + 1
        return super().update(batch, compute_loss)
'''

FAILS = HEADER + '''
class Fails(Base):
    """Fails where its class attribute says."""

    where = "update"

    def __init__(self, model, hparams, info):
        if self.where == "__init__":
            raise ValueError("broken in __init__")
        super().__init__(model, hparams, info)

    def update(self, batch, compute_loss):
        if self.where == "update":
            raise ValueError("broken in update")
        if self.where == "exit":
            raise SystemExit(0)
        if self.where == "nan":
            super().update(batch, compute_loss)
            return torch.tensor(float("nan"))
        if self.where == "contract":
            return 1.0
        return super().update(batch, compute_loss)

    def prepare_for_eval(self):
        if self.where == "prepare_for_eval":
            raise ValueError("broken in prepare_for_eval")
'''


def trial(tmp_path: Path, source: str, cls: str, capsys: pytest.CaptureFixture, *extra: str,
          code: int = 0) -> dict:
    """The summary of one trial of the probe ``cls`` in ``source`` (exit status ``code``)."""
    path = tmp_path / f"{cls.lower()}.py"
    path.write_text(source)
    # unconfined, the child that describes the probe may write too (its import reports through files)
    with mock.patch.dict(os.environ, {"OPTBENCH_SANDBOX": "false"} if UNCONFINED in extra else {}):
        status = main(["trial", f"submission={path}:{cls}", *SMOKE, f"results={tmp_path / 'results'}",
                       "threads=1", "rerun=true", *extra])
    out = capsys.readouterr().out.strip().splitlines()
    assert status == code, out
    return json.loads(out[-1])


def test_the_clock_attack_has_no_effect_in_a_trainer_process(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    honest = trial(tmp_path, HONEST, "Honest", capsys, "max_steps=100", PROCESS)
    attack = trial(tmp_path, CLOCK_ATTACK, "ClockAttack", capsys, "max_steps=100", PROCESS)
    assert honest["steps"] == attack["steps"] == 100
    assert attack["submission_time_s"] > 1.0 and attack["submission_time_s"] > 0.5 * honest["submission_time_s"]
    assert not attack["timing"]["clock_suspect"] and not honest["timing"]["clock_suspect"]


def test_gc_finds_the_workload_in_process_and_nothing_held_out_in_a_trainer_process(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    settings = [f"workload.sizes.smoke.target={PROBE_TARGET}", "workload.sizes.smoke.eval_every_steps=10",
                "max_steps=200", "submission.hparams.batch_size=50"]
    found_file = tmp_path / "gcprobe.found.json"
    # In-process the probe finds the workload, its target and its held-out data, and trains on
    # the validation split in __init__: the first evaluation reaches the target. Its work is charged.
    inprocess = trial(tmp_path, GC_PROBE, "GcProbe", capsys, *settings)
    found = json.loads(found_file.read_text())
    assert {"target": PROBE_TARGET, "splits": ["test", "validation"]} in found["workloads"]
    assert found["target"] > 0 and found["held_out"] > 0
    assert inprocess["status"] == "reached" and inprocess["steps_to_target"] == 10
    assert inprocess["timing"]["construction_s"] > 0.05
    # In a trainer process the same search finds no target, no held-out tensor, and only the
    # training-only workload (target NaN, no evaluation splits): the probe trains honestly.
    isolated = trial(tmp_path, GC_PROBE, "GcProbe", capsys, *settings, PROCESS, UNCONFINED)
    found = json.loads(found_file.read_text())
    assert found["objects"] > 10_000 and found["target"] == 0 and found["held_out"] == 0
    assert all(w["splits"] == [] and w["target"] != w["target"] for w in found["workloads"])  # NaN
    assert isolated["steps_to_target"] is None or isolated["steps_to_target"] > 10
    assert isolated["target"] == PROBE_TARGET  # the harness's records keep it


def test_the_trajectory_is_the_same_in_both_modes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = {}
    for mode in ("inprocess", "process"):
        summary = trial(tmp_path, HONEST.replace("time.sleep(0.01)", "pass"), "Honest", capsys,
                        "workload.sizes.smoke.eval_every_steps=10", "max_steps=60", f"isolation={mode}")
        rows = read_jsonl(Path(summary["record_dir"]) / "evals.jsonl")
        runs[mode] = {e["step"]: e["metrics"] for e in rows if e["event"] == "eval"}
        assert summary["status"] == "not_reached" and summary["memory"]["optimizer_state_bytes"] == 0
    assert list(runs["process"]) == [10, 20, 30, 40, 50, 60]
    for step, metrics in runs["inprocess"].items():
        assert runs["process"][step] == pytest.approx(metrics, rel=1e-6, abs=1e-7)


def slow_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Make every fashion_mnist evaluation take 0.3 s more; returns the list their (start, end)
    times are appended to, for counting what a submission's thread or process did inside them."""
    from workloads.fashion_mnist import FashionMNIST

    real_evaluate, windows = FashionMNIST.evaluate, []

    def slow_evaluate(self, model, split):
        started = time.time()
        time.sleep(0.3)
        result = real_evaluate(self, model, split)
        windows.append((started, time.time()))
        return result

    monkeypatch.setattr(FashionMNIST, "evaluate", slow_evaluate)
    return windows


def test_the_trainer_is_stopped_while_the_harness_evaluates(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread the submission starts cannot run (so cannot train) while the harness evaluates."""
    windows = slow_evaluations(monkeypatch)
    ticks_file = tmp_path / "threadprobe.ticks"

    def ticks_during_evaluation(mode: str) -> tuple[int, int]:
        windows.clear()
        ticks_file.unlink(missing_ok=True)
        try:
            trial(tmp_path, THREAD_PROBE, "ThreadProbe", capsys, "workload.sizes.smoke.eval_every_steps=10",
                  "max_steps=30", f"isolation={mode}", UNCONFINED)
        finally:
            (tmp_path / "threadprobe.stop").touch()  # in-process, its thread would write on in later tests
        time.sleep(0.05)
        ticks = [float(t) for t in ticks_file.read_text().split()]
        inside = sum(1 for t in ticks for start, end in windows if start + 0.001 < t < end - 0.001)
        return len(ticks), inside

    assert ticks_during_evaluation("inprocess")[1] > 50  # in-process the thread runs on: the probe sees it
    (tmp_path / "threadprobe.stop").unlink()
    total, inside = ticks_during_evaluation("process")
    assert len(windows) == 4 and total > 5 and inside == 0


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGSEGV"])
def test_a_trainer_that_dies_ends_the_trial_as_failed(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      signal_name: str) -> None:
    started = time.monotonic()
    summary = trial(tmp_path, DIES.replace("SIGKILL", signal_name), "Dies", capsys, "max_steps=50", PROCESS, code=3)
    assert time.monotonic() - started < 30
    assert summary["status"] == "failed" and summary["error_in"] == "submission" and summary["steps"] == 0
    assert f"killed by {signal_name}" in summary["error_message"]
    manifest = read_json(Path(summary["record_dir"]) / "manifest.json")
    assert manifest["status"] == "failed" and manifest["summary"]["error_in"] == "submission"


@pytest.mark.parametrize(("where", "status", "error_in"), [
    ("__init__", "failed", "submission.__init__"),
    ("update", "failed", "submission.update"),
    ("exit", "failed", "submission.update"),
    ("contract", "failed", "submission.update"),
    ("prepare_for_eval", "failed", "submission.prepare_for_eval"),
    ("nan", "diverged", None),
])
def test_failures_in_a_trainer_process_are_the_submission_s(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                            where: str, status: str, error_in: str | None) -> None:
    source = FAILS.replace('where = "update"', f'where = "{where}"')
    summary = trial(tmp_path, source, "Fails", capsys, "workload.sizes.smoke.eval_every_steps=10", "max_steps=30",
                    PROCESS, code=3 if status == "failed" else 0)
    assert summary["status"] == status and summary.get("error_in") == error_in
    if where in ("__init__", "update", "prepare_for_eval"):
        assert f"ValueError: broken in {where}" in summary["error_message"]


def test_a_workload_without_load_training_data_is_refused_clearly(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.workload import Workload
    from workloads.fashion_mnist import FashionMNIST

    monkeypatch.setattr(FashionMNIST, "load_training_data", Workload.load_training_data)
    path = tmp_path / "honest.py"
    path.write_text(HONEST)
    assert main(["trial", f"submission={path}:Honest", *SMOKE, f"results={tmp_path}", PROCESS]) == 2
    err = capsys.readouterr().err
    assert "load_training_data()" in err and "isolation=inprocess" in err
    assert not any(tmp_path.rglob("manifest.json"))  # refused before a record was started


@pytest.mark.parametrize("setting, says", [("nproc=2", "data-parallel"), ("compile=true", "compile=false")])
def test_what_a_trainer_process_does_not_run_yet_is_refused_before_any_record(
        tmp_path: Path, capsys: pytest.CaptureFixture, setting: str, says: str) -> None:
    assert main(["trial", *SMOKE, f"results={tmp_path}", PROCESS, setting]) == 2
    err = capsys.readouterr().err
    assert says in err and "isolation" in err and "Traceback" not in err
    assert not any(tmp_path.rglob("manifest.json"))


def test_an_interrupted_trial_resumes_exactly_in_a_trainer_process(
        smoke_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer sends its state at each checkpoint and is handed it back on resume; an
    interrupt leaves no trainer behind. The result is the uninterrupted in-process trial's."""
    import harness.core.isolation as isolation
    from harness.core.trial import run_trial as run_one
    from workloads.fashion_mnist import FashionMNIST

    settings = ["submission=adamw", "workload.sizes.smoke.target=2.0", "max_steps=60", "checkpoint_every_s=0",
                "workload.sizes.smoke.eval_every_steps=10", "threads=1"]
    reference = run_one(smoke_cfg(*settings, f"results={tmp_path / 'a'}"))
    trainers, real_init = [], isolation.ProcessTrainer.__init__

    def recorded_init(self, *args, **kwargs):
        trainers.append(self)
        real_init(self, *args, **kwargs)

    real_evaluate, calls = FashionMNIST.evaluate, []

    def interrupted_evaluate(self, model, split):
        calls.append(split)
        if len(calls) == 4:  # the 4th evaluation (step 40): a Ctrl-C
            raise KeyboardInterrupt
        return real_evaluate(self, model, split)

    monkeypatch.setattr(isolation.ProcessTrainer, "__init__", recorded_init)
    monkeypatch.setattr(FashionMNIST, "evaluate", interrupted_evaluate)
    cfg = smoke_cfg(*settings, f"results={tmp_path / 'b'}", PROCESS)
    with pytest.raises(KeyboardInterrupt):
        run_one(cfg)
    assert len(trainers) == 1 and trainers[0].process is None  # killed and reaped
    monkeypatch.setattr(FashionMNIST, "evaluate", real_evaluate)
    resumed = run_one(cfg)
    record_dir = Path(resumed["record_dir"])
    assert resumed["steps"] == reference["steps"] == 60 and resumed["status"] == "not_reached"
    rows = read_jsonl(record_dir / "evals.jsonl")
    assert [r["step"] for r in rows if r["event"] == "resume"] == [30]
    by_step = {r["step"]: r["metrics"] for r in rows if r["event"] == "eval"}
    reference_rows = read_jsonl(Path(reference["record_dir"]) / "evals.jsonl")
    for row in (r for r in reference_rows if r["event"] == "eval"):
        assert by_step[row["step"]] == pytest.approx(row["metrics"], rel=1e-6, abs=1e-7)


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (Linux /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(int(stat.parent.name))
        if fields is not None:
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_a_real_ctrl_c_stops_an_isolated_trial_and_its_trainer(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    args = ["trial", *SMOKE, "submission=adamw", "max_steps=1000000", "checkpoint_every_s=0",
            "workload.sizes.smoke.eval_every_steps=50", f"results={tmp_path}", PROCESS, "threads=1"]
    child = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=repo, text=True,
                             env={**os.environ, "PYTHONPATH": str(repo)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.rglob("checkpoint.pt")):
        time.sleep(0.2)
    below = descendants(child.pid)
    assert below  # the forkserver and the trainer
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert "interrupted" in stderr
    assert read_json(next(tmp_path.rglob("manifest.json")))["status"] == "running"  # resumable
    # the forkserver ends when its last client does; give it a generous deadline, not a fixed pause
    deadline = time.monotonic() + 15
    while (alive := living(below)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive == []


def living(pids: set[int]) -> list[int]:
    """The processes among `pids` that still run (a zombie has ended)."""
    return [pid for pid in pids if (fields := stat_fields(pid)) is not None and fields[0] != "Z"]


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state, parent, ...); None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tensors_in(value: object) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [t for item in value for t in tensors_in(item)] if isinstance(value, (list, tuple)) else []


@pytest.mark.parametrize("name", ["fashion_mnist", "gpt", "cifar10", "rosenbrock"])
def test_load_training_data_trains_the_same_and_holds_nothing_held_out(smoke_cfg, name: str) -> None:
    """Each built-in workload's training-only load gives the same batches, model and loss as
    load(), from a config without targets, and keeps no tensor of load()'s that training does not use."""
    from omegaconf import OmegaConf

    from harness.config.registry import workload_class
    from harness.core.trainer import redacted
    from harness.specs import WorkloadConfig

    cfg = smoke_cfg(f"workload={name}")
    full = workload_class(name)(cfg.workload, torch.device("cpu"), None)
    full.load()
    plain = redacted(OmegaConf.to_container(cfg.workload, resolve=True))
    assert all(size["target"] != size["target"] and not size["calibration"] for size in plain["sizes"].values())
    training = workload_class(name)(OmegaConf.merge(OmegaConf.structured(WorkloadConfig), plain),
                                    torch.device("cpu"), None)
    training.load_training_data()
    assert training.num_train_examples == full.num_train_examples and training.target != training.target
    for a, b in zip(full.train_batches(16, 3), training.train_batches(16, 3), strict=False):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        model = full.build_model(0)
        assert torch.equal(full.loss(model, a), training.loss(training.build_model(0), b))
        break
    for tensor in tensors_in(vars(training)):  # each its own buffer, not a view into held-out data
        assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    assert not hasattr(training, "_splits") and not hasattr(training, "_eval")


def test_an_isolated_construction_on_cuda_waits_for_the_submission_s_device_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, the clock's pause synchronises: what a submission's ``__init__`` queued on the GPU
    is charged to its construction. The trainer process replied "constructed" at once, and that work
    ran while the harness's clock was paused, or in the first charged run."""
    from types import SimpleNamespace

    from harness.core import trainer as trainer_process

    events = []
    monkeypatch.setattr(trainer_process, "build_submission", lambda *args: events.append("built") or object())
    monkeypatch.setattr(trainer_process, "training_stream", lambda *args: (iter(()), None))
    monkeypatch.setattr(trainer_process, "StepRunner", lambda *args: None)
    monkeypatch.setattr(trainer_process.torch.cuda, "synchronize", lambda device: events.append("synchronised"))
    monkeypatch.setattr(trainer_process, "send", lambda conn, message: events.append(message["event"]))
    session = SimpleNamespace(device=torch.device("cuda"), refused=None, submission_cls=None, model=None, info=None,
                              seed=0, workload=None, hparams=SimpleNamespace(batch_size=8), setup={"check_every": 25},
                              interrupts=None, conn=None)
    trainer_process.Session.construct(session, None)
    assert events == ["built", "synchronised", "constructed"]


# ------------------------------------------------------ what a trainer's submission starts or writes
SABOTEUR = HEADER + '''
import gc
from harness.workload import Workload


class Saboteur(Base):
    """In __init__, overwrites every tensor of every workload it can find: the training data."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        for obj in gc.get_objects():
            if isinstance(obj, Workload):
                for value in vars(obj).values():
                    for tensor in value if isinstance(value, (tuple, list)) else [value]:
                        if isinstance(tensor, torch.Tensor) and tensor.numel() > 100:
                            tensor.zero_()
'''


def eval_metrics(summary: dict) -> dict:
    rows = read_jsonl(Path(summary["record_dir"]) / "evals.jsonl")
    return {row["step"]: row["metrics"] for row in rows if row["event"] == "eval"}


def test_a_submission_cannot_rewrite_the_training_data_of_later_trials(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The harness keeps each workload's training data for its later trials; a trainer gets a copy.
    Before, it got the kept tensors themselves (shared memory) and could poison every later trial."""
    settings = ["workload.sizes.smoke.eval_every_steps=10", "max_steps=30", PROCESS, UNCONFINED]
    honest = HONEST.replace("time.sleep(0.01)", "pass")
    before = eval_metrics(trial(tmp_path, honest, "Honest", capsys, *settings))
    sabotaged = trial(tmp_path, SABOTEUR, "Saboteur", capsys, *settings)
    assert sabotaged["status"] == "not_reached"
    after = eval_metrics(trial(tmp_path, honest, "Honest", capsys, *settings))
    assert list(after) == [10, 20, 30] and after == before


IMPORT_PROBE = HEADER + '''
import gc, json
from pathlib import Path
from harness.workload import Workload

FOUND = sum(isinstance(obj, Workload) for obj in gc.get_objects())  # at import: the module's top level
Path(__file__).with_suffix(".found.json").write_text(json.dumps(FOUND))


class ImportProbe(Base):
    pass
'''


def test_the_submission_s_import_in_a_trainer_finds_no_workload(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The import runs before the workload reaches the trainer: its top level (not timed) cannot
    train the model on the workload's data. Before, the workload was there to find."""
    summary = trial(tmp_path, IMPORT_PROBE, "ImportProbe", capsys, "max_steps=10", PROCESS, UNCONFINED)
    assert summary["status"] == "not_reached" and summary["steps"] == 10
    assert json.loads((tmp_path / "importprobe.found.json").read_text()) == 0


@pytest.mark.parametrize(("start", "says"), [
    ("import threading\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()", "1 thread(s)"),
    ("import subprocess\nSLEEPER = subprocess.Popen(['sleep', '60'])", "1 process(es)"),
])
def test_what_the_submission_s_import_starts_in_a_trainer_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture, start: str, says: str) -> None:
    """A thread or process started at import would run while the harness sets up (not charged):
    the trial fails in submission.__init__, saying what to do, and the process is killed with the trainer."""
    before = set(Path("/proc").glob("[0-9]*"))
    source = HEADER + start + "\n\n\nclass Starts(Base):\n    pass\n"
    summary = trial(tmp_path, source, "Starts", capsys, "max_steps=10", PROCESS, code=3)
    assert summary["status"] == "failed" and summary["error_in"] == "submission.__init__" and summary["steps"] == 0
    assert says in summary["error_message"] and "__init__ (charged)" in summary["error_message"]
    sleepers = [p for p in set(Path("/proc").glob("[0-9]*")) - before
                if (fields := stat_fields(int(p.name))) is not None and fields[0] != "Z"
                and (p / "cmdline").read_bytes().startswith(b"sleep\x0060")]
    assert sleepers == []


ESCAPER = HEADER + '''
import os
from pathlib import Path


class Escaper(Base):
    """In __init__, starts a process in a session of its own whose parent exits (a double fork): it
    leaves the trainer's process group, and writes the time every 2 ms whenever it can run."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        path = Path(__file__).with_suffix(".ticks")
        first = os.fork()
        if first == 0:
            os.setsid()
            if os.fork() == 0:
                with open(path, "a") as out:
                    out.write(f"{os.getpid()}\\n")
                    while True:
                        out.write(f"{time.time()}\\n")
                        out.flush()
                        time.sleep(0.002)
            os._exit(0)
        os.waitpid(first, 0)
'''


def test_a_process_the_submission_moves_to_its_own_session_is_stopped_and_killed_too(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the harness stopped and killed the trainer's process group only: a process in a new
    session ran on through evaluations and outlived the trial (where it could rewrite the records)."""
    windows = slow_evaluations(monkeypatch)
    summary = trial(tmp_path, ESCAPER, "Escaper", capsys, "workload.sizes.smoke.eval_every_steps=10",
                    "max_steps=30", PROCESS, UNCONFINED)
    assert summary["status"] == "not_reached" and len(windows) == 4
    lines = (tmp_path / "escaper.ticks").read_text().split()
    pid, ticks = int(lines[0]), [float(t) for t in lines[1:]]
    inside = sum(1 for t in ticks for start, end in windows if start + 0.001 < t < end - 0.001)
    assert len(ticks) > 5 and inside == 0
    deadline = time.monotonic() + 10
    while living({pid}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert living({pid}) == []


HPARAMS_PROBE = '''
import dataclasses, gc, json, os
from pathlib import Path
import torch
from harness.submission import TorchOptimSubmission, TrainingHparams
from harness.workload import Workload


@dataclasses.dataclass(kw_only=True)
class ProbeHparams(TrainingHparams):
    lr: float = 0.01

    def __post_init__(self):  # the submission's code: where is a workload to train on for free?
        super().__post_init__()
        with open(Path(__file__).with_suffix(".found"), "a") as out:
            out.write(json.dumps([os.getpid(), sum(isinstance(o, Workload) for o in gc.get_objects())]) + "\\n")


class HparamsProbe(TorchOptimSubmission):
    Hparams = ProbeHparams

    def build_optimizer(self, params, hp):
        return torch.optim.SGD(params, lr=hp.lr)
'''


def test_the_submission_s_hparams_are_built_in_a_trainer_before_the_workload_is_there(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Hparams.__post_init__ ran in the trainer after the workload had arrived, off the clock: a red
    team trained a model there for 2000 steps and reached the target 4.4x faster than the reference."""
    import os

    summary = trial(tmp_path, HPARAMS_PROBE, "HparamsProbe", capsys, "max_steps=10", PROCESS, UNCONFINED)
    assert summary["status"] == "not_reached" and summary["steps"] == 10
    seen = [json.loads(line) for line in (tmp_path / "hparamsprobe.found").read_text().splitlines()]
    in_trainer = [found for pid, found in seen if pid != os.getpid()]
    assert in_trainer and in_trainer[-1] == 0, seen


TOUCHED = HEADER + '''

class Touched(Base):
    """Changes the weights in __init__ (as loading weights an earlier trial left in a file would)."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        with torch.no_grad():
            next(model.parameters()).add_(0.01)
'''


def test_a_model_changed_before_its_first_step_fails_the_trial_in_a_trainer(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A trainer's model that is not the seed's fresh one after construction was trained where the
    clock does not look (set-up, an import patching the harness, weights cached by an earlier trial:
    each of a red team's attacks, ranked first); an honest one passes the same check."""
    summary = trial(tmp_path, TOUCHED, "Touched", capsys, "max_steps=10", PROCESS, code=3)
    assert summary["status"] == "failed" and summary["error_in"] == "submission.__init__", summary
    assert "are not the seed's fresh model's" in summary["error_message"], summary
    assert trial(tmp_path, HONEST, "Honest", capsys, "max_steps=10", PROCESS)["steps"] == 10


FORKSERVER_ESCAPE = HEADER + """
import json, multiprocessing, os
import multiprocessing.forkserver as forkserver
from pathlib import Path


ADDRESS = None  # the forkserver's listening socket: the test writes it here (see the test)


class ForkserverEscape(Base):
    # has the harness's forkserver (its parent) fork a process for it: outside its own tree

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        forkserver._forkserver._forkserver_address = ADDRESS
        forkserver._forkserver.ensure_running = lambda: None
        child = multiprocessing.get_context("forkserver").Process(target=time.sleep, args=(120,), daemon=False)
        child.start()
        fields = open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()
        Path(__file__).with_suffix(".json").write_text(json.dumps({"pid": child.pid, "parent": int(fields[1]),
                                                                    "started": fields[19], "trainer": os.getpid()}))
"""


def test_a_process_the_forkserver_forked_for_the_submission_is_killed_with_the_trainer(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A process the trainer had the harness's forkserver fork was outside the trainer's tree: never
    frozen during evaluations, alive ~50 s after the trial (a red team's)."""
    # The trainer cannot read the forkserver's file descriptors (harness/untraceable.py), but the
    # address is among the listening sockets of /proc/net/unix (a probe may try each one and keep
    # the one whose child is its parent's): here the test hands it over.
    from multiprocessing import forkserver

    from harness.config.child_process import start_server

    start_server()
    address = forkserver._forkserver._forkserver_address
    assert address
    summary = trial(tmp_path, FORKSERVER_ESCAPE.replace("ADDRESS = None", f"ADDRESS = {address!r}"),
                    "ForkserverEscape", capsys, "max_steps=30", PROCESS, UNCONFINED)
    forked = json.loads((tmp_path / "forkserverescape.json").read_text())
    assert summary["steps"] == 30 and forked["parent"] != forked["trainer"], forked  # it escaped the tree

    def alive() -> list[str] | None:  # a process with its pid started at another time is another one
        fields = stat_fields(forked["pid"])
        return fields if fields is not None and fields[0] != "Z" and fields[19] == forked["started"] else None

    deadline = time.monotonic() + 10.0  # killed with the trial; on a loaded machine it may take a moment to die
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive() is None, alive()


SLOW_LOAD = HEADER + '''

class SlowLoad(Base):
    """Works in load_state_dict (here: waits), which a resumed trial ran off the clock."""

    def load_state_dict(self, state):
        time.sleep(1.0)
        super().load_state_dict(state)
'''


@pytest.mark.parametrize("isolation", ["inprocess", "process"])
def test_the_submission_s_load_state_dict_is_charged_when_a_trial_resumes(
        isolation: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A red team trained 100 epochs over batches kept in its state inside load_state_dict: 5.4 s of
    work at every resume, none of it charged."""
    from harness.core.records import TrialRecord

    finish = TrialRecord.finish
    monkeypatch.setattr(TrialRecord, "finish", lambda self, summary: (_ for _ in ()).throw(KeyboardInterrupt()))
    path = tmp_path / "slowload.py"
    path.write_text(SLOW_LOAD)
    args = ["trial", f"submission={path}:SlowLoad", *SMOKE, f"results={tmp_path / 'results'}", "threads=1",
            "max_steps=20", "checkpoint_every_s=0", "workload.sizes.smoke.eval_every_steps=10",
            f"isolation={isolation}"]
    assert main(args) == 130  # stopped at its end, checkpointed at step 20: resumable
    monkeypatch.setattr(TrialRecord, "finish", finish)
    before = max(row["submission_time_s"] for row in read_jsonl(next((tmp_path / "results").rglob("evals.jsonl")))
                 if row.get("event") == "eval")
    capsys.readouterr()
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert before < 0.5 and summary["steps"] == 20 and summary["submission_time_s"] >= 1.0, (before, summary)


MEMORY_PROBE = HEADER + '''
import json, os
from pathlib import Path


def _parent(pid):
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _reach(pid):
    """Whether this process may write the memory of ``pid`` (the way to rewrite its target, its clock)."""
    try:
        with open(f"/proc/{pid}/mem", "r+b", buffering=0):
            return "writable"
    except OSError as error:
        return type(error).__name__


ancestors, pid = {}, os.getpid()
while (pid := _parent(pid)) > 1:
    ancestors[pid] = _reach(pid)
Path(__file__).with_name(f"memoryprobe-{os.getpid()}.json").write_text(json.dumps(ancestors))


class MemoryProbe(Base):
    pass
'''


def test_the_submission_s_processes_cannot_reach_into_the_harness_s_memory(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A red team's trainer rewrote the harness's target to 0 through /proc/PID/mem: a trial at 12 %
    accuracy reached its target at the first evaluation. The probe's import runs in the child that
    describes its class and in the trainer; from neither may it write the harness or its forkserver."""
    from harness.config.child_process import server_pid

    yama = Path("/proc/sys/kernel/yama/ptrace_scope")
    if os.geteuid() != 0 and yama.is_file() and int(yama.read_text()) >= 1:
        pytest.skip("Yama's ptrace_scope refuses a non-root process its parents' memory with or without the "
                    "harness's guard: nothing to tell apart here")
    summary = trial(tmp_path, MEMORY_PROBE, "MemoryProbe", capsys, "max_steps=10", PROCESS, UNCONFINED)
    assert summary["target"] == 2.0 and summary["status"] == "not_reached"
    reports = [json.loads(path.read_text()) for path in tmp_path.glob("memoryprobe-*.json")]
    assert len(reports) >= 2, reports  # the describing child and the trainer
    for ancestors in reports:
        assert str(os.getpid()) in ancestors and str(server_pid()) in ancestors, (ancestors, os.getpid())
        assert ancestors[str(os.getpid())] == ancestors[str(server_pid())] == "PermissionError", ancestors


def test_whatever_the_forkserver_forks_has_given_up_tracing(tmp_path: Path) -> None:
    """A trainer can have the harness's forkserver fork a process for it (see the escape test below): as
    root, such a child kept CAP_SYS_PTRACE, with which no process is undumpable, and opened the
    harness's /proc/PID/mem for writing. The forkserver gives it up for itself and all it forks."""
    import shutil

    from harness.config.child_process import bare_start, context

    def ptrace_sets(status: str) -> dict[str, bool]:
        return {line.split(":")[0]: bool(int(line.split()[1], 16) >> 19 & 1)  # CAP_SYS_PTRACE is bit 19
                for line in status.splitlines() if line.startswith(("CapPrm", "CapEff", "CapBnd"))}

    if not ptrace_sets(Path("/proc/self/status").read_text())["CapEff"]:
        pytest.skip("this process has no CAP_SYS_PTRACE (not root): nothing a child could keep")
    out = tmp_path / "status"
    child = context().Process(target=shutil.copyfile, args=("/proc/self/status", str(out)))
    with bare_start("probe"):
        child.start()
    child.join(30)
    assert ptrace_sets(out.read_text()) == {"CapPrm": False, "CapEff": False, "CapBnd": False}


RESUMER_PROBE = THREAD_PROBE.replace("class ThreadProbe(Base):", "class ThreadProbeBase(Base):") + '''
import os, signal


class ResumerProbe(ThreadProbeBase):
    """Its thread keeps writing the time; two processes of its own, each in a session of its own (so
    the SIGSTOP of the trainer's group misses them), resume the group and each other whenever they
    run: the harness stopped each once and then evaluated, after a 5 s wait, with the group running."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        group, (read, write) = os.getpgid(0), os.pipe()
        first = os.fork()
        if first == 0:
            self.resume(group, int(os.read(read, 16)))
        second = os.fork()
        if second == 0:
            self.resume(group, first)
        os.write(write, str(second).encode())

    @staticmethod
    def resume(group, other):
        os.setsid()
        while True:
            try:
                os.killpg(group, signal.SIGCONT)
                os.kill(other, signal.SIGCONT)
            except ProcessLookupError:
                os._exit(0)
            time.sleep(0.0002)
'''


def test_processes_that_resume_the_trainer_do_not_run_it_through_evaluations(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A red team's helper process, outside the trainer's group, resumed the group right after the
    harness stopped it; the harness waited 5 s for it to stop and evaluated anyway: its thread
    trained through every evaluation (an honest run never passed 22.5 % accuracy in 400 steps, this
    one reached 89 % in 120). Now a process seen running is stopped again until all stay stopped,
    or all are killed and the trial fails."""
    windows = slow_evaluations(monkeypatch)
    summary = trial(tmp_path, RESUMER_PROBE, "ResumerProbe", capsys, "workload.sizes.smoke.eval_every_steps=10",
                    "max_steps=30", PROCESS, UNCONFINED)
    ticks = [float(t) for t in (tmp_path / "resumerprobe.ticks").read_text().split()]
    inside = [t for t in ticks for start, end in windows if start + 0.001 < t < end - 0.001]
    assert windows and len(ticks) > 5 and inside == [], (summary, len(windows), len(inside))
    assert summary["status"] == "not_reached" or summary["error_in"] == "submission", summary


OUTSIDE_RESUMER = THREAD_PROBE.replace("class ThreadProbe(Base):", "class ThreadProbeBase(Base):") + '''
import ctypes, os, signal


def _state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


class OutsideResumer(ThreadProbeBase):
    """A helper outside the trainer's tree (the trainer's subreaper flag cleared for a double fork:
    the harness cannot find it) resumes the trainer once it has been stopped 20 ms, mid-evaluation."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        trainer = os.getpid()
        ctypes.CDLL(None).prctl(36, 0, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER off
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                Path(__file__).with_suffix(".pid").write_text(str(os.getpid()))
                since = None
                while (state := _state(trainer)) is not None and state != "Z":
                    since = (since or time.monotonic()) if state == "T" else None
                    if since and time.monotonic() - since > 0.02:
                        os.killpg(trainer, signal.SIGCONT)
                        since = None
                    time.sleep(0.001)
                os._exit(0)
            os._exit(0)
        os.wait()
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
'''


@pytest.mark.parametrize("checkpoints", ["checkpoint_every_s=30", "checkpoint_every_s=0"])
def test_a_trainer_resumed_from_outside_while_the_harness_evaluates_fails_the_trial(
        checkpoints: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process the harness cannot find (outside the trainer's tree) resumed the stopped trainer
    during each evaluation, which then ran through it; the trial ended as if nothing happened. The
    harness cannot stop what it cannot find, but nothing else resumes a stopped trainer: finding one
    running when it resumes them fails the trial, as the submission's also where a checkpoint's hand-over
    finds it (that failed as the harness's, which a rerun retries: a way to fish for a luckier run)."""
    slow_evaluations(monkeypatch)
    try:
        summary = trial(tmp_path, OUTSIDE_RESUMER, "OutsideResumer", capsys, "workload.sizes.smoke.eval_every_steps=10",
                        "max_steps=30", PROCESS, UNCONFINED, checkpoints, code=3)
    finally:
        helper = tmp_path / "outsideresumer.pid"
        if helper.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(helper.read_text()), signal.SIGKILL)
    assert summary["status"] == "failed" and summary["error_in"] == "submission", summary
    assert "ran again before the harness resumed them" in summary["error_message"]


HOOK_PROBE = HEADER + '''
from pathlib import Path


class HookProbe(Base):
    """Registers a forward pre-hook under a name built at run time (the source audit cannot read it)
    and a hook for every module; both note whether the model ran in training or in eval mode."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        path = Path(__file__).with_suffix(".modes")

        def note(module, args):
            with open(path, "a") as out:
                out.write("train\\n" if module.training else "eval\\n")

        getattr(model, "register_forward_" + "pre_hook")(note)
        getattr(torch.nn.modules.module, "register_module_forward_" + "pre_hook")(
            lambda module, args: note(module, args) if module is model else None)
'''


def test_the_submission_s_forward_hooks_do_not_run_in_evaluations(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """In-process a submission's forward hook ran inside every evaluation (not charged): a red team's
    trained there, 22.5 % -> 64.5 % accuracy in the same 400 charged steps, unflagged."""
    import torch.nn.modules.module as torch_module

    try:
        trial(tmp_path, HOOK_PROBE, "HookProbe", capsys, "workload.sizes.smoke.eval_every_steps=10", "max_steps=30")
    finally:
        torch_module._global_forward_pre_hooks.clear()  # the probe's hook for every module
    modes = (tmp_path / "hookprobe.modes").read_text().split()
    assert modes.count("eval") == 0 and modes.count("train") == 2 * 30, modes  # both hooks, every step


def test_evaluations_keep_the_hooks_the_workload_built_its_model_with() -> None:
    """Setting every forward hook aside in evaluations also set aside spectral_norm's, which recomputes
    the weight before each forward: a model trained since evaluated with its stale weight."""
    import torch

    from harness.core.evaluation import build_model, without_forward_hooks

    class SpectralWorkload:
        def build_model(self, seed: int) -> torch.nn.Module:
            torch.manual_seed(seed)
            return torch.nn.Sequential(torch.nn.utils.spectral_norm(torch.nn.Linear(3, 3)))

    model = build_model(SpectralWorkload(), 0)
    seen = []
    model[0].register_forward_pre_hook(lambda module, args: seen.append("submission"))
    with torch.no_grad():
        model[0].weight_orig.mul_(-2.0).add_(1.0)  # what training does to it
    x = torch.ones(1, 3)
    model.eval()
    twin = copy.deepcopy(model)
    with torch.no_grad():
        with without_forward_hooks(model):
            evaluated = model(x)
        assert seen == []  # the submission's hook did not run
        expected = twin(x)  # with every hook: spectral_norm's recomputes the weight from the trained one
    assert torch.equal(evaluated, expected)  # its hook ran: not the weight computed before training
    seen.clear()
    with torch.no_grad():
        model(x)
    assert seen == ["submission"]  # put back after the evaluation


def test_a_thread_in_uninterruptible_sleep_counts_as_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread in D (a read from a slow disk) after SIGSTOP cannot run the submission's code: it stops at
    its return from the kernel. Counted as running, an honest trial whose read took over 5 s was killed
    and failed as the submission's."""
    from harness.core import isolation

    for states, stopped in ((["T", "D", "t"], True), (["T", "Z", "X"], True), (["T", "S"], False),
                            (["R"], False), ([], True)):
        monkeypatch.setattr(isolation, "_thread_states", lambda pid, found=states: found)
        assert isolation._stopped(1) is stopped, states


def test_a_process_that_exits_while_its_children_are_listed_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel answers ESRCH to a listing of /proc/PID/task while PID exits: a CI run saw a trial fail
    as the harness's (ProcessLookupError: No such process: '/proc/22619/task') while it looked for the
    processes below a trainer it had stopped for an evaluation."""
    import harness.core.isolation as isolation

    gone = f"/proc/{os.getpid()}/task"
    real_glob = Path.glob

    def glob(self: Path, pattern: str):
        if str(self) == gone:
            raise ProcessLookupError(3, "No such process", gone)
        return real_glob(self, pattern)

    monkeypatch.setattr(Path, "glob", glob)
    assert isolation.children_of(os.getpid()) == []
    assert isolation.descendants(os.getpid()) == []
