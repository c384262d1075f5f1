"""Data-parallel trials (harness/core/distributed.py): ``nproc=2`` on the CPU with gloo trains the
same trial as one process with the same global batch, writes one record, refuses what it cannot
do, and resumes from its checkpoint after the whole job is killed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from harness.core.checkpoint import CHECKPOINT_NAME
from harness.core.records import read_json, read_jsonl
from harness.core.trial import run_trial
from harness.errors import UserError

REPO = Path(__file__).resolve().parent.parent
UNREACHABLE = "workload.sizes.smoke.target=2.0"
# Gradients are averaged over the ranks (a sum in another order than one batch's): the evaluations
# agree to float32 rounding (1.6e-7 relative measured over 30 AdamW steps), asserted to 1e-5.
TOLERANCE = 1e-5


def evaluations(record_dir: Path) -> list[dict]:
    return [e for e in read_jsonl(record_dir / "evals.jsonl") if e["event"] == "eval"]


def assert_same_evaluations(one: Path, two: Path) -> None:
    ours, theirs = evaluations(two), evaluations(one)
    assert [e["step"] for e in ours] == [e["step"] for e in theirs] and ours
    for a, b in zip(ours, theirs, strict=True):
        assert a["metrics"].keys() == b["metrics"].keys()
        for name, value in a["metrics"].items():  # train/loss too: the mean of the ranks' slices
            assert value == pytest.approx(b["metrics"][name], rel=TOLERANCE, abs=1e-7), (a["step"], name)


def test_two_processes_train_as_one_with_the_same_global_batch(smoke_cfg, results: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ("workload.sizes.smoke.eval_every_steps=5", "threads=1", "max_runtime_s=60")
    one = run_trial(smoke_cfg(*settings))
    temporary = tmp_path / "tmp"  # this process's and the launcher's temporary folder
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setenv("TMPDIR", str(temporary))
    started = time.monotonic()
    two = run_trial(smoke_cfg(*settings, "nproc=2"))
    assert list(temporary.iterdir()) == []  # torch's launcher's logs too: nothing is left behind
    assert two["status"] == one["status"] == "reached" and two["steps"] == one["steps"]
    assert time.monotonic() - started < 60  # the follower is ended when rank 0 ends the trial
    assert_same_evaluations(Path(one["record_dir"]), Path(two["record_dir"]))
    manifest = read_json(Path(two["record_dir"]) / "manifest.json")
    assert manifest["nproc"] == 2 and read_json(Path(one["record_dir"]) / "manifest.json")["nproc"] == 1
    assert two["record_dir"] != one["record_dir"]  # another identity: the hash of a 1-process trial is unchanged
    assert len(list(results.rglob("manifest.json"))) == 2  # rank 0 alone wrote the 2-process trial's record


FAILING_SUBMISSION = """
import builtins
import os

import torch
import torch.distributed as dist

from submissions.sgd import SGD


class Deferred(torch.Tensor):  # a loss whose read raises, as a CUDA loss after a device-side assert in the step
    def item(self):
        raise getattr(builtins, os.environ["FAIL_WITH"])("rank 1 fails on purpose at the harness's read of its loss")


class Failing(SGD):
    steps = 0

    def fails_here(self, where):
        if self.steps == 30 and os.environ["FAIL_WHERE"] == where and dist.get_rank() == 1:
            raise getattr(builtins, os.environ["FAIL_WITH"])(f"rank {dist.get_rank()} fails on purpose {where}")

    def update(self, batch, compute_loss):
        self.steps += 1
        self.fails_here("before its backward")
        loss = super().update(batch, compute_loss)
        self.fails_here("after its backward")
        if self.steps == 30 and os.environ["FAIL_WHERE"].startswith("at the harness") and dist.get_rank() == 1:
            return loss.as_subclass(Deferred)
        return loss

    def prepare_for_eval(self):
        self.fails_here("in prepare_for_eval")
        super().prepare_for_eval()
