"""A submission from outside the repository: a user's package in a temporary folder, benchmarked by
every command and launcher without a file of this repository changed (harness/config/plugins.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.cli import main
from harness.config import code_files
from harness.core.records import read_json
from harness.errors import OptbenchWarning

SMOKE = ["workload=fashion_mnist", "workload.size=smoke", "progress=false", "device=cpu"]

OPTIMIZER = '''
"""A user's optimizer: SGD with Nesterov momentum and its own step counter."""
import dataclasses

import torch

from harness.submission import TorchOptimSubmission, TrainingHparams, require


@dataclasses.dataclass(kw_only=True)
class NesterovHparams(TrainingHparams):
    lr: float
    momentum: float

    def __post_init__(self):
        super().__post_init__()
        require(self.lr > 0, "lr", self.lr, "must be positive")


class Nesterov(TorchOptimSubmission):
    Hparams = NesterovHparams

    def build_optimizer(self, params, hp):
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, nesterov=True)
'''

CONFIG = """
defaults:
  - /schedule@hparams: cosine
  - _self_
name: nesterov_mine
hparams: {lr: 0.05, momentum: 0.9, batch_size: 64}
search_space:
  lr: {min: 0.01, max: 0.2, scaling: log}
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``mypkg/opt.py`` + ``mypkg/opt.yaml`` in a folder of their own, which is the current folder
    (where a user runs optbench from); sys.path and sys.modules are restored afterwards."""
    root = tmp_path / "userland"
    (root / "mypkg").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "opt.py").write_text(OPTIMIZER)
    (root / "mypkg" / "opt.yaml").write_text(CONFIG)
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [n for n in sys.modules if n == "mypkg" or n.startswith(("mypkg.", "optbench_external"))]:
        monkeypatch.delitem(sys.modules, name)
    yield root
    for name in [n for n in sys.modules if n == "mypkg" or n.startswith(("mypkg.", "optbench_external"))]:
        del sys.modules[name]


def install(package: Path, tmp_path: Path, entry_points: str) -> None:
    """``package`` as if installed with these entry points: its metadata (a dist-info folder of
    ``entry_points.txt``) and its code on the path (sys.path is restored by the fixture)."""
    info = tmp_path / "site" / "mypkg_opt-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg-opt\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    (info / "top_level.txt").write_text("mypkg\n")  # what an installed distribution says it holds
    sys.path[:0] = [str(info.parent), str(package)]


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict | None, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        summary = None
    return code, summary, captured.err


def test_a_module_of_the_users_package_runs_as_a_trial_and_is_recorded(package: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    code, summary, err = run(capsys, "trial", "submission=mypkg.opt:Nesterov", *SMOKE, f"results={results}")
    assert code == 0, err
    assert summary["status"] in ("reached", "not_reached")
    record = Path(summary["record_dir"])
    assert record.parent.name == "nesterov_mine"  # the name its YAML gives
    manifest = read_json(record / "manifest.json")
    assert manifest["config"]["submission"]["source"] == f"mypkg.opt:Nesterov@{package}"
    assert manifest["config"]["submission"]["config_from"] == str(package / "mypkg" / "opt.yaml")
    assert manifest["submission_module"] == str(package / "mypkg" / "opt.py")
    assert manifest["hparams"]["lr"] == 0.05 and manifest["hparams"]["batch_size"] == 64
    assert manifest["hparams"]["decay"] == "cosine"  # from the shared schedule its YAML starts from
    assert len(manifest["submission_source_sha256"]) == 64

    # a hyperparameter its YAML does not list is set without Hydra's "+"; a wrong one is named
    code, summary, _ = run(capsys, "trial", "submission=mypkg.opt:Nesterov", *SMOKE, f"results={results}",
                           "submission.hparams.final_lr_fraction=0.1")
    assert code == 0
    assert read_json(Path(summary["record_dir"]) / "manifest.json")["hparams"]["final_lr_fraction"] == 0.1
    code, _, err = run(capsys, "trial", "submission=mypkg.opt:Nesterov", *SMOKE, f"results={results}",
                       "submission.hparams.momentun=0.5")
    assert code == 2 and "Unknown hyperparameter(s) momentun" in err
    assert str(package / "mypkg" / "opt.yaml") in err  # the file its values come from, for the user to fix


def test_a_py_file_with_its_yaml_beside_it_runs_from_anywhere(package: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, summary, err = run(capsys, "trial", f"submission={package / 'mypkg' / 'opt.py'}:Nesterov", *SMOKE,
                             f"results={tmp_path / 'results'}")
    assert code == 0, err
    assert Path(summary["record_dir"]).parent.name == "nesterov_mine"


@pytest.mark.timeout(300)  # several processes: 20-55 s here on 2 busy cores
def test_tune_inline_and_in_local_processes_and_a_suite_with_a_builtin(package: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    for launcher in ("inline", "local"):
        code, summary, err = run(capsys, "tune", "submission=mypkg.opt:Nesterov", *SMOKE, "max_steps=30",
                                 f"results={results / launcher}", "studies=1", "trials=2", f"launcher={launcher}",
                                 "poll_s=0.5", "hydra.launcher.timeout_min=10" if launcher == "local" else "prune=true")
        assert code == 0, err
        assert summary["launched"] == 2 and summary["job_errors"] == 0
        sweep = read_json(Path(summary["sweep"]) / "sweep.json")
        for entry in sweep["trials"]:  # in the local launcher's processes too, the user's module was imported
            manifest = read_json(Path(summary["sweep"]) / entry["record_dir"] / "manifest.json")
            assert manifest["status"] in ("reached", "not_reached", "pruned")
            assert manifest["submission_module"] == str(package / "mypkg" / "opt.py")
    code, summary, err = run(capsys, "suite", "suite=smoke", "submissions=[adamw,mypkg.opt:Nesterov]",
                             "workloads=[fashion_mnist]", "studies=1", "trials=2", "max_steps=30",
                             f"results={results / 'suite'}", "progress=false")
    assert code == 0, err
    table = pd.read_csv(Path(summary["csv"]))
    assert set(table["submission"]) == {"adamw", "nesterov_mine"}
    code, _, err = run(capsys, "score", f"results={results / 'suite'}", f"out={tmp_path / 'board'}", "bootstrap=0")
    assert code == 0, err
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    assert set(board["submission"]) == {"adamw", "nesterov_mine"}


def test_a_suite_given_one_submission_under_two_names_tunes_it_once(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its entry point's name and its module:Class planned one sweep twice: every trial launched twice."""
    install(package, tmp_path, "[optbench.submissions]\nnesterov_mine = mypkg.opt:Nesterov\n")
    monkeypatch.chdir(tmp_path)  # importable as installed, not from the current folder
    code, summary, err = run(capsys, "suite", "suite=smoke", "submissions=[nesterov_mine,mypkg.opt:Nesterov]",
                             "workloads=[fashion_mnist]", "studies=1", "trials=2", "max_steps=10",
                             f"results={tmp_path / 'results'}", "progress=false")
    assert code == 0, err
    assert summary["trials"] == 2 and summary["launched"] == 2, summary
    assert "1 workload(s) x 1 submission(s)" in err and "names nesterov_mine twice" in err, err


def test_a_quoted_file_path_with_a_space_runs(package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """submission='...' kept its quotes: "no such file /cwd/'/path/...'" (Hydra quoting is how a space is given)."""
    folder = tmp_path / "my opts"
    folder.mkdir()
    (folder / "nest.py").write_text(OPTIMIZER + "\nSUBMISSION = Nesterov\n")
    (folder / "nest.yaml").write_text(CONFIG)
    for quote in ("'", '"'):
        code, summary, err = run(capsys, "trial", f"submission={quote}{folder / 'nest.py'}{quote}", *SMOKE,
                                 f"results={tmp_path / 'results'}", "max_steps=5")
        assert code == 0 and summary["status"] in ("reached", "not_reached"), err


def test_an_installed_package_s_entry_point_is_listed_and_runs(package: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    install(package, tmp_path, "[optbench.submissions]\nnesterov_mine = mypkg.opt:Nesterov\n")
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "nesterov_mine" in listing and "(installed: mypkg.opt:Nesterov)" in listing
    code, summary, err = run(capsys, "trial", "submission=nesterov_mine", *SMOKE, f"results={tmp_path / 'results'}")
    assert code == 0, err
    assert Path(summary["record_dir"]).parent.name == "nesterov_mine"


def test_an_entry_point_whose_submission_has_another_name_says_so(package: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """`submission=nesty` ran and was recorded as nesterov_mine (its YAML's name) without a word."""
    install(package, tmp_path, "[optbench.submissions]\nnesty = mypkg.opt:Nesterov\n")
    with pytest.warns(OptbenchWarning, match=r"submission=nesty \(an installed entry point\) is recorded and "
                      r"ranked as 'nesterov_mine'.*`name: nesty`"):
        code, summary, err = run(capsys, "trial", "submission=nesty", *SMOKE, f"results={tmp_path / 'results'}",
                                 "max_steps=2")
    assert code == 0 and Path(summary["record_dir"]).parent.name == "nesterov_mine", err


def test_list_shows_an_installed_submission_s_class_defaults_its_yaml_leaves_out(package: Path, tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture) -> None:
    """It showed the YAML's hyperparameters only: dampening=0.25, which every trial runs with, was missing."""
    source = package / "mypkg" / "opt.py"
    source.write_text(source.read_text().replace("    momentum: float\n", "    momentum: float\n"
                                                 "    dampening: float = 0.25\n"))
    install(package, tmp_path, "[optbench.submissions]\nnesterov_mine = mypkg.opt:Nesterov\n")
    assert main(["list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.split()[0] == "nesterov_mine")
    assert "batch 64:" in line and "lr=0.05, momentum=0.9, dampening=0.25 (" in line
    code, summary, _ = run(capsys, "trial", "submission=nesterov_mine", *SMOKE, f"results={tmp_path / 'r'}",
                           "max_steps=2")
    assert code == 0 and read_json(Path(summary["record_dir"]) / "manifest.json")["hparams"]["dampening"] == 0.25


def test_list_shows_every_plugin_when_one_installed_plugin_cannot_load(package: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    install(package, tmp_path, "[optbench.submissions]\nbroken_one = mypkg.broken:Broken\n"
                               "nesterov_mine = mypkg.opt:Nesterov\n")
    (package / "mypkg" / "broken.py").write_text("raise RuntimeError('typo on line 1')\n")
    code = main(["list"])
    captured = capsys.readouterr()
    assert code == 2, captured.err  # a broken plugin is bad input: named, and a non-zero exit
    assert "adamw" in captured.out and "nesterov_mine" in captured.out  # the others are still listed
    assert "broken_one" in captured.out and "cannot be loaded" in captured.out
    assert "broken_one" in captured.err and "typo on line 1" in captured.err


def test_an_entry_point_naming_a_module_that_is_not_there_blames_the_entry_point(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A typo in pyproject.toml's entry point was reported as the module's own import error, 'Fix its
    code (try: python -c ...)', though there was no code to fix."""
    install(package, tmp_path, "[optbench.submissions]\ntypo_one = mypkg.optt:Nesterov\n"
                               "[optbench.workloads]\nvalley_mine = mypkg.vally:Valley\n")
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    for kind, name, value in (("submission", "typo_one", "mypkg.optt:Nesterov"),
                              ("workload", "valley_mine", "mypkg.vally:Valley")):
        said = (f"{kind} {name}: the installed entry point {name} = {value} (package mypkg-opt, group "
                f"optbench.{kind}s) names the module {value.partition(':')[0]}, which is not installed. Correct "
                f"the entry point in that package's pyproject.toml")
        assert said in err, err
    assert "Fix its code" not in err, err
    code, _, err = run(capsys, "trial", "submission=typo_one", *SMOKE, f"results={tmp_path / 'results'}")
    assert code == 2 and "the installed entry point typo_one = mypkg.optt:Nesterov" in err, err


def test_what_a_new_user_trips_on_is_named(package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = f"results={tmp_path / 'results'}"
    (package / "broken.py").write_text("import torch\nraise RuntimeError('typo on line 2')\n")
    code, _, err = run(capsys, "trial", "submission=broken.py", *SMOKE, results)
    assert code == 2 and "could not be imported: RuntimeError: typo on line 2" in err
    assert f"python -c 'import broken' in {package}" in err, err  # the file's folder: where it imports so
    (package / "mypkg" / "adan.py").write_text("raise RuntimeError('typo on line 1')\n")
    code, _, err = run(capsys, "trial", "submission=mypkg.adan:Adan", *SMOKE, results)
    assert code == 2 and "python -c 'import mypkg.adan'" in err, err  # was: 'import mypkg', which passes
    code, _, err = run(capsys, "trial", "submission=mypkg.nothere:X", *SMOKE, results)
    assert code == 2 and "no module 'mypkg.nothere' can be imported" in err
    code, _, err = run(capsys, "trial", "submission=mypkg.opt", *SMOKE, results)  # no SUBMISSION, no :Class
    assert code == 2 and "has no SUBMISSION" in err and "mypkg.opt:Nesterov" in err
    code, _, err = run(capsys, "trial", "submission=mypkg.opt:Nestorov", *SMOKE, results)  # a typo'd class name
    assert code == 2 and "has no Nestorov" in err and "mypkg.opt:Nesterov" in err, err
    assert "Nestorov = MyClass" not in err, err  # was: advice to export the class under the typo
    (package / "mypkg" / "clash.yaml").write_text(CONFIG.replace("nesterov_mine", "adamw"))
    code, _, err = run(capsys, "trial", "submission=mypkg.opt:Nesterov",
                       f"submission_config={package / 'mypkg' / 'clash.yaml'}", *SMOKE, results)
    assert code == 2 and "the name of a built-in submission" in err
    (package / "bare.py").write_text(OPTIMIZER.replace("class Nesterov(", "class Bare("))
    code, _, err = run(capsys, "trial", "submission=bare.py:Bare", *SMOKE, results)  # no YAML, lr has no default
    assert code == 2 and "needs hyperparameter(s) lr, momentum: set them in its config" in err
    assert f"no {package / 'bare.yaml'}" in err and "submission.hparams.lr=" in err, err  # where, and the other way
    (package / "nohp_bare.py").write_text(OPTIMIZER.replace("    Hparams = NesterovHparams\n", ""))
    code, summary, err = run(capsys, "trial", "submission=nohp_bare.py:Nesterov", *SMOKE, results)  # nor a YAML
    assert code == 3 and summary["error_in"] == "submission.__init__", err
    assert "'TrainingHparams' has no hyperparameter 'lr'" in summary["error_message"], summary
    assert "Nesterov has no Hparams of its own" not in summary["error_message"]  # it cannot know the class's name
    assert "Hparams = " in summary["error_message"], summary
    (package / "nohp.py").write_text(OPTIMIZER.replace("    Hparams = NesterovHparams\n", ""))
    (package / "nohp.yaml").write_text(CONFIG.replace("nesterov_mine", "nohp"))
    code, _, err = run(capsys, "trial", "submission=nohp.py:Nesterov", *SMOKE, results)  # forgot Hparams = ...
    assert code == 2 and "Unknown hyperparameter(s) lr, momentum" in err, err
    assert "Nesterov has no Hparams of its own" in err and "Hparams = " in err, err
    silent = OPTIMIZER.replace("class Nesterov(TorchOptimSubmission)", "class Silent(TorchOptimSubmission)")
    (package / "silent.py").write_text(silent + "\n    def update(self, batch, compute_loss):\n"
                                                "        super().update(batch, compute_loss)\n")  # no return
    (package / "silent.yaml").write_text(CONFIG.replace("nesterov_mine", "silent"))
    code, summary, err = run(capsys, "trial", "submission=silent.py:Silent", *SMOKE, results)
    assert code == 3 and summary["status"] == "failed" and summary["error_in"] == "submission.update"
    manifest = read_json(Path(summary["record_dir"]) / "manifest.json")
    assert "must return the step's loss as a one-element tensor" in manifest["summary"]["error"]


DERIVED = """
from __future__ import annotations

import dataclasses

import torch

from harness.submission import TorchOptimSubmission, TrainingHparams


@dataclasses.dataclass(kw_only=True)
class DHparams(TrainingHparams):
    lr: float = 0.05
    one_minus_beta: float = 0.1
    momentum: float = dataclasses.field(init=False)
    dampening: float = dataclasses.field(init=False, default=0.0)
    betas: tuple[float, float] = (0.9, 0.99)
    clip: float | None = None

    def __post_init__(self):
        super().__post_init__()
        self.momentum = 1.0 - self.one_minus_beta
        self.dampening = self.one_minus_beta / 2


class Derived(TorchOptimSubmission):
    Hparams = DHparams

    def build_optimizer(self, params, hp):
        if type(hp.betas) is not tuple or type(hp.clip) not in (float, type(None)):
            raise TypeError(f"betas {hp.betas!r}, clip {hp.clip!r}: not as the class declares them")
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, dampening=hp.dampening)


SUBMISSION = Derived
"""


def test_a_file_s_hparams_with_computed_tuple_and_optional_fields_run_and_are_recorded(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Before: 'DHparams.__init__() got an unexpected keyword argument momentum' for every run (its
    default was taken as a setting); build_optimizer got betas as a list and clip=1 as an int."""
    (tmp_path / "derived.py").write_text(DERIVED)
    args = ["trial", f"submission={tmp_path / 'derived.py'}", *SMOKE, "max_steps=5", f"results={tmp_path / 'r'}"]
    code, summary, err = run(capsys, *args, "submission.hparams.one_minus_beta=0.2", "submission.hparams.clip=1")
    assert code == 0 and summary["status"] in ("reached", "not_reached"), err
    hparams = read_json(Path(summary["record_dir"]) / "manifest.json")["hparams"]
    assert hparams["momentum"] == pytest.approx(0.8) and hparams["dampening"] == pytest.approx(0.1)
    assert hparams["betas"] == [0.9, 0.99] and hparams["clip"] == 1.0 and type(hparams["clip"]) is float
    code, _, err = run(capsys, *args, "submission.hparams.momentum=0.5")
    assert code == 2 and "momentum of submission 'derived' cannot be set: DHparams computes it" in err, err
    code, _, err = run(capsys, *args, "submission.hparams.clip=abc")
    assert code == 2 and "Invalid hyperparameter clip='abc': expected a value of type float or None" in err, err
    code, summary, err = run(capsys, "check", f"submission={tmp_path / 'derived.py'}", "workloads=[fashion_mnist]")
    assert code == 0 and summary["passed"], (err, summary)  # it rebuilds the values with another batch size
    (tmp_path / "nodc.py").write_text(DERIVED.replace("@dataclasses.dataclass(kw_only=True)\n", ""))
    code, _, err = run(capsys, "trial", f"submission={tmp_path / 'nodc.py'}", *SMOKE, f"results={tmp_path / 'r'}")
    assert code == 2 and "DHparams (the Hparams of Derived) annotates lr, one_minus_beta" in err, err
    assert "@dataclasses.dataclass(kw_only=True)" in err


def test_a_finished_trial_made_with_other_code_is_not_returned_as_this_code_s(package: Path, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    args = ["trial", "submission=mypkg.opt:Nesterov", *SMOKE, f"results={tmp_path / 'results'}"]
    code, first, _ = run(capsys, *args)
    assert code == 0 and not first.get("cached")
    code, again, _ = run(capsys, *args)
    assert code == 0 and again["cached"]
    source = package / "mypkg" / "opt.py"
    source.write_text(source.read_text().replace("nesterov=True", "nesterov=False"))
    del sys.modules["mypkg.opt"]
    code, _, err = run(capsys, *args)
    assert code == 2 and "finished with other code" in err and "rerun=true" in err
    code, rerun, err = run(capsys, *args, "rerun=true")
    assert code == 0 and not rerun.get("cached") and rerun["record_dir"] == first["record_dir"]
    record = Path(first["record_dir"])
    assert (record / "manifest.previous-1.json").is_file() and (record / "evals.previous-1.jsonl").is_file()
    assert read_json(record / "manifest.json")["submission_source_sha256"] != read_json(
        record / "manifest.previous-1.json")["submission_source_sha256"]


def test_a_checkpoint_made_with_other_code_is_not_resumed_with_this_code(package: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted trial (here: its checkpoint kept and its manifest set back to running) would go on
    from the old code's checkpoint with the edited code: one trial, two algorithms."""
    import harness.core.runner

    args = ["trial", "submission=mypkg.opt:Nesterov", *SMOKE, f"results={tmp_path / 'results'}", "max_steps=40",
            "checkpoint_every_s=0"]
    with monkeypatch.context() as patch:
        patch.setattr(harness.core.runner, "remove_checkpoint", lambda folder: None)
        code, first, err = run(capsys, *args)
    assert code == 0, err
    record = Path(first["record_dir"])
    manifest = read_json(record / "manifest.json")
    (record / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "summary": None}))
    assert (record / "checkpoint.pt").is_file()  # an interrupted trial's state: what a rerun resumes from
    source = package / "mypkg" / "opt.py"
    source.write_text(source.read_text().replace("nesterov=True", "nesterov=False"))
    del sys.modules["mypkg.opt"]
    code, _, err = run(capsys, *args)
    assert code == 2 and "was started with other code" in err and "rerun=true" in err, err
    assert (record / "checkpoint.pt").is_file() and read_json(record / "manifest.json")["status"] == "running"
    code, again, err = run(capsys, *args, "rerun=true")
    assert code == 0, err
    rerun = read_json(record / "manifest.json")
    assert rerun["submission_source_sha256"] != manifest["submission_source_sha256"]
    assert rerun["summary"]["steps"] == again["steps"] and len(rerun["attempts"]) == 1  # from step 0, not resumed


@pytest.mark.parametrize(("mistake", "said"), [
    (("    def build_optimizer(self, params, hp):", "    def build_optimizer(self, params):"),
     "build_optimizer(self, params) cannot be called as the harness calls it, build_optimizer(self, params, hparams)"),
    (("class Nesterov(TorchOptimSubmission):\n", "class Nesterov(TorchOptimSubmission):\n"
      "    def update(self, batch):\n        return super().update(batch, None)\n\n"),
     "update(self, batch) cannot be called as the harness calls it, update(self, batch, compute_loss)"),
])
def test_a_submission_the_harness_cannot_call_is_refused_before_a_sweep_launches(
        mistake: tuple[str, str], said: str, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A signature mistake launched the sweep and failed every trial at its first call: on SLURM a whole
    array of jobs queued and failed for a mistake the class shows."""
    source = package / "mypkg" / "opt.py"
    source.write_text(source.read_text().replace(*mistake))
    results = tmp_path / "results"
    code, _, err = run(capsys, "tune", "submission=mypkg.opt:Nesterov", *SMOKE, "max_steps=5", f"results={results}",
                       "studies=1", "trials=2", "launcher=inline")
    assert code == 2 and "mypkg.opt.Nesterov cannot run as a submission" in err and said in err, err
    assert not list(results.rglob("manifest.json"))  # nothing launched


def test_a_sweep_that_failed_in_the_submission_s_code_says_how_to_run_it_again_once_fixed(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A mistake in its code failed every trial; once fixed, tune refused the sweep as other code's and
    said to restore the old (broken) code or tune elsewhere; moving the sweep aside within the results
    folder was refused too, as a second sweep."""
    source = package / "mypkg" / "opt.py"
    good = source.read_text()
    source.write_text(good.replace("    def build_optimizer(self, params, hp):\n",
                                   "    def build_optimizer(self, params, hp):\n        raise TypeError('a bug')\n"))
    results = tmp_path / "results"
    args = ["tune", "submission=mypkg.opt:Nesterov", *SMOKE, "max_steps=5", f"results={results}", "studies=1",
            "trials=2", "launcher=inline"]
    code, summary, err = run(capsys, *args)
    assert code == 3, err
    sweep = Path(summary["sweep"])
    source.write_text(good)
    del sys.modules["mypkg.opt"]
    code, _, err = run(capsys, *args)
    assert code == 2 and "made with other code" in err, err
    assert f"Every trial of {sweep} failed in the submission's code (the first: submission.__init__: TypeError" in err
    moved = tmp_path / "results-failed" / sweep.parent.relative_to(results)
    assert f"(mkdir -p {moved} && mv {sweep} {moved}/)" in err, err
    moved.mkdir(parents=True)
    sweep.rename(moved / sweep.name)  # as it says
    code, summary, err = run(capsys, *args)
    assert code == 0 and summary["launched"] == 2, err
    assert (moved / sweep.name / "sweep.json").is_file()  # the failures kept


def test_a_sweep_whose_records_were_made_with_other_code_is_refused(package: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    args = ["tune", "submission=mypkg.opt:Nesterov", *SMOKE, "max_steps=20", f"results={results}", "studies=1",
            "trials=2", "launcher=inline"]
    code, summary, err = run(capsys, *args)
    assert code == 0 and summary["launched"] == 2, err
    sweep = Path(summary["sweep"])
    manifests = sorted(sweep.rglob("manifest.json"))
    before = [m.read_bytes() for m in manifests]
    source = package / "mypkg" / "opt.py"
    source.write_text(source.read_text() + "\n# a comment changes the file: its records are another code's\n")
    del sys.modules["mypkg.opt"]
    code, _, err = run(capsys, *args)
    assert code == 2, err
    assert "2 of the 2 trials" in err and "made with other code" in err and str(source) in err
    assert "results=" in err  # what to do
    assert [m.read_bytes() for m in manifests] == before  # nothing ran, nothing was rewritten
    code, summary, err = run(capsys, *args[:-3], f"results={tmp_path / 'new'}", "studies=1", "trials=2",
                             "launcher=inline")
    assert code == 0 and summary["launched"] == 2, err


def test_an_edit_of_a_module_the_submission_imports_is_other_code(package: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """Only the class's own file was hashed: a helper beside it (a lone file's ``helper.py``) or in its
    package (``from ._util import ...``) could change, and the old records were returned and scored as
    the new code's."""
    (package / "mypkg" / "_util.py").write_text("MOMENTUM = 0.9\n")
    source = package / "mypkg" / "opt.py"
    source.write_text(source.read_text().replace("momentum=hp.momentum", "momentum=MOMENTUM").replace(
        "import torch\n", "import torch\n\nfrom ._util import MOMENTUM\n"))
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "helper.py").write_text("SCALE = 1.0\n")
    (lone / "scaled.py").write_text(OPTIMIZER.replace("lr=hp.lr", "lr=hp.lr * helper.SCALE").replace(
        "import torch\n", "import torch\n\nimport helper\n") + "\nSUBMISSION = Nesterov\n")
    results = tmp_path / "results"
    runs = {"package": ["submission=mypkg.opt:Nesterov"],
            "file": [f"submission={lone / 'scaled.py'}", "+submission.hparams.lr=0.05",
                     "+submission.hparams.momentum=0.9"]}
    for how in runs.values():
        code, summary, err = run(capsys, "trial", *how, *SMOKE, f"results={results}", "max_steps=10")
        assert code == 0, err
        assert {"mypkg/_util.py", "helper.py"} & set(read_json(Path(summary["record_dir"]) / "manifest.json")[
            "submission_code"])  # the helper is part of the submission's code
    (package / "mypkg" / "_util.py").write_text("MOMENTUM = 0.5\n")
    (lone / "helper.py").write_text("SCALE = 1e-4\n")
    for name in ("mypkg._util", "helper"):  # as a new process would import them
        del sys.modules[name]
    for how, changed in ((runs["package"], package / "mypkg" / "_util.py"), (runs["file"], lone / "helper.py")):
        code, _, err = run(capsys, "trial", *how, *SMOKE, f"results={results}", "max_steps=10")
        assert code == 2 and "finished with other code" in err and f"{changed} (sha256" in err, err
    assert run(capsys, "trial", *runs["package"], *SMOKE, f"results={results}", "max_steps=10", "seed=1")[0] == 0
    code, _, err = run(capsys, "score", f"results={results}", f"out={tmp_path / 'board'}", "bootstrap=0")
    assert code == 2 and "were made with 2 versions of its code" in err, err


def test_records_of_two_codes_of_one_submission_are_not_scored_together(package: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    """Seed 0 with the first code, seed 1 after an edit: two algorithms under one name."""
    results = tmp_path / "results"
    args = ["trial", "submission=mypkg.opt:Nesterov", *SMOKE, f"results={results}", "max_steps=10"]
    assert run(capsys, *args, "seed=0")[0] == 0
    code, _, err = run(capsys, "score", f"results={results}", f"out={tmp_path / 'board'}", "bootstrap=0")
    assert code == 0, err
    source = package / "mypkg" / "opt.py"
    source.write_text(source.read_text().replace("nesterov=True", "nesterov=False"))
    del sys.modules["mypkg.opt"]
    assert run(capsys, *args, "seed=1")[0] == 0
    code, _, err = run(capsys, "score", f"results={results}", f"out={tmp_path / 'board2'}", "bootstrap=0")
    assert code == 2 and "nesterov_mine on fashion_mnist-smoke were made with 2 versions of its source" in err, err
    assert not (tmp_path / "board2" / "leaderboard.csv").exists()


def test_a_library_the_submission_wraps_is_recorded_by_version_and_an_upgrade_is_noticed(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A submission wrapping an installed optimizer library (as lion.py wraps lion-pytorch): the library
    upgraded, none of the submission's own files changed, and its old records were returned as the new
    code's and scored with new ones, the manifest naming no version of the library."""
    library = tmp_path / "site" / "steplib"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text("MOMENTUM = 0.9\n")
    info = tmp_path / "site" / "steplib-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: steplib\nVersion: 1.0\n")
    (info / "RECORD").write_text("steplib/__init__.py,,\n")
    sys.path.insert(0, str(tmp_path / "site"))
    source = package / "mypkg" / "opt.py"
    source.write_text(source.read_text().replace("momentum=hp.momentum", "momentum=steplib.MOMENTUM").replace(
        "import torch\n", "import steplib\nimport torch\n"))
    results = tmp_path / "results"
    args = ["trial", "submission=mypkg.opt:Nesterov", *SMOKE, f"results={results}", "max_steps=10"]
    code, summary, err = run(capsys, *args, "seed=0")
    assert code == 0, err
    assert read_json(Path(summary["record_dir"]) / "manifest.json")["submission_packages"] == {"steplib": "1.0"}

    (library / "__init__.py").write_text("MOMENTUM = 0.5\n")  # steplib 2.0 installed over 1.0
    info.rename(tmp_path / "site" / "steplib-2.0.dist-info")
    (tmp_path / "site" / "steplib-2.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: steplib\nVersion: 2.0\n")
    del sys.modules["steplib"]
    code_files._installed_versions.cache_clear()  # as a new process finds them
    code, _, err = run(capsys, *args, "seed=0")
    assert code == 2 and "the submission's installed packages changed: steplib 1.0 then, 2.0 now" in err, err
    assert run(capsys, *args, "seed=1")[0] == 0
    code, _, err = run(capsys, "score", f"results={results}", f"out={tmp_path / 'board'}", "bootstrap=0")
    assert code == 2 and "2 versions of the installed packages its code imports" in err, err
    assert "steplib 1.0; steplib 2.0" in err, err


def test_check_passes_a_sound_submission_and_fails_one_that_does_not_resume(package: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    code, summary, err = run(capsys, "check", "submission=mypkg.opt:Nesterov", "workloads=[fashion_mnist]")
    assert code == 0 and summary["passed"], err
    assert [c["check"] for c in summary["checks"]][:4] == [
        "default hyperparameters build", "search space", "updates parameters (fashion_mnist smoke)",
        "resumes exactly from state_dict (fashion_mnist smoke)"]
    forgetful = OPTIMIZER.replace("class Nesterov(TorchOptimSubmission)", "class Forgetful(TorchOptimSubmission)")
    (package / "forgetful.py").write_text(forgetful + textwrap.dedent('''
        def _halving(self, batch, compute_loss):
            self.calls = getattr(self, "calls", 0) + 1  # state outside the optimizer, not in state_dict
            for group in self.optimizer.param_groups:
                group["lr"] = self.hparams.lr / self.calls
            return TorchOptimSubmission.update(self, batch, compute_loss)

        Forgetful.update = _halving
        '''))
    (package / "forgetful.yaml").write_text(CONFIG.replace("nesterov_mine", "forgetful"))
    code, summary, err = run(capsys, "check", "submission=forgetful.py:Forgetful", "workloads=[fashion_mnist]")
    assert code == 1 and not summary["passed"]
    failed = {c["check"]: c["detail"] for c in summary["checks"] if not c["passed"]}
    assert list(failed) == ["resumes exactly from state_dict (fashion_mnist smoke)"]
    assert "state_dict() misses some state" in failed["resumes exactly from state_dict (fashion_mnist smoke)"]
    # one that never clears its gradients: said as that, not as missing state (which it has none of)
    nozero = OPTIMIZER.replace("class Nesterov(TorchOptimSubmission)", "class NoZero(TorchOptimSubmission)")
    (package / "nozero.py").write_text(nozero + textwrap.dedent('''
        def _accumulating(self, batch, compute_loss):
            loss = compute_loss(batch)
            loss.backward()  # without zero_grad: adds to the last step's gradients
            self.optimizer.step()
            return loss.detach()

        NoZero.update = _accumulating
        '''))
    (package / "nozero.yaml").write_text(CONFIG.replace("nesterov_mine", "nozero"))
    code, summary, err = run(capsys, "check", "submission=nozero.py:NoZero", "workloads=[fashion_mnist]")
    failed = {c["check"]: c["detail"] for c in summary["checks"] if not c["passed"]}
    resumes = failed["resumes exactly from state_dict (fashion_mnist smoke)"]
    assert code == 1 and "does not clear the gradients" in resumes and "misses some state" not in resumes


def test_check_says_in_one_line_which_state_a_checkpoint_cannot_hold(package: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """torch's whole multi-line refusal, with the terminal's colour codes, was the check's detail."""
    numpy_state = OPTIMIZER.replace("class Nesterov(TorchOptimSubmission)", "class Numpied(TorchOptimSubmission)")
    (package / "numpied.py").write_text(numpy_state + textwrap.dedent('''
        import numpy

        def _state(self):
            return {**TorchOptimSubmission.state_dict(self), "trace": numpy.zeros(3)}

        Numpied.state_dict = _state
        '''))
    (package / "numpied.yaml").write_text(CONFIG.replace("nesterov_mine", "numpied"))
    code, summary, _ = run(capsys, "check", "submission=numpied.py:Numpied", "workloads=[fashion_mnist]")
    failed = {c["check"]: c["detail"] for c in summary["checks"] if not c["passed"]}
    detail = failed["resumes exactly from state_dict (fashion_mnist smoke)"]
    assert code == 1 and "cannot be saved and loaded as a checkpoint" in detail and "numpy" in detail, detail
    assert "\x1b" not in detail and "\n" not in detail, detail


def test_check_with_defaults_that_do_not_build_runs_no_check_that_trains(package: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    """A config of another submission's hyperparameters failed all 8 checks with one error, once per workload."""
    (tmp_path / "other.yaml").write_text("name: nesterov_other\nhparams:\n  lr: 0.1\n  beta1: 0.9\n")
    code, summary, err = run(capsys, "check", "submission=mypkg.opt:Nesterov",
                             f"submission_config={tmp_path}/other.yaml")
    assert code == 1 and [c["check"] for c in summary["checks"]] == ["default hyperparameters build", "search space"]
    assert "Unknown hyperparameter(s) beta1" in summary["checks"][0]["detail"]
    assert "not run: the checks that train" in err


VALLEY = '''
"""A user's workload: Rosenbrock's valley under another name (a subclass of the built-in one)."""
from workloads.rosenbrock import Rosenbrock


