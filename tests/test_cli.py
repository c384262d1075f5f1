"""The `optbench` command end to end, as a user runs it (subprocesses)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def optbench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_smoke_trial_prints_progress_and_a_json_summary(tmp_path: Path) -> None:
    done = optbench("trial", "workload=fashion_mnist", "submission=adamw", "workload.size=smoke",
                    f"results={tmp_path}", "device=cpu")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("status", "time_to_target_s", "steps_to_target", "best_validation", "target", "record_dir"):
        assert key in summary
    assert summary["status"] == "reached" and summary["time_to_target_s"] > 0
    assert (Path(summary["record_dir"]) / "manifest.json").is_file()
    assert "submission time" in done.stderr and "REACHED" in done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["workload=imagenet"], "Unknown workload 'imagenet'. Valid workloads: cifar10, fashion_mnist, gpt"),
        (["submission=lbfgs"], "Valid submissions: adadelta, adagrad, adam, adamw"),
        (["submission.hparams.lr=-0.01"], "Invalid hyperparameter lr=-0.01: must be positive"),
        (["data_dir=/no/such/folder"], "data_dir '/no/such/folder' does not exist"),
        (["seed=[1,"], "Malformed override"),
        (["submission.hparams.batch_size=1"], "batch_size=1 is outside the range"),
        (["--fast"], "unexpected option --fast"),
        (["checkpoint_every_s=-1"], "checkpoint_every_s=-1.0 must be a number of wall seconds >= 0"),  # was: accepted
    ],
)
def test_bad_input_is_one_clear_paragraph(args: list[str], expected: str, tmp_path: Path) -> None:
    done = optbench("trial", f"results={tmp_path}", *args)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert not any(tmp_path.iterdir()) if tmp_path.exists() else True


@pytest.mark.parametrize("workload", ["fashion_mnist", "gpt", "cifar10"])
def test_a_data_cache_that_cannot_be_written_is_one_paragraph_naming_it(workload: str, tmp_path: Path) -> None:
    """A read-only HOME (the cache under it) was a traceback and exit 1, 'the harness failed: retry'."""
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    done = optbench("trial", f"workload={workload}", "workload.size=smoke", "submission=sgd", "max_steps=2",
                    f"results={tmp_path / 'results'}", "device=cpu", env={"OPTBENCH_CACHE": str(blocked / "cache")})
    assert done.returncode == 2, done.stderr
    assert f"Cannot use optbench's data cache {blocked / 'cache'}" in done.stderr and "OPTBENCH_CACHE" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_command_and_help() -> None:
    assert optbench("trail").returncode == 2
    helped = optbench("--help")
    assert helped.returncode == 0 and "optbench trial" in helped.stdout
    # the sizes it offers are the built-in workloads' sizes, every one of them
    sizes = {size for config in (REPO / "configs" / "workload").glob("*.yaml")
             for size in yaml.safe_load(config.read_text()).get("sizes", {})}
    offered = re.findall(r"workload\.size=([a-z]+(?:\|[a-z]+)+)", helped.stdout)  # the lists, not examples
    assert offered and all(set(line.split("|")) == sizes for line in offered), (offered, sizes)
    for setting in ("precision=fp32|bf16", "compile=auto|true|false", "nproc=N"):
        assert setting in helped.stdout, setting


def test_list_shows_workloads_and_submissions() -> None:
    done = optbench("list")
    assert done.returncode == 0
    assert "fashion_mnist" in done.stdout and "adamw" in done.stdout and "momentum" in done.stdout
    # numbers a config calls provisional (copied, not measured for that size) are marked so
    lines = {line.split()[0] + " " + line.split()[2]: line for line in done.stdout.splitlines() if " size " in line}
    assert lines["fashion_mnist gpu"].endswith("(provisional)") and "provisional" not in lines["fashion_mnist cpu"]
    assert "mini >= 0.87 (provisional)" in done.stdout  # a variant inheriting the base mini target
    # the settings a leaderboard is made with are in --help
    helped = optbench("--help").stdout
    assert "isolation=inprocess|process" in helped and "suite=mini|smoke|cpu|gpu" in helped and "130" in helped


def test_suite_on_smoke_writes_table_and_plot(tmp_path: Path) -> None:
    done = optbench("suite", "suite=smoke", "workloads=[fashion_mnist]", "submissions=[adamw,sgd]", "studies=1",
                    "trials=1", f"results={tmp_path}", "device=cpu", "poll_s=0.5")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["trials"] == 2 and result["launched"] == 2
    table = Path(result["table"]).read_text()
    assert "adamw" in table and "sgd" in table
    assert Path(result["plots"][0]).stat().st_size > 10_000
    assert "launching 2 of 2 trials" in done.stderr and "finished: done 2" in done.stderr


def test_info_reports_parameters_step_time_and_memory() -> None:
    done = optbench("info", "workload.size=smoke", "device=cpu", "steps=5")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["parameters"] == 79_510 and info["step_time_s"] > 0
    assert 0 < info["batch_fraction"] < 1 and info["peak_memory_bytes"] > 0
    assert info["target"] == 0.85 and info["data_source"] == "generated smoke data"
    assert "parameters    79,510" in done.stderr
    assert info["precision"] == "fp32" and info["compile"] is False and info["compile_s"] == 0
    assert "precision     fp32" in done.stderr and "compile       no (compile=auto)" in done.stderr


@pytest.mark.parametrize("setting", ["steps=0", "steps=-2", "warmup=-1"])
def test_info_refuses_a_step_count_it_cannot_time(setting: str, capsys: pytest.CaptureFixture) -> None:
    from harness.cli import main

    # was: ZeroDivisionError (steps=0), UnboundLocalError (steps=-2)
    assert main(["info", "workload=rosenbrock", "workload.size=smoke", "device=cpu", setting]) == 2
    assert setting in capsys.readouterr().err


def test_info_measures_steps_in_the_size_s_precision() -> None:
    done = optbench("info", "workload.size=smoke", "device=cpu", "steps=2", "warmup=1",
                    "workload.sizes.smoke.precision=bf16")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["precision"] == "bf16"
    assert "precision     bf16 (autocast; fp32 weights and gradients)" in done.stderr


def test_a_command_s_result_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranks of a user's ``torchrun ... -m harness.cli trial nproc=2`` share stdout, which
    may be unbuffered (PYTHONUNBUFFERED): a result written as text, then its newline, was seen
    interleaved with the other rank's line, and the output was no longer one JSON per line."""
    import io

    import harness.core.trial
    from harness.cli import main

    class Recorder(io.StringIO):
        writes: list[str] = []

        def write(self, text: str) -> int:
            self.writes.append(text)
            return len(text)

    monkeypatch.setattr(harness.core.trial, "run_trial_command", lambda overrides: {"status": "rank", "rank": 1})
    monkeypatch.setattr(sys, "stdout", Recorder())
    assert main(["trial"]) == 0
    assert Recorder.writes == ['{"status": "rank", "rank": 1}\n']