"""


def two_process_trial(folder: Path, source: str, name: str, *settings: str,
                      **env: str) -> subprocess.CompletedProcess:
    """``optbench trial nproc=2`` on the smoke size of SGD's subclass ``name`` in ``source`` (written to
    ``folder``, beside a config of its own), its records in ``folder/results``."""
    (folder / "sub.py").write_text(source)
    (folder / "sub.yaml").write_text((REPO / "configs" / "submission" / "sgd.yaml").read_text()
                                     .replace("name: sgd", f"name: {name.lower()}"))
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "trial", "workload.size=smoke", UNREACHABLE, "threads=1", "nproc=2",
         "progress=false", "device=cpu", f"results={folder / 'results'}", f"submission={folder / 'sub.py'}:{name}",
         *settings],
        env={**os.environ, "PYTHONPATH": str(REPO), **env}, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("where", "part", "error"), [
    ("before its backward", "submission.update", "RuntimeError"),
    ("after its backward", "submission.update", "SystemExit"),
    ("in prepare_for_eval", "submission.prepare_for_eval", "RuntimeError"),
    ("at the harness's read of its loss", "submission.update", "RuntimeError"),  # a CUDA fault surfaces there
])
def test_a_rank_s_failure_is_recorded_as_the_trial_s(where: str, part: str, error: str, tmp_path: Path) -> None:
    """A submission that raises in rank 1 alone: rank 0 records the trial as failed in the part of
    the submission that raised, with rank 1's traceback (torch's launcher, which ends every rank
    once one exits with an error, does not end rank 0 before that), and the command exits 3 as for
    a one-process failure. Rank 0 meets rank 1's failure
    in another place each time: DDP's gradient exchange, the ranks' agreement after the step, or
    the agreement at the evaluation. Submission code's own ``sys.exit()`` is its failure, as in rank 0
    (no signal arrived): not the harness's, which a rerun would retry."""
    results = tmp_path / "results"
    done = two_process_trial(tmp_path, FAILING_SUBMISSION, "Failing", "max_runtime_s=60",
                             "workload.sizes.smoke.eval_every_steps=30", FAIL_WHERE=where, FAIL_WITH=error)
    assert done.returncode == 3, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "failed"
    summary = read_json(next(results.rglob("manifest.json")))["summary"]
    assert summary["status"] == "failed" and summary["error_in"] == part
    assert summary["steps"] == (29 if where == "before its backward" else 30)
    assert f"{error}: rank 1 fails on purpose {where}" in summary["error"]
    assert f"{error}: rank 1 fails on purpose {where}" in done.stderr
    assert_no_rank_survives(results)


ONE_RANK_NAN_SUBMISSION = """
import time

import torch
import torch.distributed as dist

from submissions.sgd import SGD


class OneRankNan(SGD):
    steps = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if dist.get_rank() == 1:
            time.sleep(1.0)  # rank 1's construction is the slow one

    def update(self, batch, compute_loss):
        self.steps += 1
        loss = super().update(batch, compute_loss)
        return torch.full_like(loss, float("nan")) if self.steps == 3 and dist.get_rank() == 1 else loss
"""


def test_a_non_finite_loss_of_one_rank_between_checks_is_divergence(tmp_path: Path) -> None:
    """With divergence_check_every=5, a follower's non-finite loss at step 3 (and a finite one at
    step 5) counts at step 5, as rank 0's own would: every loss since the start counts, on each rank.
    The follower's slow construction is in the charged time: the slowest rank's clock."""
    results = tmp_path / "results"
    done = two_process_trial(tmp_path, ONE_RANK_NAN_SUBMISSION, "OneRankNan", "max_steps=20",
                             "divergence_check_every=5")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["steps"]) == ("diverged", 5), summary
    # the charged time is the slowest rank's, its construction included, also for a trial that diverged
    assert summary["submission_time_s"] >= 1.0, summary
    assert_no_rank_survives(results)


