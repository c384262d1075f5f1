"""A user's submission module is never imported in the harness's process to plan, identify or record
its trials (harness/config/described.py): its top-level code could replace the clock or the
evaluation for every trial of that process. A child imports it and describes it; the module runs
for real only where the submission runs."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.config.compose import compose_config
from harness.config.described import described_submission
from harness.config.plugins import Source, load_class, module_file, resolve
from harness.core.records import read_json
from harness.errors import UserError
from harness.submission import Submission

# At import: says which process imported it, and makes the clock run ten times slower.
CHEAT = '''
import os, time
from pathlib import Path
import dataclasses

from harness.submission import TorchOptimSubmission, TrainingHparams, require

with open(Path(__file__).with_suffix(".pids"), "a") as pids:
    pids.write(f"{os.getpid()}\\n")
_real, _start = time.perf_counter, time.perf_counter()
time.perf_counter = lambda: _start + (_real() - _start) * 0.1

import torch


@dataclasses.dataclass(kw_only=True)
class SlowClockHparams(TrainingHparams):
    lr: float
    momentum: float = 0.0
    betas: list = dataclasses.field(default_factory=lambda: [0.9, 0.99])

    def __post_init__(self):
        super().__post_init__()
        require(self.lr < 1.0, "lr", self.lr, "must be below 1 (this submission's own rule)")
        if self.momentum == 0.5:
            raise ValueError("momentum 0.5 is unlucky")


class SlowClock(TorchOptimSubmission):
    """SGD, whose module slows the clock of whatever process imports it."""
    Hparams = SlowClockHparams
    revision = 3
    special_component = None
    search_space = {"lr": {"min": 0.001, "max": 0.5, "scaling": "log"}}

    def build_optimizer(self, params, hp):
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum)


SUBMISSION = SlowClock
'''

ROSENBROCK = ["workload=rosenbrock", "progress=false", "device=cpu", "threads=1", "max_steps=40"]


@pytest.fixture
def cheat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cheating submission's file; ``time.perf_counter`` is put back afterwards, whatever happened.
    Its module writes who imported it beside itself, which a describing child confined for writing
    cannot (harness/scratch.py): those children are not confined here."""
    monkeypatch.setenv("OPTBENCH_SANDBOX", "false")
    path = tmp_path / "user" / "slow_clock.py"
    path.parent.mkdir()
    path.write_text(CHEAT)
    real = time.perf_counter
    yield path
    time.perf_counter = real
    for name in [n for n in sys.modules if n.startswith("optbench_external.slow_clock")]:
        del sys.modules[name]


