"""Fault injection: each case a user met — crafted checkpoints, failed writes, submissions that exit,
two runs of one trial, damaged or moved records, unwritable outputs — ends visibly and loses nothing.

Every test here failed on the code before the fix it guards (see the closing note of the issue).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import harness.core.runner as runner
from harness.cli import main
from harness.core.checkpoint import (
    CHECKPOINT_NAME,
    REJECTED_NAME,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from harness.core.records import DamagedRecord, read_json, read_jsonl, read_manifest
from harness.core.sweep_file import SWEEP_FILE, load_sweep, unfinished
from harness.core.trial import run_trial
from harness.errors import UserError
from harness.orchestration.status import collect
from harness.orchestration.tune import run_tune
from submissions.sgd import SGD
from workloads.fashion_mnist import generated_root

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parent.parent
UNREACHABLE = "workload.sizes.smoke.target=2.0"
SMOKE = ["workload=fashion_mnist", "workload.size=smoke", "progress=false", "device=cpu", "threads=1"]


def child_env() -> dict[str, str]:
    """The environment of an ``optbench`` child: this session's, read when the child starts (the
    test cache of conftest.py is set after this module is imported), and this repository."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


def optbench(*args: str, preexec=None, **kwargs) -> subprocess.CompletedProcess:
    """``optbench`` in a child process (exit codes, signals, resource limits are its own)."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=child_env(),
                          cwd=REPO, preexec_fn=preexec, timeout=300, **kwargs)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ checkpoints
class Exploit:
    """Unpickling this runs a shell command: what a crafted checkpoint.pt would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_checkpoint_is_never_unpickled(smoke_cfg, tmp_path: Path) -> None:
    record_dir = tmp_path / "travelled" / "trial"
    record_dir.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    torch.save({"config_hash": "whatever", "step": 5, "payload": Exploit(marker)}, record_dir / CHECKPOINT_NAME)

    messages: list[str] = []
    cfg = smoke_cfg("max_steps=20", UNREACHABLE, f"record_dir={record_dir}", "progress=true")
    original = runner.Progress.say
    runner.Progress.say = lambda self, text: messages.append(text)  # type: ignore[method-assign]
    try:
        summary = run_trial(cfg)
    finally:
        runner.Progress.say = original  # type: ignore[method-assign]
    assert not marker.exists()  # no code from the file ran
    assert summary["status"] == "not_reached" and summary["steps"] == 20  # started cleanly from step 0
    assert any(str(record_dir / CHECKPOINT_NAME) in m and "starting from step 0" in m for m in messages)
    assert (record_dir / REJECTED_NAME).is_file()  # kept aside for inspection, never loaded again