class Valley(Rosenbrock):
    name = "valley"
'''

VALLEY_CONFIG = """
model: point
size: smoke
model_options: {curvature: 10.0}
sizes:
  smoke:
    target: 0.05
    max_runtime_s: 5
    step_hint: 500
    eval_every_steps: 25
    options: {dim: 2, noise: 0.0, start_jitter: 0.01}
    calibration: {note: "a test's"}
"""


def test_a_workload_of_the_users_package_runs_trials_and_sweeps(package: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    (package / "valley.py").write_text(VALLEY)
    (package / "valley.yaml").write_text(VALLEY_CONFIG)
    results = tmp_path / "results"
    code, summary, err = run(capsys, "trial", "workload=valley.py:Valley", "submission=adam", "progress=false",
                             "device=cpu", f"results={results}")
    assert code == 0, err
    record = Path(summary["record_dir"])
    assert record.parent.parent.name == "valley-smoke" and summary["target"] == 0.05
    manifest = read_json(record / "manifest.json")
    assert manifest["config"]["workload"]["source"] == f"{package / 'valley.py'}:Valley"
    assert manifest["config"]["workload"]["config_from"] == str(package / "valley.yaml")
    # in a trainer process (the leaderboard's setting): the file's workload could not be pickled there
    code, isolated, err = run(capsys, "trial", "workload=valley.py:Valley", "submission=adam", "progress=false",
                              "device=cpu", "isolation=process", f"results={tmp_path / 'isolated'}")
    assert code == 0 and isolated["status"] in ("reached", "not_reached") and isolated["steps"] > 0, err
    code, summary, err = run(capsys, "tune", "workload=valley.py:Valley", "submission=adam", "progress=false",
                             "device=cpu", f"results={results}", "studies=1", "trials=2", "launcher=local",
                             "poll_s=0.5", "hydra.launcher.timeout_min=10")
    assert code == 0 and summary["launched"] == 2 and summary["job_errors"] == 0, err
    (package / "nameless.py").write_text(VALLEY.replace("class Valley", "class Nameless"))
    code, _, err = run(capsys, "trial", "workload=nameless.py:Nameless", "submission=adam", f"results={results}")
    assert code == 2 and "has no config" in err and "nameless.yaml beside its module" in err


@pytest.mark.parametrize(("edit", "said"), [
    (("    target: 0.05", "    tagret: 0.05"), "Key 'tagret' not in 'SizeSpec' (key 'sizes.smoke.tagret')"),
    (("model: point", "model: point\nmodle_options: {}"), "(key 'modle_options')"),
    (("    step_hint: 500", "    step_hint: many"), "(key 'sizes.smoke.step_hint')"),
    # a required value left out: a 30-line OmegaConf traceback, exit 1
    (("    step_hint: 500\n", ""), "no value for sizes.smoke.step_hint."),
    (("model: point\n", ""), "no value for model."),
])
def test_a_bad_key_of_a_users_workload_yaml_is_named_with_the_file(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture, edit: tuple[str, str], said: str) -> None:
    """Before: "Unknown setting 'tagret' in the overrides", of a command line that had none."""
    (package / "valley.py").write_text(VALLEY)
    (package / "valley.yaml").write_text(VALLEY_CONFIG.replace(*edit))
    code, _, err = run(capsys, "trial", "workload=valley.py:Valley", "submission=adam", "device=cpu",
                       f"results={tmp_path / 'results'}")
    assert code == 2 and f"{package / 'valley.yaml'}: " in err and said in err, err
    assert "in the overrides" not in err and "Traceback" not in err


def test_a_workload_class_missing_what_the_contract_asks_is_refused_naming_it(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A workload class without higher_is_better failed deep in the harness: "AttributeError:
    'Nodir' object has no attribute 'higher_is_better'", a traceback, exit 1 (the harness's)."""
    (package / "lacking.py").write_text(
        "from harness.workload import Workload\n\n\nclass Lacking(Workload):\n"
        "    name = 'lacking'\n    metric = 'loss'\n    models = ('point',)\n")
    (package / "lacking.yaml").write_text(VALLEY_CONFIG)
    code, _, err = run(capsys, "trial", "workload=lacking.py:Lacking", "submission=adam", "device=cpu",
                       f"results={tmp_path / 'results'}")
    assert code == 2, err
    assert "Lacking" in err and "higher_is_better" in err and "evaluate" in err and "Traceback" not in err, err


@pytest.mark.parametrize(("evaluate", "said"), [
    ('return {"distance": 1.0}', "no 'loss'"),  # the metric is missing: KeyError before
    ('return {"loss": 1.0, "note": "fine"}', "'note'"),  # a value that is no number: ValueError before
])
def test_a_workload_s_failing_evaluation_is_the_workload_s_not_the_harness_s(
        evaluate: str, said: str, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """It was recorded as the harness's failure, with "running the same command again retries it":
    the same failure, every time, until the workload is fixed. (An exception raised inside evaluate
    stays the harness's: the submission's hooks on the model, or the memory it holds, may cause it.)"""
    (package / "broken.py").write_text(VALLEY.replace("class Valley", "class Broken").replace(
        'name = "valley"', f'name = "broken"\n\n    def evaluate(self, model, split):\n'
        f'        self.calls = getattr(self, "calls", 0) + 1\n'
        f'        if self.calls == 1:  # the untrained model, tried before the trial: fine\n'
        f'            return super().evaluate(model, split)\n        {evaluate}\n'))
    (package / "broken.yaml").write_text(VALLEY_CONFIG)
    code, _, err = run(capsys, "trial", "workload=broken.py:Broken", "submission=adam", "device=cpu",
                       f"results={tmp_path / 'results'}")
    assert code == 1 and "in the workload's evaluate()" in err and said in err, err
    assert "fix the workload" in err and "FAILED in the harness" not in err, err
    manifest = read_json(next((tmp_path / "results").rglob("manifest.json")))
    summary = manifest["summary"]
    assert summary["error_in"] == "workload.evaluate" and said in summary["error_message"], summary
    assert summary["error_type"] == "harness.core.evaluation.EvaluationFailed"
    code, _, err = run(capsys, "trial", "workload=broken.py:Broken", "submission=adam", "device=cpu",
                       f"results={tmp_path / 'results'}")
    assert code == 1 and "ended by a failure of the workload's evaluate()" in err, err


def test_a_workload_stream_that_ends_mid_trial_is_the_workload_s_failure(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A stream of 40 batches: recorded as the harness's failure (StopIteration after 40 steps, "running
    the same command again retries it"), exit 1, whatever the workload."""
    (package / "short.py").write_text(VALLEY.replace("class Valley", "class Short").replace(
        'name = "valley"', 'name = "short"\n\n    def train_batches(self, batch_size, seed):\n'
        '        stream = super().train_batches(batch_size, seed)\n'
        '        for _ in range(40):\n            yield next(stream)\n'))
    (package / "short.yaml").write_text(VALLEY_CONFIG.replace("target: 0.05", "target: 0.0"))
    code, summary, err = run(capsys, "trial", "workload=short.py:Short", "submission=adam", "device=cpu",
                             "max_steps=100", f"results={tmp_path / 'results'}")
    assert code == 1 and summary["steps"] == 40 and summary["error_in"] == "workload.train_batches", summary
    assert "FAILED in the workload's train_batches(), not the submission" in err and "fix the workload" in err, err
    assert "must yield batches without end" in summary["error_message"]
    code, _, err = run(capsys, "trial", "workload=short.py:Short", "submission=adam", "device=cpu",
                       "max_steps=100", f"results={tmp_path / 'results'}")
    assert code == 1 and "ended by a failure of the workload's train_batches()" in err, err


@pytest.mark.parametrize(("body", "said"), [
    ("    def load(self):\n        raise FileNotFoundError('/nonexistent/data.npz')\n",
     "The workload's Faulty.load() raised FileNotFoundError: /nonexistent/data.npz"),
    ("    def __init__(self, *args):\n        raise RuntimeError('a typo')\n",
     "The workload's Faulty.__init__() raised RuntimeError: a typo"),
    ("    def loss(self, model, batch):\n        return super().loss(model, batch) * float('nan')\n",
     "The untrained model's training loss on the first batch (batch_size=64) is nan"),
    ("    def train_batches(self, batch_size, seed):\n        return iter(())\n",
     "train_batches(64, ...) ended without giving a batch"),
    ("    def train_batches(self, batch_size, seed):\n        yield from ()\n        raise ValueError('bad')\n",
     "train_batches(), build_model() or loss() raised ValueError: bad"),
    # an evaluation that could never meet the target: the whole budget was run, 'not reached'
    ("    def evaluate(self, model, split):\n        return {'loss': float('nan')}\n",
     "The workload's evaluate() gives validation loss = nan for the untrained model"),
    ("    def evaluate(self, model, split):\n        return {'distance': 1.0}\n",
     "returned no 'loss' (the workload's metric)"),
    # was: "train_batches(), build_model() or loss() raised KeyError"
    ("    def evaluate(self, model, split):\n        raise KeyError('oops')\n",
     "The workload's evaluate() of the untrained model raised KeyError: 'oops'"),
])
def test_a_workload_whose_own_code_fails_before_the_trial_is_refused_as_the_workload_s(
        body: str, said: str, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """load() or __init__ raising was a traceback of the harness's (exit 1) and left an empty record folder; a
    loss that is NaN before any step was recorded as the submission diverging at step 1."""
    (package / "faulty.py").write_text(VALLEY.replace("class Valley", "class Faulty").replace(
        'name = "valley"', f'name = "faulty"\n\n{body}'))
    (package / "faulty.yaml").write_text(VALLEY_CONFIG)
    results = tmp_path / "results"
    code, _, err = run(capsys, "trial", "workload=faulty.py:Faulty", "submission=adam", "device=cpu",
                       "submission.hparams.batch_size=64", f"results={results}", "progress=false")
    assert code == 2 and said in err, err
    assert "Traceback" not in err and "Nothing was recorded" in err, err
    assert not results.exists() or not any(results.rglob("*")), sorted(results.rglob("*"))


def test_a_workload_stream_slow_to_give_its_first_batch_is_said(package: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A generator that drops incomplete batches never yields when the batch size exceeds the examples:
    the trial hung without a word (its batches are made before the clock runs out)."""
    import harness.core.parts as parts

    monkeypatch.setattr(parts, "PROBE_PATIENCE_S", 0.3)
    (package / "slow.py").write_text(VALLEY.replace("class Valley", "class Slow").replace('name = "valley"', (
        'name = "slow"\n\n    def train_batches(self, batch_size, seed):\n        import time\n'
        '        time.sleep(1.0)\n        yield from super().train_batches(batch_size, seed)\n')))
    (package / "slow.yaml").write_text(VALLEY_CONFIG)
    code, _, err = run(capsys, "trial", "workload=slow.py:Slow", "submission=adam", "device=cpu", "max_steps=3",
                       f"results={tmp_path / 'results'}")
    assert code == 0 and "has given no batch in 0 s" in err and "never yields when the batch size" in err, err


def test_a_suite_runs_a_workload_of_the_users_package(package: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """The README says a workload of one's own works as a submission does; suite refused it
    ("Unknown workload(s) valley.py:Valley. Valid workloads: cifar10, ...")."""
    (package / "valley.py").write_text(VALLEY)
    (package / "valley.yaml").write_text(VALLEY_CONFIG)
    code, summary, err = run(capsys, "suite", "suite=smoke", "submissions=[adam,sgd]",
                             "workloads=[valley.py:Valley,fashion_mnist]", "studies=1", "trials=1", "max_steps=30",
                             f"results={tmp_path / 'results'}", "progress=false", "threads=1")
    assert code == 0, err
    assert {"valley-smoke", "fashion_mnist-smoke"} <= {p.name for p in (tmp_path / "results").iterdir()}
    assert set(pd.read_csv(Path(summary["csv"]))["submission"]) == {"adam", "sgd"}
    code, _, err = run(capsys, "suite", "suite=smoke", "workloads=[valey.py:Valley]", f"results={tmp_path / 'r2'}")
    assert code == 2 and "valey.py" in err, err


NUMPY_STATE = OPTIMIZER + '''