@pytest.mark.parametrize(("setting", "expected"), [
    ("eval_every_steps=0", "eval_every_steps=0"),  # was: never evaluated, 0.925 recorded as not reached
    ("step_hint=0", "step_hint=0"),  # was: the schedule collapsed
    ("max_runtime_s=0", "max_runtime_s=0"),  # was: one step, although max_runtime_s=0 is refused
    ("target=nan", "target=nan"),  # was: an unreachable target, recorded as null; score crashed
    ("eval_period_s=-1", "eval_period_s=-1"),
    ("min_batch_size=0", "min_batch_size=0"),
    # was: evaluated only after the budget, so never reached (every submission scored 0)
    ("eval_every_steps=null workload.sizes.smoke.eval_period_s=null", "neither eval_every_steps nor eval_period_s"),
])
def test_a_size_setting_out_of_its_range_is_refused_before_any_record(setting: str, expected: str, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    from harness.cli import main

    code = main(["trial", "workload=fashion_mnist", "workload.size=smoke", "progress=false", "device=cpu",
                 f"results={tmp_path / 'results'}", *f"workload.sizes.smoke.{setting}".split()])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "workload.sizes.smoke" in err, err
    assert not (tmp_path / "results").exists()


def test_check_of_a_builtin_submission_on_rosenbrock_passes_where_its_defaults_diverge(
        capsys: pytest.CaptureFixture) -> None:
    """SGD's defaults diverge on Rosenbrock's smoke size, which the smoke trial check tolerates; the
    update and resume checks failed it ("non-finite loss (inf) with the default hyperparameters")."""
    from harness.cli import main

    assert main(["check", "submission=sgd", "workloads=[rosenbrock]", "trial_seconds=2"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["check", "submission=sgd", "workloads=[rosenbrock]", "trial_seconds=0"]) == 2  # was: a FAIL, exit 1
    assert "trial_seconds=0" in capsys.readouterr().err


def test_only_optbench_s_own_warnings_are_worded_as_its_own() -> None:
    """A library's UserWarning raised from a frame of optbench's code (torch's C++ warnings name the
    calling frame) was printed as "optbench: warning: ..." and silenced when repeated."""
    from harness.cli import _format_warning
    from harness.errors import OptbenchWarning

    own = REPO / "scoring" / "report.py"
    library = _format_warning("To copy construct from a tensor ...", UserWarning, str(own), 7)
    assert "UserWarning" in library and not library.startswith("optbench")
    said = "a.jsonl:3: skipped a partial or corrupt record line"
    assert _format_warning(said, OptbenchWarning, str(own), 7) == f"optbench: warning: {said}\n"
    assert _format_warning(said, OptbenchWarning, str(own), 9) == ""  # said once


@pytest.mark.parametrize(("overrides", "ahead"), [
    (["submission=adamw"], False),
    (["submission=adamw", "isolation=inprocess"], False),
    (["submission=adamw", "isolation=process"], True),
    (["submission=my_opt.py:MyOpt"], True),
    (["submission='/home/me/my opt.py'"], True),
    (["submission=mypackage.opt:Opt"], True),
    (["suite=smoke", "submissions=[adamw,sgd]"], False),
    (["suite=smoke", "submissions=[adamw, ./mine.py]"], True),
])
def test_a_command_that_will_fork_children_starts_their_server_first(
        overrides: list[str], ahead: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The children's forkserver imports torch and the trainer (~5 s of CPU): a command that will ask
    it for a child (to describe a user's submission, or for trainers) starts it before its own
    imports, so that both run at once (scripts/bench_startup.py measures what it saves)."""
    import harness.config.child_process as child_process
    from harness.cli import main

    assert child_process.children_ahead(overrides) is ahead
    started: list[bool] = []
    monkeypatch.setattr(child_process, "start_server", lambda: started.append(True))
    main(["trial", *overrides, "not_a_setting=1"])  # refused once composed: the server was started before
    main(["score", *overrides, "not_a_setting=1"])  # never forks: never starts it
    assert started == ([True] if ahead else [])


def test_an_installed_entry_point_counts_as_a_user_s_submission(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.config.child_process as child_process

    monkeypatch.setattr(child_process, "entry_points", lambda kind: {"their_opt": object()})
    assert child_process.children_ahead(["submission=their_opt"])
    assert not child_process.children_ahead(["submission=adamw"])  # a built-in's name is the built-in


def test_help_names_every_setting_of_the_commands_it_shows() -> None:
    """Each command's block of --help names every key of its schema (calibrate's dozen are in the
    README's "Setting targets"): a user who believes the help finds every setting there."""
    from harness.config import schema

    blocks = dict(re.findall(r"(?ms)^  (\w+) +(.*?)(?=^  \w|^\S|\Z)", optbench("--help").stdout))
    for command, config in (("score", schema.ScoreConfig), ("status", schema.StatusConfig),
                            ("tune", schema.TuneConfig), ("info", schema.InfoConfig),
                            ("check", schema.CheckConfig), ("trajectories", schema.TrajectoriesConfig)):
        missing = [f.name for f in dataclasses.fields(config)
                   if not re.search(rf"\b{f.name}[=.]", blocks[command])]  # hparams.adam.lr= names hparams
        assert missing == [], (command, missing)