def test_safe_loading_reads_back_everything_the_harness_saves(tmp_path: Path) -> None:
    """weights_only loading accepts the RNG states and optimizer state a checkpoint holds."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = {"config_hash": "abc", "rng": capture_rng(torch.device("cpu")),
             "submission": {"opt": optimizer.state_dict()}}
    save_checkpoint(tmp_path, state)
    drawn = (torch.rand(2), np.random.rand(2), random.random())
    loaded = load_checkpoint(tmp_path, "abc")
    assert loaded is not None
    restore_rng(loaded["rng"], torch.device("cpu"))
    assert torch.equal(drawn[0], torch.rand(2)) and np.array_equal(drawn[1], np.random.rand(2))
    assert drawn[2] == random.random()
    assert loaded["submission"]["opt"]["param_groups"][0]["betas"] == (0.9, 0.95)


# ------------------------------------------------------------------------------ harness failures
def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))


def test_a_record_that_cannot_be_resumed_is_one_paragraph_and_kept(tmp_path: Path, capsys,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted trial's evals.jsonl made immutable (chattr +i): resuming it was a PermissionError
    traceback from the record's atomic replace."""
    from harness.cli import main
    from harness.core.records import TrialRecord

    args = ["trial", *SMOKE, "submission=adamw", UNREACHABLE, "max_steps=40", "checkpoint_every_s=0",
            "workload.sizes.smoke.eval_every_steps=20", f"results={tmp_path}"]
    finished = TrialRecord.finish
    monkeypatch.setattr(TrialRecord, "finish", lambda self, summary: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(args) == 130  # interrupted at its end: a checkpoint and a running record are left
    monkeypatch.setattr(TrialRecord, "finish", finished)
    manifest = next(tmp_path.rglob("manifest.json"))
    kept = manifest.read_bytes()

    def immutable(self, step, attempt):
        raise PermissionError(1, "Operation not permitted", str(self.dir / "evals.jsonl"))

    monkeypatch.setattr(TrialRecord, "resume", immutable)
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"Could not resume the trial's record in {manifest.parent} (Operation not permitted" in err, err
    assert "Traceback" not in err and manifest.read_bytes() == kept


def test_a_failed_checkpoint_write_is_the_harness_failure_and_a_rerun_retries(tmp_path: Path) -> None:
    args = ["trial", *SMOKE, "submission=adamw", UNREACHABLE, "max_steps=60", "checkpoint_every_s=0",
            "workload.sizes.smoke.eval_every_steps=20", "progress=true", f"results={tmp_path}"]
    generated_root(0)  # the smoke data, written before the limit (it is cached: a later test may be the first)
    first = optbench(*args, preexec=_limit_file_size)
    assert first.returncode == 1, first.stderr
    summary = last_json(first.stdout)
    assert summary["status"] == "failed" and summary["error_in"] == "harness"
    assert "File too large" in summary["error_message"]
    assert summary["steps"] == 20 and summary["best_validation"] is not None  # what it had trained is kept
    assert "FAILED in the harness" in first.stderr + first.stdout
    assert "free space where the records are" in first.stderr, first.stderr  # what to do, for a full disk
    record_dir = Path(summary["record_dir"])
    assert not list(record_dir.glob(".*.tmp"))  # no temporary file left behind

    again = optbench(*args)
    assert again.returncode == 0, again.stderr
    assert last_json(again.stdout)["status"] == "not_reached" and last_json(again.stdout)["steps"] == 60
    assert "running it again" in again.stderr + again.stdout
    assert read_json(record_dir / "manifest.json")["status"] == "not_reached"


def test_a_harness_failure_after_a_checkpoint_resumes_from_it(smoke_cfg, tmp_path: Path, monkeypatch) -> None:
    settings = ["submission=adamw", UNREACHABLE, "max_steps=60", "checkpoint_every_s=0",
                "workload.sizes.smoke.eval_every_steps=20"]
    reference = run_trial(smoke_cfg(*settings, f"results={tmp_path / 'a'}"))
    real_save, calls = runner.save_checkpoint, []

    def full_disk_on_the_second_write(folder, state, **options):
        calls.append(state["step"])
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_save(folder, state, **options)

    monkeypatch.setattr(runner, "save_checkpoint", full_disk_on_the_second_write)
    failed = run_trial(smoke_cfg(*settings, f"results={tmp_path / 'b'}"))
    assert failed["status"] == "failed" and failed["error_in"] == "harness" and failed["steps"] == 40
    assert failed["error_message"] == "OSError: [Errno 28] No space left on device"
    monkeypatch.setattr(runner, "save_checkpoint", real_save)
    again = run_trial(smoke_cfg(*settings, f"results={tmp_path / 'b'}"))
    rows = read_jsonl(Path(again["record_dir"]) / "evals.jsonl")
    assert [r["step"] for r in rows if r["event"] == "resume"] == [20]  # from the checkpoint that was written
    assert sum(r["event"] == "end" for r in rows) == 1 and rows[-1]["status"] == "not_reached"
    evals = {r["step"]: r["metrics"] for r in rows if r["event"] == "eval"}
    expected = {r["step"]: r["metrics"] for r in read_jsonl(Path(reference["record_dir"]) / "evals.jsonl")
                if r["event"] == "eval"}
    assert evals == expected  # as if nothing had happened


def test_a_sweep_retries_the_trials_the_harness_failed(tmp_path: Path, monkeypatch) -> None:
    def full_disk(folder, state, **options):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "save_checkpoint", full_disk)
    settings = [*SMOKE, "submission=momentum", "studies=1", "trials=2", "max_steps=30", UNREACHABLE,
                "checkpoint_every_s=0", "workload.sizes.smoke.eval_every_steps=10", "prune=false",
                f"results={tmp_path}", "poll_s=0.5"]
    first = run_tune(settings, log=lambda _: None)
    assert first["launched"] == 2 and first["unfinished"] == 2 and "failed by the harness 2" in first["error"]
    assert main(["tune", *settings]) == 1  # exit 1: launched trials did not end
    monkeypatch.undo()  # the disk has room again: both are retried and end
    assert main(["tune", *settings]) == 0
    again = run_tune(settings, log=lambda _: None)
    assert again["launched"] == 0 and again["counts"] == {"not_reached": 2}


