"""Launch failures are errors: a job that could not be submitted, a launcher that does not exist,
launcher settings Hydra rejects, and launched jobs that ended without their trial ending.

None of these needs the SLURM cluster: an unreachable scheduler is a fake ``sbatch`` on PATH that
fails the way sbatch does, a missing one is a PATH without it, and (where SLURM's client commands
are installed) the real sbatch with a ``SLURM_CONF`` whose controller does not answer.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from harness.cli import main
from harness.orchestration.status import collect
from harness.orchestration.tune import run_tune

pytestmark = pytest.mark.faults
cluster = pytest.importorskip("test_slurm").cluster  # the real single-node cluster, for the one test that needs it

SMOKE = ["workload=fashion_mnist", "workload.size=smoke", "max_steps=30", "progress=false", "device=cpu",
         "poll_s=0.2"]
SBATCH_SAYS = ["sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host",
               "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"]


@pytest.fixture
def failing_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``sbatch`` first on PATH that fails as sbatch does without a reachable controller (and an
    ``srun``, which submitit looks for before submitting)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "sbatch"
    script.write_text("#!/bin/sh\n" + "".join(f"echo '{line}' >&2\n" for line in SBATCH_SAYS) + "exit 1\n")
    (folder / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in (script, folder / "srun"):
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return script


def tune_cli(capsys: pytest.CaptureFixture, results: Path, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["tune", *SMOKE, "submission=momentum", "studies=1", "trials=2", f"results={results}", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_paragraph(err: str) -> str:
    """What optbench itself says at the end (submitit also echoes sbatch's stderr on its own)."""
    assert "optbench: error:" in err, err
    return err[err.rindex("optbench: error:"):]


def summary_of(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def sweep_files(results: Path) -> list[Path]:
    return sorted(results.rglob("sweep.json")) if results.exists() else []


def assert_no_nonexistent_logs(results: Path, capsys: pytest.CaptureFixture) -> None:
    for row in collect(results, ask_scheduler=False):
        logs = row["logs"]
        assert logs in (None, "-", "not submitted") or Path(logs).exists(), row
    capsys.readouterr()
    assert main(["status", f"results={results}", "scheduler=false"]) == 0
    shown = [line.rpartition("logs: ")[2] for line in capsys.readouterr().out.splitlines() if "logs: " in line]
    assert shown
    for logs in shown:
        assert logs in ("-", "not submitted") or Path(logs).exists(), logs


def test_unreachable_scheduler_is_an_error_with_its_message(results: Path, failing_sbatch: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    code, out, err = tune_cli(capsys, results, "launcher=slurm")
    assert code == 2, err
    summary = summary_of(out)  # the JSON summary still comes
    assert summary["not_submitted"] == 2 and summary["launched"] == 0
    assert summary["counts"] == {"pending": 2}
    paragraph = error_paragraph(err)
    for line in SBATCH_SAYS:  # every line of the scheduler's message, not just the first
        assert line in paragraph
    for hint in ("SLURM_CONF", "sinfo", "scripts/slurm/up.sh"):
        assert hint in paragraph
    assert "resume" not in err.lower()  # nothing was submitted: nothing to resume
    assert not list(results.rglob("manifest.json"))  # no record was written
    assert_no_nonexistent_logs(results, capsys)


def test_run_tune_reports_jobs_that_were_not_submitted(results: Path, failing_sbatch: Path) -> None:
    messages: list[str] = []
    outcome = run_tune([*SMOKE, "submission=momentum", "studies=1", "trials=2", f"results={results}",
                        "launcher=slurm"], log=messages.append)
    assert outcome["launched"] == 0 and outcome["not_submitted"] == 2 and outcome["unfinished"] == 0
    assert SBATCH_SAYS[-1] in outcome["error"]
    assert not any("resume" in m for m in messages)
    rows = collect(results, ask_scheduler=False)
    assert [r["logs"] for r in rows] == ["not submitted", "not submitted"]


def test_missing_sbatch_is_an_error_before_anything_is_written(results: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, _, err = tune_cli(capsys, results, "launcher=slurm")
    assert code == 2, err
    paragraph = error_paragraph(err)
    assert "sbatch" in paragraph and "PATH" in paragraph and "scripts/slurm/up.sh" in paragraph
    assert "resume" not in err.lower()
    assert not sweep_files(results)


@pytest.mark.slurm
@pytest.mark.skipif(os.environ.get("OPTBENCH_SKIP_SLURM") == "1", reason="OPTBENCH_SKIP_SLURM=1")
def test_real_sbatch_with_an_unreachable_controller(cluster: Path, results: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    """SLURM's real sbatch (installed with the bundled cluster, which is not asked here: on a fresh
    machine, as CI's, the clients exist only once scripts/slurm/up.sh ran, and a check at collection
    skipped this test there every time) against a controller that does not answer."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "slurm.conf"
    conf.write_text(f"ClusterName=nowhere\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={port}\n"
                    "AuthType=auth/none\nNodeName=localhost CPUs=1 State=UNKNOWN\n"
                    "PartitionName=debug Nodes=localhost Default=YES State=UP\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    code, out, err = tune_cli(capsys, results, "launcher=slurm")
    assert code == 2, err
    paragraph = error_paragraph(err)
    assert "sbatch: " in paragraph and str(conf) in paragraph  # the scheduler's words; the SLURM_CONF used
    assert "resume" not in err.lower()
    assert summary_of(out)["not_submitted"] == 2
    assert_no_nonexistent_logs(results, capsys)


@pytest.mark.parametrize("setting", ["launcher=nope", "hydra/launcher=nope"])
def test_unknown_launcher_exits_2_before_writing_anything(setting: str, results: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    code, out, err = tune_cli(capsys, results, setting)
    assert code == 2 and not out.strip()  # rejected before the sweep was planned: no summary
    assert "nope" in error_paragraph(err) and "inline" in err
    assert not sweep_files(results) and not (results.exists() and any(results.iterdir()))


def test_unknown_launcher_of_a_suite_writes_nothing(results: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["suite", "suite=smoke", "workloads=[fashion_mnist]", "submissions=[sgd]", "studies=1",
                 "trials=1", f"results={results}", "progress=false", "device=cpu", "launcher=nope"])
    assert code == 2
    assert "launcher='nope'" in error_paragraph(capsys.readouterr().err)
    assert not (results.exists() and any(results.iterdir()))


@pytest.mark.parametrize("override", ["hydra.launcher.no_such_key=1", "hydra.launcher.timeout_min=soon"])
def test_bad_hydra_launcher_override_is_named(override: str, results: Path, failing_sbatch: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    code, _, err = tune_cli(capsys, results, "launcher=slurm", override)
    assert code == 2
    assert override.partition("=")[0] in error_paragraph(err)
    assert not sweep_files(results)


@pytest.mark.parametrize("launcher", ["slurm", "local"])
def test_a_new_key_added_to_the_launcher_is_refused_before_anything_is_written(
        launcher: str, results: Path, failing_sbatch: Path, capsys: pytest.CaptureFixture) -> None:
    """Before: +hydra.launcher.mail_typo=END passed the checks, sweep.json was written, and submitit's
    "Unavailable parameter(s)" was reported as the scheduler refusing the jobs. A parameter of
    submitit's own that Hydra's launcher config lacks (mail_type) still passes."""
    from harness.orchestration.launch import check_launcher

    code, out, err = tune_cli(capsys, results, f"launcher={launcher}", "+hydra.launcher.mail_typo=END")
    assert code == 2 and not out.strip(), err
    paragraph = error_paragraph(err)
    assert f"+hydra.launcher.mail_typo=END: launcher={launcher} has no such setting" in paragraph, paragraph
    assert ("+hydra.launcher.additional_parameters.mail_typo=VALUE" in paragraph) == (launcher == "slurm")
    assert not sweep_files(results)
    if launcher == "slurm":
        assert check_launcher(launcher, ["+hydra.launcher.mail_type=END"]) == launcher


@pytest.mark.parametrize("limits", [["hydra.launcher.timeout_min=1"],
                                    ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=150"]])
def test_a_time_limit_within_the_signal_delay_is_refused_before_anything_is_written(
        limits: list[str], results: Path, failing_sbatch: Path, capsys: pytest.CaptureFixture) -> None:
    """Before: timeout_min=1 with the signal 60 s before the limit was submitted; every job was
    signalled at once and requeued before writing a record until submitit gave up (a traceback,
    exit 1, and advice to run it again). Now it is refused first, both settings named."""
    code, out, err = tune_cli(capsys, results, "launcher=slurm", *limits)
    assert code == 2 and not out.strip(), err
    paragraph = error_paragraph(err)
    assert "hydra.launcher.timeout_min=" in paragraph and "hydra.launcher.signal_delay_s=" in paragraph, paragraph
    assert "Nothing was submitted" in paragraph and "Raise timeout_min" in paragraph
    assert not sweep_files(results)


def test_a_job_timed_out_too_often_is_said_in_a_line_not_a_traceback() -> None:
    """submitit's UncompletedJobError, raised in a job signalled more often than max_num_timeout
    allows, came back as its whole traceback; now as its last line and what to change."""
    from harness.orchestration.launch import _last_error

    said = _last_error("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    g()\n"
                       "submitit.core.utils.UncompletedJobError: Job not requeued because: timed-out too many times.\n")
    assert said.startswith("UncompletedJobError: Job not requeued because: timed-out too many times.")
    assert "Traceback" not in said and "hydra.launcher.timeout_min" in said and "max_num_timeout" in said


def test_ctrl_c_names_the_slurm_jobs_left_running_and_how_to_stop_them(
        results: Path, failing_sbatch: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, Ctrl-C of a tune waiting on SLURM jobs said only that the records are kept, not that
    its jobs go on using the allocation, nor how to stop them."""
    import harness.orchestration.tune as tune

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tune, "launch_and_wait", interrupted)
    monkeypatch.setattr(tune, "live_jobs", lambda sweeps, root, only: {
        key: f"SLURM job 41_{key[1]} RUNNING" for key in sorted(only)})
    code, out, err = tune_cli(capsys, results, "launcher=slurm")
    assert code == 130 and not out.strip(), err
    assert "optbench: interrupted; what was written is kept" in err
    assert "(41_0, 41_1) go on without it and use the allocation; `scancel 41_0 41_1` stops them" in err, err


def test_launcher_setting_of_another_launcher_is_named(results: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = tune_cli(capsys, results, "launcher=local", "hydra.launcher.partition=gpu")
    assert code == 2
    paragraph = error_paragraph(err)
    assert "hydra.launcher.partition" in paragraph and "launcher=local" in paragraph
    assert not sweep_files(results)


def test_jobs_that_end_without_their_trial_exit_1(results: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    import harness.core.trial

    def lost(cfg):
        raise RuntimeError("the node lost its data folder")

    monkeypatch.setattr(harness.core.trial, "run_trial", lost)
    code, out, err = tune_cli(capsys, results)
    assert code == 1, err
    summary = summary_of(out)
    assert summary["launched"] == 2 and summary["not_submitted"] == 0
    assert summary["job_errors"] == 2 and summary["unfinished"] == 2
    paragraph = error_paragraph(err)
    assert "2 of the 2 launched trials did not end" in paragraph and "optbench status" in paragraph


@pytest.mark.slurm
@pytest.mark.skipif(os.environ.get("OPTBENCH_SKIP_SLURM") == "1", reason="OPTBENCH_SKIP_SLURM=1")
def test_a_partition_the_real_cluster_lacks_is_an_error(cluster: Path, results: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    """On the real single-node cluster: sbatch refuses the array; its words reach the user, exit 2."""
    code, out, err = tune_cli(capsys, results, "launcher=slurm", "hydra.launcher.partition=no_such_partition")
    assert code == 2, err
    paragraph = error_paragraph(err)
    assert "sbatch: error:" in paragraph and "partition" in paragraph.lower()
    assert "resume" not in err.lower()
    assert summary_of(out)["not_submitted"] == 2
    assert_no_nonexistent_logs(results, capsys)