def count_children(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the number of values each child that describes a submission is asked to check."""
    import harness.config.described as described

    asked: list[int] = []
    real_ask = described._ask

    def counted(source, checks, submission, config):
        asked.append(len(checks))
        return real_ask(source, checks, submission, config)

    monkeypatch.setattr(described, "_ask", counted)
    return asked


def importers(path: Path) -> list[int]:
    pids = path.with_suffix(".pids")
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


def test_an_isolated_trial_and_a_sweep_never_import_the_submission_in_the_harness(
        cheat: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    real = time.perf_counter
    results = tmp_path / "results"
    unconfined = "sandbox=false"  # the module writes who imported it beside itself: a confined trainer cannot
    assert main(["trial", f"submission={cheat}", *ROSENBROCK, "isolation=process", unconfined,
                 "submission.hparams.lr=0.001", f"results={results}"]) == 0, capsys.readouterr().err
    assert main(["tune", f"submission={cheat}", *ROSENBROCK, "isolation=process", unconfined, "studies=1", "trials=2",
                 "launcher=inline", f"results={results}"]) == 0, capsys.readouterr().err
    assert time.perf_counter is real  # before: the module's top level ran here, and slowed our clock
    assert os.getpid() not in importers(cheat)
    assert len(importers(cheat)) >= 4  # children that described it, trainers that ran it
    assert not [name for name in sys.modules if name.startswith("optbench_external.slow_clock")]


def test_the_stand_in_says_what_the_class_says(cheat: Path) -> None:
    stand_in = described_submission("slow_clock", f"{cheat}:SUBMISSION")
    real = load_class(Source(str(cheat), "SUBMISSION"), Submission)
    try:
        assert stand_in is not real and stand_in.__name__ == "SlowClock"
        assert (stand_in.revision, stand_in.special_component, stand_in.search_space) == (3, None, real.search_space)
        assert module_file(stand_in) == module_file(real) == cheat.resolve()
        assert stand_in.__module__ == real.__module__
        def kinds(hparams: type) -> list[tuple[str, str]]:
            return [(f.name, getattr(f.type, "__name__", f.type)) for f in dataclasses.fields(hparams)]

        assert kinds(stand_in.Hparams) == kinds(real.Hparams)
        values = {"lr": 0.1, "momentum": 0.9}
        assert stand_in.Hparams.from_mapping(values).as_dict() == real.Hparams.from_mapping(values).as_dict()
        # the submission's own rules, checked by its own class in the child
        with pytest.raises(UserError, match=r"must be below 1 \(this submission's own rule"):
            stand_in.Hparams.from_mapping({"lr": 2.0})
        with pytest.raises(UserError, match=r"ValueError: momentum 0\.5 is unlucky"):
            stand_in.Hparams.from_mapping({"lr": 0.1, "momentum": 0.5})
        with pytest.raises(UserError, match=r"Unknown hyperparameter\(s\) lrr"):
            stand_in.Hparams.from_mapping({"lr": 0.1, "lrr": 1})
    finally:
        time.perf_counter = time.perf_counter  # the real import above patched it: the fixture restores it


def test_an_edit_of_the_file_is_described_again(cheat: Path) -> None:
    assert described_submission("slow_clock", str(cheat)).revision == 3
    cheat.write_text(CHEAT.replace("revision = 3", "revision = 4  # edited"))
    assert described_submission("slow_clock", str(cheat)).revision == 4


@pytest.mark.parametrize(("body", "says"), [
    ("raise RuntimeError('no GPU driver found')", "RuntimeError: no GPU driver found"),
    ("import os\nos._exit(3)", "ended its process (exit code 3)"),
    ("from harness.submission import Submission\nclass X(Submission):\n    Hparams = dict\n"
     "    def update(self, batch, compute_loss): pass\nSUBMISSION = X", "not a dataclass subclassing"),
])
def test_a_module_that_cannot_be_described_is_named(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                    body: str, says: str) -> None:
    path = tmp_path / "broken.py"
    path.write_text(textwrap.dedent(body))
    assert main(["trial", f"submission={path}", *ROSENBROCK]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_a_module_is_found_without_running_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "mine"
    package.mkdir()
    mark = tmp_path / "mark"
    (package / "__init__.py").write_text(f"import os\nopen({str(mark)!r}, 'a').write(f'{{os.getpid()}}\\n')\n")
    (package / "opt.py").write_text(CHEAT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("OPTBENCH_SANDBOX", "false")  # the package writes its mark: a confined child could not
    real = time.perf_counter
    try:
        source = resolve("mine.opt")
        assert source.root == str(tmp_path)
        cfg = compose_config("trial", ["submission=mine.opt", *ROSENBROCK])
        assert cfg.submission.name == "opt" and "lr" in cfg.submission.search_space  # the class's, described
        assert str(os.getpid()) not in mark.read_text().split()  # before: find_spec("mine.opt") ran
        assert mark.read_text().split()  # mine/__init__.py here; now only the child that described it does
        assert time.perf_counter is real
    finally:
        time.perf_counter = real
        for name in [n for n in sys.modules if n == "mine" or n.startswith("mine.")]:
            del sys.modules[name]


NORMALISING = '''
import dataclasses

import torch

from harness.submission import TorchOptimSubmission, TrainingHparams


@dataclasses.dataclass(kw_only=True)
class NormalisingHparams(TrainingHparams):
    lr: float
    wd: float | None = None

    def __post_init__(self):  # no super(): the base class's rules are this class's to keep or not
        self.wd = float(self.wd or 0)

    @property
    def scaled_wd(self):
        return self.lr * self.wd


class Normalising(TorchOptimSubmission):
    Hparams = NormalisingHparams
    search_space = {"lr": {"min": 0.001, "max": 0.01, "scaling": "log"}}

    def build_optimizer(self, params, hp):
        assert isinstance(hp, NormalisingHparams), type(hp)  # its own class, with its property
        return torch.optim.SGD(params, lr=hp.lr, weight_decay=hp.scaled_wd)


SUBMISSION = Normalising
'''


@pytest.mark.parametrize("isolation", ["inprocess", "process"])
def test_the_record_holds_what_the_submission_s_own_hparams_made(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                 isolation: str) -> None:
    """A review found the stand-in's values were its own (wd: 1, where the class makes 1.0: another
    identity hash than the class gives), its base rules applied where the class skips them, and an
    in-process trial handed the stand-in's Hparams (without the class's property) to the submission."""
    path = tmp_path / "normalising.py"
    path.write_text(NORMALISING)
    assert main(["trial", f"submission={path}", *ROSENBROCK, f"isolation={isolation}", "submission.hparams.lr=0.001",
                 "submission.hparams.wd=1", "submission.hparams.warmup_fraction=1.0",
                 f"results={tmp_path / 'results'}"]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] in ("reached", "not_reached"), summary
    manifest = read_json(Path(summary["record_dir"]) / "manifest.json")
    assert manifest["hparams"]["wd"] == 1.0 and isinstance(manifest["hparams"]["wd"], float)
    assert manifest["identity"]["hparams"]["warmup_fraction"] == 1.0


def test_an_inprocess_trial_runs_the_real_class(cheat: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["trial", f"submission={cheat}", *ROSENBROCK, "isolation=inprocess", "submission.hparams.lr=0.001",
                 f"results={tmp_path / 'results'}"]) == 0, capsys.readouterr().err
    assert os.getpid() in importers(cheat)  # in-process by choice: it runs here (docs/decisions.md)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    manifest = read_json(Path(summary["record_dir"]) / "manifest.json")
    assert manifest["submission_revision"] == 3 and manifest["submission_module"] == str(cheat.resolve())


def test_a_sweep_checks_all_its_trials_with_one_child_and_they_are_not_asked_again(
        cheat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A review found the sweep's one check was keyed otherwise than each trial's (no config), so
    every trial started another child; and what a child makes of the values is what is planned."""
    from omegaconf import OmegaConf

    from harness.config.search_space import corner_points
    from harness.core.runner import _hparams
    from harness.orchestration.sweep import SweepSettings, plan_sweep

    asked = count_children(monkeypatch)
    sweep = plan_sweep(SweepSettings(studies=1, trials=5), [f"submission={cheat}", *ROSENBROCK,
                                                           f"results={tmp_path / 'results'}"])
    assert len(sweep["trials"]) == 5
    corners = len(corner_points(sweep["search_space"]))  # checked with them: a space's ends are all valid
    assert asked[-1] == 5 + corners and sum(1 for n in asked if n) == 1  # one child checked every value
    asked.clear()
    for entry in sweep["trials"]:  # each inline trial's own check (run_trial's) finds that answer
        _hparams(OmegaConf.create(entry["config"]))
    assert asked == []