def test_leftover_temporary_files_are_removed_when_a_trial_starts(smoke_cfg, tmp_path: Path) -> None:
    record_dir = tmp_path / "trial"
    record_dir.mkdir()
    leftover = record_dir / f".{CHECKPOINT_NAME}.99999.tmp"
    leftover.write_bytes(b"x" * 1000)  # from a process killed mid-write
    run_trial(smoke_cfg("max_steps=10", f"record_dir={record_dir}"))
    assert not leftover.exists()


# ------------------------------------------------------------------------------ submissions that exit
class ExitsAtStep5(SGD):
    exception: type[BaseException] = SystemExit
    calls = 0

    def update(self, batch, compute_loss):
        type(self).calls += 1
        if type(self).calls == 5:
            raise self.exception("the submission gave up")
        return super().update(batch, compute_loss)


@pytest.mark.parametrize("exception", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_submission_that_raises_a_base_exception_fails_its_trial_only(smoke_cfg, monkeypatch, exception) -> None:
    ExitsAtStep5.calls, ExitsAtStep5.exception = 0, exception
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: ExitsAtStep5)
    summary = run_trial(smoke_cfg("submission=sgd", UNREACHABLE, "max_steps=20"))
    assert summary["status"] == "failed" and summary["error_in"] == "submission.update"
    assert summary["steps"] == 4 and exception.__name__ in summary["error"]
    assert read_json(Path(summary["record_dir"]) / "manifest.json")["status"] == "failed"


def test_a_sweep_goes_on_after_a_submission_calls_sys_exit(tmp_path: Path, monkeypatch) -> None:
    ExitsAtStep5.calls, ExitsAtStep5.exception = 0, SystemExit
    monkeypatch.setattr(runner, "submission_class", lambda name, source=None: ExitsAtStep5)
    outcome = run_tune([*SMOKE, "submission=sgd", "studies=1", "trials=3", "max_steps=30", UNREACHABLE,
                        f"results={tmp_path}", "poll_s=0.5"], log=lambda _: None)
    assert outcome["launched"] == 3
    assert outcome["counts"] == {"failed": 1, "not_reached": 2}  # the first trial failed; the rest ran


def test_a_real_ctrl_c_stops_the_trial_and_leaves_it_resumable(tmp_path: Path) -> None:
    args = ["trial", *SMOKE, "submission=adamw", UNREACHABLE, "max_steps=100000", "checkpoint_every_s=0",
            f"results={tmp_path}"]
    child = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env=child_env(), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.rglob(CHECKPOINT_NAME)):
        time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    manifest = read_json(next(tmp_path.rglob("manifest.json")))
    assert manifest["status"] == "running"  # not 'failed': the user stopped it, a rerun resumes it
    assert list(tmp_path.rglob(CHECKPOINT_NAME))


# ------------------------------------------------------------------------------ one process per trial
@pytest.mark.timeout(300)  # several processes: 20-55 s here on 2 busy cores
def test_a_second_run_of_a_running_trial_refuses_with_the_holders_identity(tmp_path: Path) -> None:
    # 25 s of training: the second command must reach its lock check (a fresh interpreter, torch's import,
    # Hydra's composition: 4-8 s here, more on busy cores) while the first still holds the lock
    args = ["trial", *SMOKE, "submission=adamw", UNREACHABLE, "max_steps=1000000", "max_runtime_s=25",
            "checkpoint_every_s=0", f"results={tmp_path}"]
    first = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env=child_env(), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.rglob("evals.jsonl")):
        time.sleep(0.1)
    second = optbench(*args)
    out, _ = first.communicate(timeout=300)
    assert second.returncode == 1, second.stderr
    assert "already running" in second.stderr and f"pid {first.pid}" in second.stderr
    assert first.returncode == 0
    rows = read_jsonl(Path(last_json(out)["record_dir"]) / "evals.jsonl")
    steps = [r["step"] for r in rows if r["event"] == "eval"]
    assert len(steps) == len(set(steps)) and sum(r["event"] == "end" for r in rows) == 1