import numpy


class Counted(Nesterov):
    """Keeps a NumPy array in its state: a checkpoint (loaded with weights_only=True) cannot hold it."""

    def __init__(self, model, hparams, info):
        super().__init__(model, hparams, info)
        self.history = numpy.zeros(3)

    def state_dict(self):
        return {**super().state_dict(), "history": self.history.copy()}

    def load_state_dict(self, state):
        self.history = state.pop("history")
        super().load_state_dict(state)
'''


@pytest.mark.parametrize("isolation", ["inprocess", "process"])
def test_a_state_a_checkpoint_cannot_hold_fails_the_trial_as_the_submission_s(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture, isolation: str) -> None:
    """A submission whose state_dict held a NumPy array trained on, its checkpoints unloadable: killed,
    it started over from step 0 with torch's message cut short (in a trainer process, the harness was
    blamed). Now the first checkpoint is checked, and the trial fails naming the cause."""
    (package / "counted.py").write_text(NUMPY_STATE)
    (package / "counted.yaml").write_text(CONFIG.replace("nesterov_mine", "counted"))
    code, summary, err = run(capsys, "trial", "submission=counted.py:Counted", *SMOKE, f"isolation={isolation}",
                             f"results={tmp_path / 'results'}", "max_steps=30", "checkpoint_every_s=0",
                             "workload.sizes.smoke.eval_every_steps=10", "workload.sizes.smoke.target=2.0")
    assert code == 3 and summary["status"] == "failed", err
    assert summary["error_in"] == "submission.state_dict", summary
    message = summary["error_message"]
    assert "weights_only=True" in message and "numpy" in message and "torch.as_tensor" in message, message
    assert "\x1b[" not in message and "Re-running `torch.load`" not in message, message


@pytest.mark.parametrize(("method", "part"), [
    ("build_optimizer(self, params, hp)", "construction (submission.__init__)"),
    ("update(self, batch, compute_loss)", "update (submission.update)"),
    ("prepare_for_eval(self)", "prepare_for_eval (submission.prepare_for_eval)"),
])
def test_info_says_the_submission_s_code_raised_and_exits_3(method: str, part: str, package: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """It printed the harness's traceback (info.py -> measure.py -> parts.py) and exited 1, as if
    optbench had failed, where trial exits 3 and check says FAIL for the same code."""
    boom = OPTIMIZER.replace("class Nesterov(", "class Boom(") + (
        f"\n    def {method}:\n        raise ValueError('cannot go on')\n\n\nSUBMISSION = Boom\n")
    (package / "boom.py").write_text(boom)
    (package / "boom.yaml").write_text(CONFIG.replace("nesterov_mine", "boom"))
    code, _, err = run(capsys, "info", "submission=boom.py", "workload.size=smoke", "device=cpu",
                       "steps=2", "warmup=1")
    assert code == 3, err
    assert f"raised in its {part}" in err and "ValueError: cannot go on" in err, err
    assert str(package / "boom.py") in err and "raise ValueError('cannot go on')" in err, err  # its own frame
    assert "harness/" not in err and "Traceback (most recent call last)" not in err, err  # none of the harness's


def test_a_file_of_a_package_that_imports_its_package_is_to_be_given_as_a_module(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given by its path, such a file was said to fail with "No module named 'optbench_external'"
    (an internal name) or "'mypkg'", and "Fix its code (try: python -c 'import rel' in .../mypkg)",
    a command that shows yet another error: the code is fine, it is to be imported as its package's."""
    (package / "mypkg" / "helper.py").write_text("MOMENTUM = 0.9\n")
    (package / "mypkg" / "rel.py").write_text("from .helper import MOMENTUM\n" + OPTIMIZER)
    (package / "mypkg" / "rel.yaml").write_text(CONFIG.replace("nesterov_mine", "rel"))
    (package / "mypkg" / "absolute.py").write_text("from mypkg.helper import MOMENTUM\n" + OPTIMIZER
                                                   + "\nSUBMISSION = Nesterov\n")
    (package / "mypkg" / "deep").mkdir()
    (package / "mypkg" / "deep" / "__init__.py").write_text("")
    (package / "mypkg" / "deep" / "far.py").write_text("from ..helper import MOMENTUM\n" + OPTIMIZER)
    results = f"results={tmp_path / 'results'}"
    cases = [(package, "mypkg/rel.py:Nesterov", "mypkg", "submission=mypkg.rel:Nesterov"),
             (tmp_path, str(package / "mypkg" / "absolute.py"), "mypkg", "submission=mypkg.absolute"),
             (package, "mypkg/deep/far.py:Nesterov", "mypkg.deep", "submission=mypkg.deep.far:Nesterov")]
    for here, given, within, instead in cases:
        monkeypatch.chdir(here)
        code, _, err = run(capsys, "trial", f"submission={given}", *SMOKE, results, "max_steps=5")
        assert code == 2, err
        assert f"is part of the package {within}" in err and f"{instead}, with optbench run from {package} " in err, err
        assert "optbench_external" not in err and "Fix its code" not in err and "python -c" not in err, err
    monkeypatch.chdir(package)
    code, summary, err = run(capsys, "trial", "submission=mypkg.rel:Nesterov", *SMOKE, results, "max_steps=5")
    assert code == 0 and summary["status"] in ("reached", "not_reached"), err  # what the message says works


def test_an_installed_entry_point_named_as_a_built_in_is_listed_as_unusable_and_warned_of(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """It was silently ignored: submission=adamw ran the built-in without a word, and optbench list
    printed adamw twice, both with the built-in's defaults, both tagged (installed: mypkg.opt:Nesterov)."""
    install(package, tmp_path, "[optbench.submissions]\nadamw = mypkg.opt:Nesterov\n"
                               "nesterov_mine = mypkg.opt:Nesterov\n"
                               "[optbench.workloads]\nfashion_mnist = mypkg.valley:Valley\n")
    code = main(["list"])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    for kind, name in (("submission", "adamw"), ("workload", "fashion_mnist")):
        lines = [line for line in captured.out.splitlines() if line.split()[0] == name]
        assert lines[0].split()[1] in ("batch", "size") and all("installed" not in line for line in lines[:-1]), lines
        assert "cannot be loaded" in lines[-1] and "mypkg." in lines[-1], lines  # the entry point, once, unusable
        assert f"{kind} {name}: the installed entry point {name} = mypkg." in captured.err, captured.err
    assert "Rename the entry point" in captured.err and "nesterov_mine" in captured.out  # the usable one is listed

    paths = [Path(__file__).resolve().parent.parent, tmp_path / "site", package]
    runs = {"PYTHONPATH": os.pathsep.join(map(str, paths))}
    for command, settings in (("trial", ["max_steps=3"]), ("tune", ["max_steps=3", "studies=1", "trials=2"])):
        done = subprocess.run([sys.executable, "-m", "harness.cli", command, "submission=adamw", *SMOKE, *settings,
                               f"results={tmp_path / command}"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, **runs}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr  # the built-ins run
        warned = [line for line in done.stderr.splitlines() if line.startswith("optbench: warning:")]
        assert len(warned) == 2, done.stderr  # one line each, once in the process
        assert any("submission=adamw" in line and "adamw = mypkg.opt:Nesterov" in line for line in warned), warned
        assert any("workload=fashion_mnist" in line and "mypkg.valley:Valley" in line for line in warned), warned
        assert all("Rename the entry point" in line for line in warned), warned
        assert not list((tmp_path / command).rglob("nesterov_mine")), "the entry point's code ran"


def test_a_name_two_installed_packages_declare_is_refused_naming_both(package: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """It was silently one of them: optbench list showed the name once, with whichever package the
    import system listed last, and submission=NAME ran that one's code, exit 0."""
    install(package, tmp_path, "[optbench.submissions]\nnesterov_mine = mypkg.opt:Nesterov\n")
    other = tmp_path / "site" / "otherpkg-2.0.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: otherpkg\nVersion: 2.0\n")
    (other / "entry_points.txt").write_text("[optbench.submissions]\nnesterov_mine = mypkg.other:Other\n")
    (package / "mypkg" / "other.py").write_text(OPTIMIZER.replace("Nesterov(", "Other("))
    assert main(["list"]) == 2
    captured = capsys.readouterr()
    assert [line.split()[0] for line in captured.out.splitlines()].count("nesterov_mine") == 1
    assert "nesterov_mine    cannot be loaded: declared by several installed packages" in captured.out
    for said in ("mypkg.opt:Nesterov (package mypkg-opt)", "mypkg.other:Other (package otherpkg)",
                 "submission=mypkg.opt:Nesterov"):
        assert said in captured.err, captured.err
    results = tmp_path / "results"
    code, _, err = run(capsys, "trial", "submission=nesterov_mine", *SMOKE, f"results={results}")
    assert code == 2 and "2 installed packages declare the submission nesterov_mine" in err, err
    assert not results.exists()
    code, _, err = run(capsys, "trial", "submission=mypkg.opt:Nesterov", *SMOKE, f"results={results}",
                       "max_steps=3")
    assert code == 0, err  # what the message says works


def test_a_yaml_an_installed_package_left_out_is_blamed_on_its_package_data(package: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture) -> None:
    """``pip install .`` of a package whose pyproject.toml does not declare its YAML as package data
    installs the module without it. The errors said only that no YAML or search space was there,
    though the user's source tree had both."""
    (package / "mypkg" / "opt.yaml").unlink()
    (package / "mypkg" / "valley.py").write_text(VALLEY)
    install(package, tmp_path, "[optbench.submissions]\nnesterov_mine = mypkg.opt:Nesterov\n")
    results = tmp_path / "results"
    hint = "as package data ([tool.setuptools.package-data] mypkg = [\"*.yaml\"]"
    for command, given in (("tune", ["submission=nesterov_mine", *SMOKE, "studies=1", "trials=2"]),
                           ("trial", ["submission=sgd", "workload=mypkg.valley:Valley", "device=cpu"])):
        code, _, err = run(capsys, command, *given, f"results={results}")
        assert code == 2 and hint in err, err
        assert not results.exists()
    (package / "mine").mkdir()  # a package in the current folder, not installed: its YAML is just missing
    (package / "mine" / "__init__.py").write_text("")
    (package / "mine" / "opt.py").write_text(OPTIMIZER)
    code, _, err = run(capsys, "tune", "submission=mine.opt:Nesterov", *SMOKE, "studies=1", "trials=2",
                       f"results={results}")
    assert code == 2 and "declares no search space" in err and "package-data" not in err, err
    (package / "lone.py").write_text(OPTIMIZER + "\nSUBMISSION = Nesterov\n")  # a file is not installed
    code, _, err = run(capsys, "tune", "submission=lone.py", *SMOKE, "studies=1", "trials=2", f"results={results}")
    assert code == 2 and "declares no search space" in err and "package-data" not in err, err


CALIBRATE = ["calibrate", "workload=valley.py:Valley", "workload.size=smoke", "points=1", "confirm_seeds=[1]",
             "max_run_s=0.3", "device=cpu", "threads=1", "progress=false"]


def test_calibrate_writes_a_users_workload_s_own_yaml_and_raw_figures_beside_it(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """It ran every search and confirming run, then failed writing a valley.yaml in configs/workload/ of
    optbench's package (FileNotFoundError, exit 1), its raw figures in optbench's workloads/calibration/."""
    (package / "valley.py").write_text(VALLEY)
    (package / "valley.yaml").write_text("# my valley\n" + VALLEY_CONFIG)
    shipped = Path(__file__).parent.parent / "workloads" / "calibration"
    before = sorted(p.name for p in shipped.iterdir())
    code, summary, err = run(capsys, *CALIBRATE, f"results={tmp_path / 'runs'}")
    assert code == 0, err
    raw = package / "calibration" / "valley-smoke.json"
    assert summary["config"] == str(package / "valley.yaml") and summary["raw"] == str(raw)
    assert json.loads(raw.read_text())["workload"] == "valley"
    text = (package / "valley.yaml").read_text()
    entry = yaml.safe_load(text)["sizes"]["smoke"]
    assert text.startswith("# my valley") and entry["target"] == summary["target"]
    assert entry["max_runtime_s"] == summary["max_runtime_s"] and entry["calibration"]["raw"] == str(raw)
    assert sorted(p.name for p in shipped.iterdir()) == before


def test_calibrate_refuses_before_running_when_it_could_not_write_its_figures(
        package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Where calibrate writes is checked before the runs: they take hours on a real workload."""
    (package / "valley.py").write_text(VALLEY)
    (package / "valley.yaml").write_text(VALLEY_CONFIG)
    (package / "calibration").write_text("a file where the raw figures' folder would be")
    code, _, err = run(capsys, *CALIBRATE, f"results={tmp_path / 'runs'}")
    assert code == 2 and str(package / "calibration") in err and "out=" in err, err
    assert not (tmp_path / "runs").exists()


def test_check_runs_on_a_users_workload_given_by_workloads_or_workload(package: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """workloads=[valley.py:Valley] was refused ("Unknown workload(s) valley.py:Valley. Valid workloads:
    cifar10, ..."), and workload=valley.py:Valley was dropped: every built-in workload was checked instead."""
    (package / "valley.py").write_text(VALLEY)
    (package / "valley.yaml").write_text(VALLEY_CONFIG)
    for chosen in ("workloads=[valley.py:Valley]", "workload=valley.py:Valley"):
        code, summary, err = run(capsys, "check", "submission=adam", chosen, "trial_seconds=1")
        assert code == 0 and summary["passed"], err
        assert [c["check"] for c in summary["checks"]][2:] == [
            "updates parameters (valley smoke)", "resumes exactly from state_dict (valley smoke)",
            "smoke trial on valley"], chosen
    code, _, err = run(capsys, "check", "submission=adam", "workload=valley.py:Valley", "workloads=[rosenbrock]")
    assert code == 2 and "workloads=[" in err, err
    code, _, err = run(capsys, "check", "submission=adam", "workloads=[rosenbrock,valey.py:Valley]")
    assert code == 2 and "valey.py" in err and "smoke trial" not in err, err
    # the checks' size: smoke, said (a workload.size= was replaced silently; a workload without one got
    # "has no size 'smoke'" without what to do)
    code, _, err = run(capsys, "check", "submission=adam", "workload=valley.py:Valley", "workload.size=mini")
    assert code == 2 and "workload.size=mini is not used" in err, err
    (package / "hill.py").write_text(VALLEY.replace("class Valley", "class Hill").replace('"valley"', '"hill"'))
    (package / "hill.yaml").write_text(VALLEY_CONFIG.replace("smoke", "mini"))
    code, _, err = run(capsys, "check", "submission=adam", "workload=hill.py:Hill")
    assert code == 2 and "hill.py:Hill has none (its sizes: mini). Add a smoke size" in err, err


def test_two_submissions_of_one_name_are_refused_before_anything_runs(package: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """Two files both named nesterov_mine (by their YAML) used to land in one folder: one pruned
    against the other, scored as one, and refused by score only after every trial, as 'two versions
    of its source' (no code had changed)."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "opt.py").write_text(OPTIMIZER.replace("nesterov=True", "nesterov=False"))
    (other / "opt.yaml").write_text(CONFIG)
    first, second = f"{package / 'mypkg' / 'opt.py'}:Nesterov", f"{other / 'opt.py'}:Nesterov"
    results = tmp_path / "results"
    code, _, err = run(capsys, "suite", f"submissions=[{first},{second}]", "workloads=[fashion_mnist]",
                       "suite=smoke", "studies=1", "trials=1", f"results={results}", "max_steps=5")
    assert code == 2 and "Two submissions are named 'nesterov_mine'" in err
    assert first in err and second in err and not results.exists()
    # one of them run first; the other into the same results folder: a lone trial, then a sweep
    code, _, err = run(capsys, "trial", f"submission={first}", *SMOKE, f"results={results}", "max_steps=5")
    assert code == 0, err
    kept = sorted(results.rglob("*"))
    code, _, err = run(capsys, "trial", f"submission={second}", *SMOKE, f"results={results}", "max_steps=5")
    assert code == 2 and "Two submissions are named 'nesterov_mine'" in err and "nothing was run" in err
    code, _, err = run(capsys, "tune", f"submission={second}", *SMOKE, f"results={results}", "max_steps=5",
                       "studies=1", "trials=1")
    assert code == 2 and "Two submissions are named 'nesterov_mine'" in err
    assert sorted(results.rglob("*")) == kept  # nothing written by either
    # the first one again, and its sweep: its own folder, no refusal
    code, _, err = run(capsys, "tune", f"submission={first}", *SMOKE, f"results={results}", "max_steps=5",
                       "studies=1", "trials=1")
    assert code == 0, err


def test_a_yaml_syntax_error_is_named_with_its_line(package: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    (package / "mypkg" / "opt.yaml").write_text("name: nesterov_mine\nhparams:\n  lr: 0.05\n  momentum: a: b\n")
    code, _, err = run(capsys, "trial", "submission=mypkg.opt:Nesterov", *SMOKE, f"results={tmp_path / 'r'}")
    assert code == 2 and f"{package / 'mypkg' / 'opt.yaml'}:4:" in err and "not a readable YAML file" in err


def test_a_package_installed_by_a_finder_is_recorded_alike_from_any_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An editable install (a finder on sys.meta_path, no sys.path entry) run from the folder above its
    project: the project folder, named like the package, was found first as a namespace package, so
    the source was recorded as `mypkg.blobs:Blobs@/tmp`, and the same trial got another hash there."""
    import importlib.abc
    import importlib.util

    from harness.config.plugins import Source, resolve

    project = tmp_path / "finderpkg"
    (project / "finderpkg").mkdir(parents=True)
    (project / "finderpkg" / "__init__.py").write_text("")
    (project / "finderpkg" / "opt.py").write_text(OPTIMIZER + "\nSUBMISSION = Nesterov\n")

    class EditableFinder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "finderpkg":
                return importlib.util.spec_from_file_location(
                    name, project / "finderpkg" / "__init__.py",
                    submodule_search_locations=[str(project / "finderpkg")])
            return None

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, EditableFinder()])
    monkeypatch.setattr(sys, "path", list(sys.path))
    recorded = []
    for folder in (tmp_path, project, tmp_path / "elsewhere"):
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        for name in [n for n in sys.modules if n.startswith("finderpkg")]:
            monkeypatch.delitem(sys.modules, name)
        recorded.append(resolve("finderpkg.opt", "submission").text())
    assert recorded == ["finderpkg.opt:SUBMISSION"] * 3, recorded
    assert Source.from_text(recorded[0]).root is None


def test_a_variant_given_as_its_recorded_name_is_told_how_to_select_it(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """Records name a variant fashion_mnist.cnn; given so, it was "no module 'fashion_mnist.cnn' can be
    imported ... Install its package", which sent the user to pip."""
    for args in (["trial", "workload=fashion_mnist.cnn"],
                 ["suite", "suite=smoke", "workloads=[fashion_mnist.cnn]", "submissions=[sgd]"]):
        code, _, err = run(capsys, *args, f"results={tmp_path}")
        assert code == 2 and "workload=fashion_mnist workload.variant=cnn" in err and "pip" not in err, err
    assert not any(tmp_path.iterdir())


def test_a_missing_workload_file_is_called_a_workload_s(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "trial", f"workload={tmp_path / 'mine.py'}", f"results={tmp_path}")
    assert code == 2 and "the workload's .py file" in err and "submission" not in err, err


def test_a_top_level_name_several_distributions_share_is_not_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import nvidia.dali` recorded all 14 of torch's nvidia-* wheels (they share the name nvidia): a torch
    upgrade then read as a change of the submission's code, and score refused its records."""
    from harness.config import code_files

    shared = {"nvidia": ["lion-pytorch", "schedulefree"], "lion_pytorch": ["lion-pytorch", "lion-pytorch"]}
    monkeypatch.setattr(code_files, "_distributions_of_modules", lambda path: shared)
    code_files._installed_versions.cache_clear()
    try:
        assert code_files._installed_versions(frozenset({"nvidia"}), ("x",)) == ()
        found = code_files._installed_versions(frozenset({"nvidia", "lion_pytorch"}), ("x",))
        assert [name for name, _ in found] == ["lion-pytorch"]
    finally:
        code_files._installed_versions.cache_clear()