def test_a_failed_rank_exits_0_under_torch_s_launcher(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """torchrun ends every rank as soon as one exits with an error: a failed rank's status there
    must be 0, or rank 0 can be ended before it records the failure (a race the test above
    cannot force). Under SLURM (no torchrun) the status is 1: srun does not end the other tasks."""
    from harness.core.distributed import TORCHRUN_RUN, _failed_alone

    monkeypatch.setenv(TORCHRUN_RUN, "run")
    summary = tmp_path / "summary.json"
    error = RuntimeError("on purpose")
    assert _failed_alone(1, error, summary) == 0
    monkeypatch.delenv(TORCHRUN_RUN)
    assert _failed_alone(1, error, summary) == 1
    assert "rank 1 of the data-parallel trial stopped on the error below" in capsys.readouterr().err
    told = json.loads((tmp_path / "summary.rank1").read_text())  # for rank 0's record
    assert told["error_in"] == "harness" and "RuntimeError: on purpose" in told["error"]


def test_a_workload_with_gradient_noise_trains_as_one_process(smoke_cfg) -> None:
    """Rosenbrock's cpu size draws its gradient noise from the batch: two ranks, each with half the
    draws, reach the one-process point (its loss once read ``model.x`` past DDP's wrapper)."""
    settings = ("workload=rosenbrock", "workload.size=cpu", "submission=sgd", "submission.hparams.lr=1e-4",
                "max_steps=200", "threads=1", "workload.sizes.cpu.eval_every_steps=100",
                "submission.hparams.batch_size=16")
    one = run_trial(smoke_cfg(*settings))
    two = run_trial(smoke_cfg(*settings, "nproc=2"))
    assert two["status"] == one["status"] and two["steps"] == one["steps"] == 200, two
    assert_same_evaluations(Path(one["record_dir"]), Path(two["record_dir"]))


def test_reading_the_model_past_ddp_s_wrapper_is_named(tmp_path: Path) -> None:
    import torch.distributed as dist

    from harness.core.team import DataParallelModel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = DataParallelModel(torch.nn.Linear(2, 1))
        assert model.module.weight.shape == (1, 2)  # its own attributes are still there
        with pytest.raises(AttributeError, match=r"'weight' was read from the model of a data-parallel trial .* "
                                                 r"calls model\(\.\.\.\)"):
            getattr(model, "weight")  # noqa: B009 (the read is the test)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("rank_0_refuses", [True, False])
def test_a_follower_that_refuses_first_waits_for_rank_0_under_torch_s_launcher(
        smoke_cfg, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path,
        rank_0_refuses: bool) -> None:
    """Missing data is refused by every rank; when rank 1 meets it before rank 0 has written its
    refusal, a non-zero status would make torchrun end rank 0 and print its failure report. Rank 1
    waits for rank 0's refusal instead (and when none comes, says its own, still with status 0)."""
    import threading

    from harness.config.compose import to_plain
    from harness.core import distributed
    from harness.core import team as team_module

    summary = tmp_path / "summary.json"
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *args, **kwargs: None)
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: None)
    # waiting for a refusal that comes: long, so that a busy machine cannot make the wait run out first
    wait_s = 10.0 if rank_0_refuses else 2.0
    monkeypatch.setattr(distributed, "REFUSAL_WAIT_S", wait_s)
    monkeypatch.setattr(team_module, "_TEAM", team_module._TEAM)  # main makes this process rank 1: undone after

    def refuse(cfg) -> None:
        raise UserError("data_dir=/nowhere does not exist")

    monkeypatch.setattr(distributed, "follow", refuse)
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", distributed.SUMMARY: str(summary),
                        distributed.TORCHRUN_RUN: "run"}.items():
        monkeypatch.setenv(name, value)
    if rank_0_refuses:  # a moment after rank 1 did
        threading.Timer(0.3, distributed.refusal_file(summary).write_text, ["data_dir=/nowhere"]).start()
    started = time.monotonic()
    status = distributed.main([json.dumps(to_plain(smoke_cfg("nproc=2")))])
    assert status == 0
    said = capsys.readouterr().err
    if rank_0_refuses:
        assert 0.25 < time.monotonic() - started < wait_s / 2 and said == ""
    else:
        assert time.monotonic() - started >= wait_s
        assert "rank 1 of the data-parallel trial refused it: data_dir=/nowhere does not exist" in said