def test_a_lock_left_by_a_killed_process_does_not_block(smoke_cfg, tmp_path: Path) -> None:
    record_dir = tmp_path / "trial"
    record_dir.mkdir()
    (record_dir / ".lock").write_text(json.dumps({"host": "gone", "pid": 1}))  # its holder died with kill -9
    summary = run_trial(smoke_cfg("max_steps=10", f"record_dir={record_dir}"))
    assert summary["status"] in ("reached", "not_reached")
    assert not (record_dir / ".lock").exists()


# ------------------------------------------------------------------------------ damaged and moved records
@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("sweep") / "results"
    run_tune([*SMOKE, "submission=momentum", "studies=2", "trials=2", "max_steps=20", f"results={results}",
              "poll_s=0.5"], log=lambda _: None)
    return results


@pytest.fixture
def sweep_copy(finished_sweep: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(finished_sweep, copy)
    return copy


DAMAGE = {
    "garbage": lambda text: "\x00\x13not json at all",
    "empty": lambda text: "",
    "a list": lambda text: "[1, 2, 3]",
    "no workload": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "workload"}),
    "a text time": lambda text: json.dumps({**json.loads(text), "summary": {
        **json.loads(text)["summary"], "time_to_target_s": "fast"}}),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_status_lists_a_damaged_manifest_and_names_it(sweep_copy: Path, damage: str, capsys) -> None:
    manifest = next(sweep_copy.rglob("trial1/manifest.json"))
    manifest.write_text(DAMAGE[damage](manifest.read_text()))
    with pytest.raises(DamagedRecord, match=str(manifest).replace(".", r"\.")):
        read_manifest(manifest)
    rows = collect(sweep_copy, ask_scheduler=False)
    damaged = [r for r in rows if r["state"] == "damaged"]
    assert len(rows) == 4 and len(damaged) == 1 and str(manifest) in damaged[0]["problem"]
    assert main(["status", f"results={sweep_copy}", "scheduler=false"]) == 0
    printed = capsys.readouterr().out
    assert str(manifest) in printed and "damaged 1" in printed
    before = manifest.read_bytes()
    assert main(["status", f"results={sweep_copy}", "scheduler=false", "strict=true"]) == 1
    assert manifest.read_bytes() == before  # a reader never rewrites a record


def test_tune_does_not_rerun_or_overwrite_a_damaged_trial(sweep_copy: Path) -> None:
    manifest = next(sweep_copy.rglob("study1/trial0/manifest.json"))
    manifest.write_text("{torn")
    messages: list[str] = []
    outcome = run_tune([*SMOKE, "submission=momentum", "studies=2", "trials=2", "max_steps=20",
                        f"results={sweep_copy}", "poll_s=0.5"], log=messages.append)
    assert outcome["launched"] == 0 and manifest.read_text() == "{torn"
    assert any(str(manifest) in m for m in messages)
    # not counted as finished: before, "all 4 trials already finished" followed the damaged one's line
    assert "3 of 4 trials already finished, 1 damaged (left as they are); nothing launched" in messages, messages


def test_status_reports_a_damaged_sweep_file(sweep_copy: Path) -> None:
    path = next(sweep_copy.rglob(SWEEP_FILE))
    path.write_text(json.dumps({"kind": "optbench-sweep", "trials": "nope"}))
    rows = collect(sweep_copy, ask_scheduler=False)
    assert [r["state"] for r in rows] == ["damaged"] and str(path) in rows[0]["problem"]


def test_a_moved_results_folder_keeps_working(sweep_copy: Path, tmp_path: Path) -> None:
    sweep_file = next(sweep_copy.rglob(SWEEP_FILE))
    assert str(sweep_copy) not in sweep_file.read_text()  # no absolute path in the plan
    moved = tmp_path / "elsewhere" / "results"
    moved.parent.mkdir()
    sweep_copy.rename(moved)
    rows = collect(moved, ask_scheduler=False)
    assert {r["state"] for r in rows} <= {"done-reached", "done-not-reached", "done-pruned"}
    assert all(r["record_dir"].startswith(str(moved)) for r in rows)
    sweep = load_sweep(next(moved.rglob(SWEEP_FILE)).parent)
    assert not unfinished(sweep)
    outcome = run_tune([*SMOKE, "submission=momentum", "studies=2", "trials=2", "max_steps=20",
                        f"results={moved}", "poll_s=0.5"], log=lambda _: None)
    assert outcome["launched"] == 0 and not sweep_copy.exists()  # nothing re-created at the old place


