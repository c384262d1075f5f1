"""What a submission can do to the benchmark from inside the harness's process, and what the
harness does about it (docs/writing-a-submission.md, what a submission may not touch). Each probe
is a submission file of the kind a participant could hand in, run through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.core.records import read_json
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
])
def test_the_static_audit_names_each_escape_hatch(source: str, kinds: set[str]) -> None:
    assert {f["kind"] for f in audit_source(source)} == kinds