def test_a_launched_rank_ends_without_the_interpreter_s_teardown() -> None:
    """Where gloo's threads of a collective that rank 0's exit broke would abort the process
    (about one 2-process trial in eight, at random): the rank flushes what it said and leaves
    with main's status, before any exit handler runs."""
    script = ("import atexit, sys\n"
              "from harness.core import distributed\n"
              "atexit.register(lambda: print('interpreter teardown', flush=True))\n"
              "distributed.die_with_parent = lambda signum: None\n"
              "distributed.main = lambda argv: print('main of', argv, file=sys.stderr) or 7\n"
              "distributed.run_launched_rank(['cfg'])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 7, done.stderr
    assert "main of ['cfg']" in done.stderr and "interpreter teardown" not in done.stdout


def test_a_follower_stuck_after_rank_0_ended_the_trial_ends_itself(tmp_path: Path) -> None:
    """Over NCCL a follower inside a collective rank 0 never joined waits 30 minutes, and under
    SLURM or a user's torchrun nobody ends it: once rank 0's summary is there, it ends itself after
    the grace period (a follower blocked for good here: a sleep)."""
    summary = tmp_path / "summary.json"
    script = ("import sys, time\nfrom pathlib import Path\nfrom harness.core import distributed\n"
              f"distributed.end_after_rank_0(1, Path({str(summary)!r}), grace_s=0.5, poll_s=0.05)\n"
              "print('waiting', flush=True)\ntime.sleep(120)\n")
    follower = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    assert follower.stdout is not None and follower.stdout.readline() == "waiting\n"
    time.sleep(1.0)
    assert follower.poll() is None  # no summary yet: it goes on waiting
    summary.write_text("{}")
    started = time.monotonic()
    assert follower.wait(timeout=60) == 0
    assert 0.4 < time.monotonic() - started < 10
    assert "rank 0 ended the trial 0.5 s ago and this rank was still waiting" in follower.stderr.read()
    # a follower that ended by itself (main returned: a rank run inside another program) is left alone
    script = ("import time\nfrom pathlib import Path\nfrom harness.core import distributed\n"
              f"done = distributed.end_after_rank_0(1, Path({str(summary)!r}), grace_s=3, poll_s=0.05)\n"
              "time.sleep(0.2)\ndone.set()\ntime.sleep(4)\nprint('alive')\nraise SystemExit(3)\n")
    finished = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert (finished.returncode, finished.stdout) == (3, "alive\n"), finished.stderr


def test_a_slurm_task_that_ends_itself_leaves_submitit_its_result(tmp_path: Path) -> None:
    """Else the launch, waiting on every task of the job, counts the job as lost and stops
    waiting for the sweep's other jobs. Read back as the launch reads it: by submitit."""
    import submitit

    summary, folder = tmp_path / "summary.json", tmp_path / "submitit"
    summary.write_text("{}")  # rank 0 ended the trial
    folder.mkdir()
    script = ("import time\nfrom pathlib import Path\nfrom harness.core import distributed, ranks\n"
              "words = ranks._submitit_result(ranks.follower_result(1, 0))\n"
              f"distributed.end_after_rank_0(1, Path({str(summary)!r}), grace_s=0.2, poll_s=0.05, last_words=words)\n"
              "time.sleep(60)\n")
    env = {**slurm_env(1, tmp_path), "SUBMITIT_FOLDER": str(folder)}
    ended = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=60)
    assert ended.returncode == 0 and (folder / "4242_1_result.pkl").is_file(), ended.stderr
    assert submitit.SlurmJob(folder, "4242", tasks=(0, 1)).task(1).result() == {"status": "rank", "rank": 1,
                                                                               "exit_status": 0}