# ------------------------------------------------------------------------------ bad settings and outputs
@pytest.mark.parametrize("where", ["a file", "/proc"])
@pytest.mark.parametrize("command", ["trial", "tune"])
def test_an_unwritable_results_folder_is_one_clear_error(tmp_path: Path, where: str, command: str, capsys) -> None:
    target = tmp_path / "a-file" if where == "a file" else Path("/proc/optbench-results")
    if where == "a file":
        target.write_text("not a folder")
    extra = ["studies=1", "trials=1"] if command == "tune" else []
    assert main([command, *SMOKE, "max_steps=5", f"results={target}", *extra]) == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and f"results= (now '{target}')" in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


@pytest.mark.parametrize("hidden", ["abc", "-5"])
def test_a_model_option_the_model_cannot_be_built_with_is_refused_before_any_record(
        hidden: str, tmp_path: Path, capsys) -> None:
    # was: "FAILED in the harness ... running the same command again retries it" (exit 1), a failed record
    assert main(["trial", *SMOKE, "max_steps=5", f"results={tmp_path}", f"workload.model_options.hidden={hidden}"]) == 2
    said = capsys.readouterr().err
    assert "The workload's build_model() with model options {" in said and f"hidden={hidden!r}" in said.replace(
        "hidden=-5", "hidden='-5'"), said
    assert not list(tmp_path.rglob("manifest.json"))


def test_an_unwritable_record_dir_is_named_as_the_setting_to_fix(tmp_path: Path, capsys) -> None:
    # was: "Set results= (now ...)", a setting that did not choose the folder
    assert main(["trial", *SMOKE, "max_steps=5", f"results={tmp_path}", "record_dir=/proc/optbench-record"]) == 2
    assert "Set record_dir= (now '/proc/optbench-record')" in capsys.readouterr().err


def test_an_unwritable_out_folder_is_one_clear_error_before_any_work(finished_sweep: Path, tmp_path: Path,
                                                                      capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["score", f"results={finished_sweep}", f"out={blocker}", "bootstrap=0"]) == 2
    assert main(["suite", "suite=smoke", "workloads=[fashion_mnist]", "submissions=[sgd]", "studies=1", "trials=1",
                 f"results={tmp_path / 'results'}", f"out={blocker / 'suite'}", "progress=false"]) == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and stderr.count(f"Set out= (now '{blocker}") == 2
    assert not list((tmp_path / "results").rglob("manifest.json"))  # no trial ran before the refusal