def test_a_process_handed_a_description_asks_no_child_unless_the_file_changed(
        cheat: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranks of a data-parallel trial are handed the launching process's description (with the
    values it checked): rank 0 planned and recorded the trial with a child of its own before, ~5 s
    of CPU for the forkserver's imports. A file edited since is described again."""
    from omegaconf import OmegaConf

    import harness.config.described as described
    from harness.core.runner import _hparams

    trial = OmegaConf.create({"submission": {"name": "slow_clock", "source": str(cheat),
                                             "hparams": {"lr": 0.1, "momentum": 0.9}}})
    first = described_submission("slow_clock", str(cheat))
    # other trials' values this process checked (a sweep's): not handed down
    described.check_hparams(first.Hparams, [{"lr": lr / 100, "momentum": 0.0} for lr in range(1, 50)],
                            "slow_clock")
    checked = _hparams(trial).as_dict()  # as the launching process checks the trial's values
    handed = described.handed_down(trial)
    assert len(handed[described.HANDED_DOWN]) < 2000  # this trial's values alone, not every value checked here
    monkeypatch.setattr(described._Description, "_known", {})  # a new process: it knows nothing yet
    monkeypatch.setenv(*next(iter(handed.items())))
    asked = count_children(monkeypatch)
    again = described_submission("slow_clock", str(cheat))
    assert again is not first and (again.__name__, again.revision) == ("SlowClock", 3)
    assert _hparams(trial).as_dict() == checked  # as rank 0 checks them
    assert asked == []  # neither the facts nor the values were asked of a child
    cheat.write_text(CHEAT.replace("revision = 3", "revision = 4  # edited"))
    assert described_submission("slow_clock", str(cheat)).revision == 4
    assert asked == [0]