def test_what_cannot_run_is_refused_before_any_rank_starts(smoke_cfg, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(subprocess, "Popen", None)  # starting torch's launcher would fail the test
    with pytest.raises(UserError, match=r"batch_size=30 does not split evenly over nproc=4"):
        run_trial(smoke_cfg("nproc=4", "submission.hparams.batch_size=30"))
    with pytest.raises(UserError, match=r"nproc=0 must be a positive"):
        run_trial(smoke_cfg("nproc=0"))
    with pytest.raises(UserError, match=r"compile=true with nproc=2 is not supported"):
        run_trial(smoke_cfg("nproc=2", "compile=true"))
    with pytest.raises(UserError, match=r"compile=maybe .*true, false"):
        run_trial(smoke_cfg("nproc=2", "compile=maybe"))
    with pytest.raises(UserError, match=r"precision=fp16 .* Valid precisions"):
        run_trial(smoke_cfg("nproc=2", "workload.sizes.smoke.precision=fp16"))
    assert not any(tmp_path.rglob("*.json*")), "a refused trial wrote a record"


def start_until_checkpoint(command: list[str], results: Path) -> subprocess.Popen:
    """``command`` (an ``optbench trial``) started as Ctrl-C would find it, once its first
    checkpoint is written."""
    job = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline, checkpoint = time.monotonic() + 180, None
    while time.monotonic() < deadline and job.poll() is None and checkpoint is None:
        checkpoint = next(results.rglob(CHECKPOINT_NAME), None)
        time.sleep(0.05)
    assert checkpoint is not None, "the trial never wrote a checkpoint"
    return job


def processes_of(results: Path) -> list[str]:
    """The command lines of running processes that name ``results`` (the ranks carry it in their
    configuration)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(results) in text:
            found.append(text)
    return found


def assert_no_rank_survives(results: Path) -> None:
    deadline = time.monotonic() + 10
    while processes_of(results) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(results) == []


def test_a_device_that_cannot_hold_the_ranks_is_refused_before_any_starts(smoke_cfg, monkeypatch, results) -> None:
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA: it checks the refusal of device=cuda there")
    with pytest.raises(UserError, match=r"device=cuda was asked for, but PyTorch sees no CUDA device here"):
        run_trial(smoke_cfg("nproc=2", "device=cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one GPU, two ranks
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(subprocess, "Popen", None)  # nothing may start
    for device in ("cuda", "auto"):
        with pytest.raises(UserError, match=r"nproc=2 on CUDA runs one rank per GPU, and this machine has 1: use "
                                            r"nproc=1 or fewer, or device=cpu"):
            run_trial(smoke_cfg("nproc=2", f"device={device}"))
    assert not results.exists()


def test_a_killed_data_parallel_trial_resumes_from_its_checkpoint(smoke_cfg, tmp_path: Path) -> None:
    """SIGKILL of ``optbench trial`` alone (the OOM killer's choice, say): torch's launcher and the
    ranks die with it, none keeps training or holding the trial's lock; the same command again
    resumes from rank 0's checkpoint and ends as the 1-process trial."""
    settings = [UNREACHABLE, "max_steps=300", "checkpoint_every_s=0", "threads=1"]
    one = run_trial(smoke_cfg(*settings, f"results={tmp_path / 'a'}"))
    command = [sys.executable, "-m", "harness.cli", "trial", "workload.size=smoke", *settings, "nproc=2",
               "progress=false", "device=cpu", f"results={tmp_path / 'b'}"]
    job = start_until_checkpoint(command, tmp_path / "b")
    job.kill()
    job.communicate()
    assert_no_rank_survives(tmp_path / "b")
    done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = next((tmp_path / "b").rglob("manifest.json")).parent
    manifest = read_json(two / "manifest.json")
    assert manifest["summary"]["steps"] == 300 and len(manifest["attempts"]) == 2
    assert [r["event"] for r in read_jsonl(two / "evals.jsonl")].count("resume") == 1
    assert_same_evaluations(Path(one["record_dir"]), two)
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "not_reached"


def test_ctrl_c_stops_every_rank_and_keeps_the_record(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to ``optbench trial``) reaches every rank once through torch's launcher:
    rank 0 keeps the record and says so, the command exits 130 with no rank left running, and no
    rank prints a traceback."""
    results = tmp_path / "results"
    command = [sys.executable, "-m", "harness.cli", "trial", "workload.size=smoke", UNREACHABLE, "max_runtime_s=600",
               "checkpoint_every_s=0", "threads=1", "nproc=2", "progress=false", "device=cpu", f"results={results}"]
    job = start_until_checkpoint(command, results)
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 130, stderr[-3000:]
    assert "interrupted; what was written is kept" in stderr and "Traceback" not in stderr
    assert_no_rank_survives(results)
    manifest = read_json(next(results.rglob("manifest.json")))
    assert manifest["status"] == "running" and "summary" not in manifest  # resumable, not ended


def test_evaluations_by_submission_time_are_agreed_by_the_ranks(smoke_cfg) -> None:
    """With eval_period_s the ranks decide from the agreed (slowest) clock: they evaluate at the
    same steps and the trial ends normally, not in a hang."""
    by_time = ("workload.sizes.smoke.eval_every_steps=null", "workload.sizes.smoke.eval_period_s=0.02")
    summary = run_trial(smoke_cfg(UNREACHABLE, "nproc=2", "threads=1", "max_steps=80", *by_time))
    assert summary["status"] == "not_reached" and summary["steps"] == 80
    steps = [e["step"] for e in evaluations(Path(summary["record_dir"]))]
    assert len(steps) >= 2 and steps[-1] == 80
    times = [e["submission_time_s"] for e in evaluations(Path(summary["record_dir"]))]
    assert all(b - a >= 0.02 for a, b in itertools.pairwise(times[:-1]))  # a period apart (the last: max_steps)


# ------------------------------------------------------------------------------------ ranks started by SLURM
def slurm_env(rank: int, job_dir: Path) -> dict[str, str]:
    """The environment submitit's task ``rank`` of a 2-task SLURM job on this machine sees."""
    return {**os.environ, "PYTHONPATH": str(REPO), "SUBMITIT_EXECUTOR": "slurm", "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_JOB_ID": "4242", "SLURM_NODEID": "0",
            "SLURM_JOB_NODELIST": "localhost", "SLURM_JOB_NUM_NODES": "1", "OPTBENCH_JOB_DIR": str(job_dir)}


def test_ranks_started_by_slurm_are_the_trial_s_processes(smoke_cfg, results: Path, tmp_path: Path) -> None:
    """``launcher=slurm`` with nproc=2 runs each trial as one job of 2 tasks: each task is a rank
    itself (none starts workers of its own), and together they train as one process does."""
    settings = ["workload.sizes.smoke.eval_every_steps=5", "threads=1", "max_runtime_s=60"]
    one = run_trial(smoke_cfg(*settings))
    command = [sys.executable, "-m", "harness.cli", "trial", "workload=fashion_mnist", "workload.size=smoke",
               f"results={results}", "progress=false", "device=cpu", "nproc=2", *settings]
    # an earlier attempt of the same job (requeued: same job id) left its summary and a refusal
    (tmp_path / "ddp-4242-0-summary.json").write_text('{"status": "stale"}')
    (tmp_path / "ddp-4242-0-summary.error").write_text("an earlier attempt's refusal")
    tasks = [subprocess.Popen(command, env=slurm_env(rank, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for rank in (0, 1)]
    outputs = [task.communicate(timeout=120) for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], outputs
    two = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert json.loads(outputs[1][0].strip().splitlines()[-1]) == {"status": "rank", "rank": 1, "exit_status": 0}
    assert two["status"] == one["status"] == "reached" and two["steps"] == one["steps"]
    assert_same_evaluations(Path(one["record_dir"]), Path(two["record_dir"]))
    assert read_json(Path(two["record_dir"]) / "manifest.json")["nproc"] == 2
    assert len(list(results.rglob("manifest.json"))) == 2  # rank 0 alone wrote the 2-process trial's record
    assert json.loads((tmp_path / "ddp-4242-0-summary.json").read_text()) == two
    assert not (tmp_path / "ddp-4242-0-summary.error").exists()


def test_ranks_started_by_torchrun_are_the_trial_s_processes(smoke_cfg, results: Path) -> None:
    """A user's own ``torchrun --nproc-per-node 2 -m harness.cli trial nproc=2``: each worker is a
    rank itself, together they train as one process does; a worker count other than nproc is
    refused with a message."""
    settings = ["workload.sizes.smoke.eval_every_steps=5", "threads=1", "max_runtime_s=60"]
    one = run_trial(smoke_cfg(*settings))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
                "harness.cli", "trial", "workload.size=smoke", f"results={results}", "progress=false", "device=cpu",
                *settings]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*torchrun, "nproc=2"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert {"status": "rank", "rank": 1, "exit_status": 0} in lines
    two = next(line for line in lines if line["status"] != "rank")
    assert two["status"] == one["status"] == "reached" and two["steps"] == one["steps"]
    assert_same_evaluations(Path(one["record_dir"]), Path(two["record_dir"]))
    assert read_json(Path(two["record_dir"]) / "manifest.json")["nproc"] == 2
    assert len(list(results.rglob("manifest.json"))) == 2
    refused = subprocess.run(torchrun, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "torchrun started 2 processes for this trial, but nproc=1: say nproc=2" in refused.stderr
    assert len(list(results.rglob("manifest.json"))) == 2  # nothing started


def test_a_job_of_one_task_starts_its_ranks_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness.core.ranks import slurm_task

    monkeypatch.setattr(os, "environ", slurm_env(1, tmp_path))
    task = slurm_task(2)
    assert (task.rank, task.local_rank, task.master) == (1, 1, "localhost") and 20000 <= task.port < 32768
    assert task.summary == tmp_path / "ddp-4242-0-summary.json"
    monkeypatch.setattr(os, "environ", {**slurm_env(0, tmp_path), "SLURM_NTASKS": "1"})
    assert slurm_task(2) is None  # one task: it starts both ranks on its node
    monkeypatch.setattr(os, "environ", {**slurm_env(0, tmp_path), "SLURM_NTASKS": "3"})
    with pytest.raises(UserError, match=r"This SLURM job has 3 tasks, but the trial runs nproc=2 processes"):
        slurm_task(2)  # a task per process, or one: not a trial per task
    monkeypatch.setattr(os, "environ", {k: v for k, v in slurm_env(0, tmp_path).items() if k != "SUBMITIT_EXECUTOR"})
    assert slurm_task(2) is None  # an sbatch script's own shell (or salloc's) is no rank: no submitit task


def test_a_slurm_launch_asks_one_task_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.core.sweep_file as sweep_file
    from harness.orchestration.launch import data_parallel_overrides

    nproc = {"a": [2, 2], "b": [1], "c": [2]}
    monkeypatch.setattr(sweep_file, "load_sweep", lambda folder: {
        "trials": [{"config": {"nproc": n}} for n in nproc[folder.name]]})
    two = [(Path("a"), 0), (Path("a"), 1), (Path("c"), 0)]
    assert data_parallel_overrides("slurm", [], two) == ["hydra.launcher.tasks_per_node=2"]
    assert data_parallel_overrides("slurm", ["hydra.launcher.nodes=2"], two) == []  # the user's shape
    assert data_parallel_overrides("slurm", ["hydra.launcher.tasks_per_node=1"], two) == []  # one task starts both
    assert data_parallel_overrides("local", [], two) == []  # the ranks start on the job's machine
    assert data_parallel_overrides("slurm", [], [(Path("b"), 0)]) == []
    with pytest.raises(UserError, match=r"different numbers of processes \(nproc=\[1, 2\]\)"):
        data_parallel_overrides("slurm", [], [(Path("a"), 0), (Path("b"), 0)])
    # a shape of another number of tasks would start a whole trial in each task: refused
    four = [(Path("d"), 0)]
    nproc["d"] = [4]
    assert data_parallel_overrides("slurm", ["hydra.launcher.nodes=2"], four) == ["hydra.launcher.tasks_per_node=2"]
    assert data_parallel_overrides("slurm", ["hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=2"], four) == []
    for shape in (["hydra.launcher.nodes=3"], ["hydra.launcher.tasks_per_node=2"],
                  ["hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=1"]):
        with pytest.raises(UserError, match=r"tasks, but each trial runs nproc=4 processes.*nodes x tasks_per_node"):
            data_parallel_overrides("slurm", shape, four)
    with pytest.raises(UserError, match=r"launcher settings are not valid: hydra.launcher.nodes=two"):
        data_parallel_overrides("slurm", ["hydra.launcher.nodes=two"], four)
    monkeypatch.setenv("NODES", "2")  # the shape as the launch resolves it: interpolations too
    assert data_parallel_overrides("slurm", ["hydra.launcher.nodes=${oc.env:NODES}"], four) == [
        "hydra.launcher.tasks_per_node=2"]


def test_rank_0_records_the_failure_of_the_rank_that_failed_first(tmp_path: Path) -> None:
    """With 3 ranks or more, a failing rank breaks the others' waits and they fail too: the first
    failure is the trial's. A file still being written (unreadable) is no failure."""
    from harness.core.team import ProcessTeam, failure_file

    team = object.__new__(ProcessTeam)  # no process group: only the ranks' files are read
    team.size, team.summary = 4, tmp_path / "summary.json"
    assert team.blame("rank 0's own", "submission.update") == ("rank 0's own", "submission.update")
    failure_file(team.summary, 1).write_text(json.dumps({"error": "broken wait", "error_in": "harness", "at": 2.0}))
    failure_file(team.summary, 2).write_text(json.dumps({"error": "ValueError: x", "error_in": "submission.update",
                                                         "at": 1.0}))
    failure_file(team.summary, 3).write_text('{"error": "partly wri')
    error, part = team.blame("Connection closed by peer", "harness")
    assert part == "submission.update" and error.endswith("Rank 2 of the data-parallel trial failed first, which "
                                                          "ended the wait above:\nValueError: x")


GLOO_RESET = ("Traceback (most recent call last):\n  ...\nRuntimeError: [../third_party/gloo/gloo/transport/tcp/"
              "pair.cc:545] Read error [127.0.0.1]:21910: Connection reset by peer")


def test_a_rank_killed_during_ddp_s_exchange_is_the_harness_s_failure_not_the_submission_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a rank killed (kill -9, the OOM killer) while DDP all-reduced the gradients inside
    ``submission.update`` was recorded as the submission's failure: final, never retried, and
    ranked as not reaching. Without another rank's failure file it is the harness's: a rerun
    resumes it. A rank that wrote its failure (its own code failed) is still the one blamed."""
    import harness.core.team as team_module
    from harness.core.team import ProcessTeam, failure_file

    monkeypatch.setattr(team_module, "TOLD_GRACE_S", 0.0)
    team = object.__new__(ProcessTeam)
    team.size, team.summary = 2, tmp_path / "summary.json"
    error, part = team.blame(GLOO_RESET, "submission.update")
    assert part == "harness" and error.startswith(GLOO_RESET) and "without saying why" in error
    assert team.blame("ValueError: bad lr", "submission.update") == ("ValueError: bad lr", "submission.update")
    failure_file(team.summary, 1).write_text(json.dumps({"error": "ValueError: x", "error_in": "submission.update",
                                                         "at": 1.0}))
    assert team.blame(GLOO_RESET, "submission.update")[1] == "submission.update"


@pytest.mark.parametrize("rank, port_taken, said", [
    (1, False, "rank 1 could not reach rank 0's meeting point at 127.0.0.1:"),
    (0, False, "the other 1 did not all connect to it within 1 s"),
    (0, True, "rank 0 could not open the ranks' meeting point at port"),
])
def test_ranks_that_do_not_meet_say_so_within_the_join_timeout(rank: int, port_taken: bool, said: str,
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A SLURM job's rank whose partner never comes (a task that failed before the trial, or rank 0
    that could not listen at the job's port) stops after the join timeout with a message saying
    which, instead of waiting the process group's 30 minutes with every GPU of the job held."""
    import socket

    from harness.core import distributed

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if port_taken:
        listener.listen()  # another program holds the job's port
    else:
        listener.close()  # nobody there
    monkeypatch.setattr(distributed, "JOIN_TIMEOUT", distributed.datetime.timedelta(seconds=1))
    monkeypatch.delenv(distributed.TORCHRUN_RUN, raising=False)
    for name, value in {distributed.RANK: str(rank), distributed.WORLD_SIZE: "2", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(port), distributed.SUMMARY: str(tmp_path / "summary.json")}.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(distributed.RanksDidNotMeet, match="did not meet") as raised:
        distributed.main([json.dumps({"device": "cpu"})])
    assert said in str(raised.value) and "submitting the trial again retries it" in str(raised.value)
    assert time.monotonic() - started < 30
    listener.close()


def test_torch_s_launcher_imports_nothing_of_the_harness_s_trial_code() -> None:
    """The launcher only starts and watches the ranks: the harness's imports there (torch's compiler
    among them) delayed every rank's start by ~2 s (4.2 s before the launcher could start, 2.4 s now)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness.core.torchrun", "--help"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--nproc-per-node" in done.stdout, done.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "torch.distributed.run" in imported
    assert not {"torch._dynamo", "hydra", "harness.core.distributed", "harness.core.ranks"} & imported