def test_the_program_ends_score_at_once_with_all_its_output_and_status(finished_sweep: Path, tmp_path: Path) -> None:
    """``optbench score`` skips the interpreter's teardown (harness.cli.entry): its table, its JSON
    line and its files must still all be there, and a refusal must still exit 2."""
    out = tmp_path / "board"
    buffered = {k: v for k, v in child_env().items() if k != "PYTHONUNBUFFERED"}  # stdout to a pipe: block-buffered
    done = subprocess.run([sys.executable, "-m", "harness.cli", "score", f"results={finished_sweep}", f"out={out}",
                           "bootstrap=40"], capture_output=True, text=True, env=buffered, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| momentum" in done.stdout and json.loads(done.stdout.strip().splitlines()[-1])["html"] == \
        str(out / "leaderboard.html")
    assert "wrote" in done.stderr and (out / "leaderboard.html").stat().st_size > 0
    refused = optbench("score", f"results={finished_sweep}", "tau_max=1")
    assert refused.returncode == 2 and "tau_max=1" in refused.stderr and refused.stdout == ""


@pytest.mark.parametrize("override, expected", [
    ("submission.hparams.lr=inf", "finite"),
    ("submission.hparams.lr=nan", "finite"),
    ("max_runtime_s=inf", "finite"),
    ("data_dir=", "data_dir is empty"),
    ("workload.size=../../../esc", "usable name"),
    ("workload.variant=../x", "usable name"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path: Path, override: str, expected: str,
                                                             capsys) -> None:
    assert main(["trial", *SMOKE, override, f"results={tmp_path / 'results'}"]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "results").exists() and not list(tmp_path.parent.glob("esc*"))


def test_a_trial_stopped_by_max_steps_says_so(smoke_cfg, capsys) -> None:
    summary = run_trial(smoke_cfg(UNREACHABLE, "max_steps=15", "progress=true"))
    assert summary["status"] == "not_reached" and summary["stopped_by"] == "max_steps"
    assert "within max_steps (15 steps)" in capsys.readouterr().err


def test_a_closed_pipe_is_not_a_traceback() -> None:
    done = subprocess.run(f"{sys.executable} -m harness.cli list | head -n 1", shell=True, capture_output=True,
                          text=True, env=child_env(), cwd=REPO, timeout=120)
    assert done.stdout.strip() and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_differences_lists_what_makes_two_digests_differ() -> None:
    from harness.identity import differences

    # as the digest sees values (1 and 1.0 differ), settings both hold before those one holds, long values cut
    found = differences({"a": 1, "b": {"c": [1, 2]}, "z": 0}, {"a": 1.0, "b": {"c": [1, 2]}, "d": "x" * 80})
    assert found == f'a: 1 -> 1.0; d: (absent) -> "{"x" * 56}...; z: 0 -> (absent)'
    assert differences({"a": 1}, {"a": 1}) == ""
    assert differences({f"k{i}": i for i in range(7)}, {}, limit=5).endswith("; and 2 more")


def test_a_record_dir_of_another_configuration_names_the_setting_that_differs(smoke_cfg, tmp_path: Path) -> None:
    """A sweep's record folder holding another trial is left alone, and the error says what differs
    (from the recorded identity; from the whole config for a record made before it was stored)."""
    record_dir = tmp_path / "trial0"
    run_trial(smoke_cfg("max_steps=10", f"record_dir={record_dir}"))
    manifest = record_dir / "manifest.json"
    kept = manifest.read_text()
    with pytest.raises(UserError, match=r"another configuration .*recorded -> this one: hparams\.lr: 0\.002 -> "
                                        r"0\.004\).*left untouched"):
        run_trial(smoke_cfg("max_steps=10", f"record_dir={record_dir}", "submission.hparams.lr=0.004"))
    assert manifest.read_text() == kept
    old = json.loads(kept)
    del old["identity"]  # a record made before manifests held their identity
    manifest.write_text(json.dumps(old))
    with pytest.raises(UserError, match=r"recorded -> this one: submission\.hparams\.lr: 0\.002 -> 0\.004\)"):
        run_trial(smoke_cfg("max_steps=10", f"record_dir={record_dir}", "submission.hparams.lr=0.004"))


def test_status_strict_refuses_what_score_strict_refuses(sweep_copy: Path, capsys) -> None:
    """A manifest edited to another outcome than its evals.jsonl ends with: status read the manifest
    alone and said every trial had ended (exit 0), while score strict=true refused the record as
    damaged (exit 1). One question, "are these records complete?", now has one answer."""
    manifest_path = next(sweep_copy.rglob("trial1/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    flipped = "reached" if manifest["summary"]["status"] != "reached" else "not_reached"
    manifest["status"] = manifest["summary"]["status"] = flipped
    manifest_path.write_text(json.dumps(manifest))
    assert main(["status", f"results={sweep_copy}", "scheduler=false"]) == 0  # a listing: not refused
    capsys.readouterr()
    assert main(["score", f"results={sweep_copy}", f"out={sweep_copy.parent / 'board'}", "strict=true"]) == 1
    score_said = capsys.readouterr().err
    assert main(["status", f"results={sweep_copy}", "scheduler=false", "strict=true"]) == 1
    err = capsys.readouterr().err
    assert str(manifest_path.parent) in err and str(manifest_path.parent) in score_said, err


def test_status_strict_refuses_records_that_score_would_refuse_to_compare(sweep_copy: Path, capsys) -> None:
    """A results folder holding a copy of a sweep (results brought back from another machine into a
    subfolder) passed status strict=true (exit 0), and score then refused it (exit 2)."""
    workload = next(sweep_copy.rglob("sweep.json")).parents[2]  # <workload-size>/<submission>/<sweep>/sweep.json
    shutil.copytree(workload, sweep_copy / "machineB" / workload.name)
    assert main(["score", f"results={sweep_copy}", f"out={sweep_copy.parent / 'board'}"]) == 2
    score_said = capsys.readouterr().err
    assert main(["status", f"results={sweep_copy}", "scheduler=false"]) == 0  # a listing: not refused
    capsys.readouterr()
    assert main(["status", f"results={sweep_copy}", "scheduler=false", "strict=true"]) == 2
    err = capsys.readouterr().err
    assert "come from 2 sweeps" in score_said and "come from 2 sweeps" in err and "optbench score" in err, err


def test_status_says_what_its_rows_cannot_show(sweep_copy: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trials of a sweep whose sweep.json was lost were left out of status's listing without a
    word (exit 0, totals without them); a record copied over another slot was listed as that
    slot's, done. Both are now said (as score says them), still with exit 0 unless strict=true."""
    other = next(sweep_copy.rglob("study1/trial1"))
    shutil.rmtree(next(sweep_copy.rglob("study0/trial1")))
    shutil.copytree(other, other.parent.parent / "study0" / "trial1")  # another slot's record, copied over
    assert main(["status", f"results={sweep_copy}", "scheduler=false"]) == 0
    captured = capsys.readouterr()
    assert "study 0 trial 1" in captured.out and "not the trial the sweep's plan" in captured.out, captured.out
    monkeypatch.chdir(sweep_copy.parent)  # results= as a relative path (its default, results): the same rows
    assert main(["status", f"results={sweep_copy.name}", "scheduler=false"]) == 0
    relative = capsys.readouterr()
    assert relative.out.count("not the trial the sweep's plan") == 1 and not relative.err, relative
    sweep_file = next(sweep_copy.rglob("sweep.json"))
    sweep_file.unlink()
    assert main(["status", f"results={sweep_copy}", "scheduler=false"]) == 0
    captured = capsys.readouterr()
    assert str(sweep_file) in captured.err and "found without a plan" in captured.err, captured.err
    assert main(["status", f"results={sweep_copy}", "scheduler=false", "strict=true"]) == 1


def test_status_of_a_copied_results_folder_shows_the_copy_s_logs(finished_sweep: Path, sweep_copy: Path) -> None:
    """A record's attempt names its log by the path it was written at; in a copy (a results folder
    brought back from a cluster) status showed those paths, into the original folder."""
    rows = collect(sweep_copy, ask_scheduler=False)
    assert len(rows) == 4 and all(row["logs"] for row in rows)
    for row in rows:
        assert Path(row["logs"]).resolve().is_relative_to(sweep_copy.resolve()), row["logs"]
    shutil.rmtree(finished_sweep / "launches")  # the original's logs gone: the copy's are still shown
    assert all(Path(row["logs"]).exists() for row in collect(sweep_copy, ask_scheduler=False))


# ------------------------------------------------------------------------------ a killed command's processes
def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    found, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(children - found)
            found |= children
    return found


def _alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (not gone, not zombies)."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _killed_while_training(command: list[str], tmp_path: Path) -> set[int]:
    """Start ``command``; once a trial's record has begun and it has trained a few seconds, kill -9
    it; what still runs below it 15 s later."""
    started = subprocess.Popen([sys.executable, "-m", "harness.cli", *command], cwd=REPO, env=child_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.rglob("manifest.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(tmp_path.rglob("manifest.json")), "no trial began"
        time.sleep(4)  # training
        below = _descendants(started.pid)
        started.kill()
        started.wait()
        deadline = time.monotonic() + 15
        while _alive(below) and time.monotonic() < deadline:
            time.sleep(0.2)
        return _alive(below)
    finally:
        for pid in _alive(_descendants(started.pid)) | {started.pid}:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


TIME_BASED = ["workload.sizes.smoke.eval_every_steps=null", "workload.sizes.smoke.eval_period_s=60",
              "max_runtime_s=100"]  # the trainer runs for a minute between evaluations, unless told to stop


def test_a_trainer_ends_with_its_harness_killed(tmp_path: Path) -> None:
    """kill -9 of `optbench trial isolation=process` left its trainer training (until its next
    evaluation, a minute here, or for good): it waited for a stop only the harness sends."""
    left = _killed_while_training(["trial", *SMOKE, "submission=sgd", UNREACHABLE, "isolation=process", *TIME_BASED,
                                   f"results={tmp_path}"], tmp_path)
    assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes()[:100] for pid in left]


def test_a_parallel_launcher_s_workers_end_with_the_tune_killed(tmp_path: Path) -> None:
    """kill -9 of `optbench tune launcher=parallel` left its pool's workers, with their data
    (0.7-1 GB each on the real data), for minutes."""
    left = _killed_while_training(["tune", *SMOKE, "submission=sgd", UNREACHABLE, "launcher=parallel", *TIME_BASED,
                                   "studies=1", "trials=2", f"results={tmp_path}"], tmp_path)
    assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes()[:100] for pid in left]
