"""Integration with a real single-node SLURM cluster (scripts/slurm/up.sh): job arrays, status vs
sacct, and a trial requeued mid-run that resumes from its checkpoint.

The cluster is started from Debian's packages (installed when missing), so these tests need root
and apt; set OPTBENCH_SKIP_SLURM=1 to skip them on a machine that has neither.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.core.records import read_json, read_jsonl
from harness.core.sweep_file import load_sweep
from harness.orchestration.status import _slurm_id, collect
from harness.orchestration.tune import run_tune

REPO = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(os.environ.get("OPTBENCH_SKIP_SLURM") == "1", reason="OPTBENCH_SKIP_SLURM=1"),
]
SMOKE = ["workload=fashion_mnist", "workload.size=smoke", "progress=false", "device=cpu", "threads=1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A running cluster; started here (and stopped afterwards) unless one was already up.

    Held by one test module at a time, across processes (an flock beside the cluster's folder): the
    suite's parallel workers (scripts/test.sh) would otherwise run two modules' SLURM tests at once,
    and one module's teardown would stop the cluster under the other's jobs."""
    state = Path(os.environ.get("OPTBENCH_SLURM_DIR", "/tmp/optbench-slurm"))
    with open(state.with_name(state.name + ".test-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, after the teardown
        yield from _cluster(state)


def _cluster(state: Path) -> Iterator[Path]:
    was_up = (state / "pids" / "slurmctld.pid").is_file() and _alive(state / "pids" / "slurmctld.pid")
    up = subprocess.run(["bash", str(REPO / "scripts/slurm/up.sh"), str(state)], capture_output=True, text=True,
                        timeout=600)
    assert up.returncode == 0, f"scripts/slurm/up.sh failed:\n{up.stdout}\n{up.stderr}"
    conf = state / "etc" / "slurm.conf"
    assert conf.is_file()
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    yield state
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous
    if not was_up:
        subprocess.run(["bash", str(REPO / "scripts/slurm/down.sh"), str(state)], capture_output=True, timeout=300)


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(job_ids)],
                         capture_output=True, text=True, check=True).stdout
    return {line.split("|")[0]: line.split("|")[1].split()[0] for line in out.splitlines() if "|" in line}


def await_sacct_completed(job_ids: list[str], timeout_s: float = 60) -> dict[str, str]:
    """sacct's states of ``job_ids`` once all read COMPLETED (it lags a job's end by 1-2 s, more on busy
    cores), or as they are at the deadline."""
    deadline = time.monotonic() + timeout_s
    while set((states := sacct_states(job_ids)).get(job) for job in job_ids) != {"COMPLETED"}:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return states


def test_sweep_runs_as_a_job_array_and_status_agrees_with_sacct(cluster: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    outcome = run_tune([*SMOKE, "submission=momentum", "max_steps=30", "studies=2", "trials=3",
                        "launcher=slurm", f"results={results}", "poll_s=1", "hydra.launcher.timeout_min=10",
                        "hydra.launcher.cpus_per_task=1"], log=print)
    assert outcome["launched"] == 6 and outcome["job_errors"] == 0 and not outcome["lost"]
    sweep = load_sweep(Path(outcome["sweep"]))
    manifests = [read_json(Path(t["record_dir"]) / "manifest.json") for t in sweep["trials"]]
    assert all(m["status"] in ("reached", "not_reached", "pruned") for m in manifests)  # pruning is on
    slurm = [m["attempts"][-1]["slurm"] for m in manifests]
    assert len({s["array_job_id"] for s in slurm}) == 1  # one job array
    assert sorted(int(s["array_task_id"]) for s in slurm) == list(range(6))

    job_ids = [r["slurm_job"] for r in collect(results)]
    assert all(job_ids)
    accounting = await_sacct_completed(job_ids)
    rows = collect(results)
    for row in rows:
        assert accounting[row["slurm_job"]] == "COMPLETED"
        assert row["slurm_state"] == "COMPLETED"
        assert row["state"].startswith("done-")
        assert Path(row["logs"]).is_file()


def test_an_external_submission_runs_in_slurm_jobs_as_it_does_here(cluster: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission from a file outside the repository: each SLURM job imports the same file (its
    path is in the sweep's trial configs) and records it."""
    user = tmp_path / "userland"
    user.mkdir()
    (user / "nesterov.py").write_text(
        "import dataclasses\nimport torch\nfrom harness.submission import TorchOptimSubmission, TrainingHparams\n\n"
        "@dataclasses.dataclass(kw_only=True)\nclass Hparams(TrainingHparams):\n    lr: float = 0.05\n\n"
        "class Nesterov(TorchOptimSubmission):\n    Hparams = Hparams\n    search_space = {'lr': {'min': 0.01, "
        "'max': 0.1, 'scaling': 'log'}}\n\n    def build_optimizer(self, params, hp):\n"
        "        return torch.optim.SGD(params, lr=hp.lr, momentum=0.9, nesterov=True)\n")
    monkeypatch.chdir(tmp_path)  # the jobs start elsewhere than the file's folder
    results = tmp_path / "results"
    outcome = run_tune([*SMOKE, f"submission={user / 'nesterov.py'}:Nesterov", "max_steps=30", "studies=1",
                        "trials=2", "launcher=slurm", f"results={results}", "poll_s=1",
                        "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1"], log=print)
    assert outcome["launched"] == 2 and outcome["job_errors"] == 0 and not outcome["lost"]
    for entry in load_sweep(Path(outcome["sweep"]))["trials"]:
        manifest = read_json(Path(entry["record_dir"]) / "manifest.json")
        assert manifest["status"] in ("reached", "not_reached", "pruned") and manifest["submission"] == "nesterov"
        assert manifest["submission_module"] == str(user / "nesterov.py")
        assert manifest["attempts"][-1]["slurm"]["array_job_id"]


def submitted_array(results: Path, tasks: int, alive: Callable[[], bool], said: Callable[[], object]) -> str:
    """The id of the job array a tune launching ``tasks`` trials into ``results`` submitted, once
    submitit made every task's folder (two minutes at most; ``alive``: the tune still runs, else
    ``said()`` is the assertion's message)."""
    deadline = time.monotonic() + 120
    while not list(results.glob(f"launches/*/submitit/*_{tasks - 1}")) and time.monotonic() < deadline:
        assert alive(), said()
        time.sleep(0.2)
    [job] = {p.name.rpartition("_")[0] for p in results.glob("launches/*/submitit/*_*") if p.name[0].isdigit()}
    return job


def await_squeue_state(job: str, state: str, timeout_s: float = 120) -> None:
    """Return once squeue shows ``job`` in ``state``."""
    deadline = time.monotonic() + timeout_s
    squeue = ["squeue", "-h", "-j", job, "-o", "%T"]
    while subprocess.run(squeue, capture_output=True, text=True).stdout.strip() != state:
        assert time.monotonic() < deadline, f"{job} never {state}"
        time.sleep(0.1)


SHORT = [*SMOKE, "submission=momentum", "max_steps=30", "studies=1", "launcher=slurm", "poll_s=1",
         "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1"]


def test_a_cancelled_task_does_not_end_the_wait_for_the_rest_of_the_array(cluster: Path, tmp_path: Path) -> None:
    """Before, `scancel <array>_0` made tune report within seconds (exit 1, every trial "did not end") while
    the other tasks still waited in the queue: Hydra's submitit launcher raises on the first job that
    ended without a result. Now tune waits for the others, then counts the cancelled trial alone as
    unfinished, in the state optbench status gives it (interrupted, its job CANCELLED)."""
    results = tmp_path / "results"
    said: list[str] = []
    outcome: dict = {}
    tune = threading.Thread(target=lambda: outcome.update(run_tune(
        [*SHORT, "trials=3", f"results={results}", "+hydra.launcher.additional_parameters.hold=true"],
        log=said.append)))
    tune.start()
    array = submitted_array(results, 3, tune.is_alive, lambda: said)
    try:  # task 0 runs and is cancelled (sacct records no task cancelled while pending: submitit would wait on)
        subprocess.run(["scontrol", "release", f"{array}_0"], check=True)
        await_squeue_state(f"{array}_0", "RUNNING")
        subprocess.run(["scancel", f"{array}_0"], check=True)
        deadline = time.monotonic() + 120  # submitit notices the cancel within seconds (sacct)
        while tune.is_alive() and not any("still queued or running" in line for line in said):
            assert time.monotonic() < deadline, said
            time.sleep(0.2)
        reported_while_queued = not tune.is_alive()
        subprocess.run(["scontrol", "release", array], check=False)  # says task 0 has ended: exit 1
        tune.join(timeout=300)
    finally:
        subprocess.run(["scancel", array], check=False)  # nothing is left, unless the test failed
    assert not reported_while_queued, said
    assert outcome["unfinished"] == 1 and len(outcome["lost"]) == 1, outcome
    assert f"SLURM job {array}_0 ended CANCELLED" in outcome["lost"][0]
    assert "1 of the 3 launched trials did not end (interrupted 1" in outcome["error"]
    assert f"{array}_0 CANCELLED" in outcome["error"], outcome["error"]
    rows = collect(results)
    assert rows[0]["state"] == "interrupted"
    assert all(row["state"].startswith("done-") for row in rows[1:]), rows


def test_jobs_held_in_the_queue_are_said_at_once_with_what_to_do(cluster: Path, tmp_path: Path) -> None:
    """Before, a job array that could not start (held; more CPUs than the partition has: PartitionConfig)
    was said as "pending 2" and nothing more for 5 minutes; now its jobs and squeue's reason are said
    at the first report that sees them (squeue asked every 30 s at most)."""
    results = tmp_path / "results"
    said: list[str] = []
    tune = threading.Thread(target=lambda: run_tune(
        [*SHORT, "trials=2", f"results={results}", "+hydra.launcher.additional_parameters.hold=true"],
        log=said.append))
    tune.start()
    array = submitted_array(results, 2, tune.is_alive, lambda: said)
    try:
        deadline = time.monotonic() + 120  # STUCK_CHECK_S (30) and a poll are enough; QUIET_S is 300
        while not any("JobHeldUser" in line for line in said):
            assert time.monotonic() < deadline and tune.is_alive(), said
            time.sleep(0.2)
    finally:
        subprocess.run(["scancel", array], check=False)
        tune.join(timeout=120)
    [line] = [line for line in said if "JobHeldUser" in line]
    assert f"pending in SLURM's queue: {array}_0, {array}_1 (JobHeldUser): a reason that does not pass" in line, line
    assert "no change for" not in line


def test_jobs_failing_in_their_setup_are_counted_as_status_counts_them(cluster: Path, tmp_path: Path) -> None:
    """Before, jobs that failed before their trial started were reported as "did not end (pending 2)"
    while optbench status said interrupted, FAILED. Now tune counts them as status does, and names
    each job's state and the end of its log."""
    results = tmp_path / "results"
    outcome = run_tune([*SHORT, "trials=2", f"results={results}",
                        'hydra.launcher.setup=["echo setting up; exit 3"]'], log=print)
    assert outcome["unfinished"] == 2 and len(outcome["lost"]) == 2, outcome
    assert "2 of the 2 launched trials did not end (interrupted 2" in outcome["error"], outcome["error"]
    assert outcome["error"].count(" FAILED)") == 2, outcome["error"]
    assert all(" ended FAILED without a result" in lost and "setting up" in lost for lost in outcome["lost"])
    rows = collect(results)
    assert {(row["state"], row["slurm_state"]) for row in rows} == {("interrupted", "FAILED")}


def test_a_rerun_after_the_tune_was_killed_waits_for_its_queued_jobs(cluster: Path, tmp_path: Path) -> None:
    """Before, running tune again while the killed command's job array was still queued submitted
    the trials a second time: the copies ran them (or failed on their locks, exit 1) while the
    first jobs waited. Now the rerun launches nothing, waits for those jobs, and reports them."""
    results = tmp_path / "results"
    settings = [*SMOKE, "submission=momentum", "max_steps=30", "studies=1", "trials=2", "launcher=slurm",
                f"results={results}", "poll_s=1", "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1"]
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log:
        first = subprocess.Popen([sys.executable, "-m", "harness.cli", "tune", *settings,
                                  "+hydra.launcher.additional_parameters.hold=true"],  # queued until released
                                 cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        job = submitted_array(results, 2, lambda: first.poll() is None, first_log.read_text)
    finally:
        first.kill()  # the tune command dies; its held job array stays queued
        first.wait()
    # released once the rerun said it waits for the queued jobs (60 s at most): not after a fixed time,
    # which a rerun slow to reach its check (busy cores) would find the jobs already running
    def release() -> None:
        subprocess.run(["scontrol", "release", job], check=False)

    releaser = threading.Timer(60, release)
    releaser.start()
    said: list[str] = []

    def log(line: str) -> None:
        said.append(line)
        if "still have a job" in line:
            release()

    try:
        outcome = run_tune(settings, log=log)
    finally:
        releaser.cancel()
        subprocess.run(["scancel", job], check=False)
    assert outcome["launched"] == 0 and outcome["waited_for"] == 2 and outcome["error"] is None, (outcome, said)
    assert any("2 unfinished trial(s) still have a job of an earlier launch" in line and "PENDING" in line
               for line in said), said
    assert len(list(results.glob("launches/*/plan.json"))) == 1  # nothing submitted a second time
    for entry in load_sweep(Path(outcome["sweep"]))["trials"]:
        manifest = read_json(Path(entry["record_dir"]) / "manifest.json")
        assert manifest["status"] in ("reached", "not_reached", "pruned")
        assert [a["slurm"]["array_job_id"] for a in manifest["attempts"]] == [job]


def test_a_data_parallel_trial_runs_as_one_job_of_a_task_per_process(cluster: Path, tmp_path: Path) -> None:
    """nproc=2 with launcher=slurm: each trial is one job of 2 tasks (tasks_per_node is set for the
    user), each task one rank; rank 0 writes the record, and the trial trains as one process does."""
    settings = [*SMOKE, "submission=adamw", "workload.sizes.smoke.eval_every_steps=5", "max_runtime_s=60",
                "studies=1", "trials=1", "search_seed=3"]
    # two sweeps of adamw on one workload: each in a results folder of its own (one sweep per folder)
    single = run_tune([*settings, f"results={tmp_path / 'one'}", "launcher=inline"], log=print)
    outcome = run_tune([*settings, f"results={tmp_path / 'two'}", "nproc=2", "launcher=slurm", "poll_s=1",
                        "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1"], log=print)
    assert outcome["launched"] == 1 and outcome["job_errors"] == 0 and not outcome["lost"]
    [entry] = load_sweep(Path(outcome["sweep"]))["trials"]
    manifest = read_json(Path(entry["record_dir"]) / "manifest.json")
    assert manifest["status"] == "reached" and manifest["nproc"] == 2
    job = _slurm_id(manifest["attempts"][-1])
    await_sacct_completed([job])
    steps = subprocess.run(["sacct", "-n", "-P", "-j", job, "-o", "JobID,NTasks,State"], capture_output=True,
                           text=True, check=True).stdout
    assert any(line.split("|")[1] == "2" and line.split("|")[2] == "COMPLETED" for line in steps.splitlines()), steps
    logs = sorted(p.name for p in Path(outcome["launch_dir"]).rglob(f"{job}_*_log.out"))
    assert logs == [f"{job}_0_log.out", f"{job}_1_log.out"]  # one log per task: two ranks, started by SLURM
    [reference] = load_sweep(Path(single["sweep"]))["trials"]
    ours, theirs = eval_metrics(Path(entry["record_dir"])), eval_metrics(Path(reference["record_dir"]))
    assert ours.keys() == theirs.keys()
    for step, metrics in ours.items():
        for name, value in metrics.items():
            assert value == pytest.approx(theirs[step][name], rel=1e-5, abs=1e-7), (step, name)


# Ends by max_steps, never by the clock: a generous budget keeps a slow or busy machine from cutting
# the reference run short (the comparison is of evaluations at the same steps).
LONG_TRIAL = [*SMOKE, "submission=adamw", "workload.sizes.smoke.target=2.0", "max_steps=12000",
              "max_runtime_s=900", "workload.sizes.smoke.eval_every_steps=500", "checkpoint_every_s=0",
              "studies=1", "trials=1"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """LONG_TRIAL run uninterrupted in this process: what a requeued or preempted run must equal."""
    return run_tune([*LONG_TRIAL, f"results={tmp_path_factory.mktemp('reference')}"], log=print)


def launch_in_background(results: Path, *extra: str) -> threading.Thread:
    launcher = threading.Thread(target=lambda: run_tune(
        [*LONG_TRIAL, f"results={results}", "launcher=slurm", "poll_s=1", "hydra.launcher.partition=low", *extra],
        log=print))
    launcher.start()
    return launcher


def checkpointed_trial(results: Path, launcher: threading.Thread) -> tuple[Path, str]:
    """The record folder of the running trial once it has checkpointed 3 evaluations, and its job id."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and launcher.is_alive():
        found = [p for p in results.rglob("evals.jsonl") if len(p.read_text().splitlines()) >= 3]
        if found and (found[0].parent / "checkpoint.pt").is_file():
            record_dir = found[0].parent
            job_id = _slurm_id(read_json(record_dir / "manifest.json")["attempts"][-1])  # one job: not an array
            assert job_id
            return record_dir, job_id
        time.sleep(0.1)
    raise AssertionError("the trial never checkpointed")


def start_soon_once_pending(job_id: str) -> None:
    """A requeued job waits ~120 s (Reason=BeginTime); once it is PENDING, move its start to now+2
    (exactly once: repeating the update keeps pushing the start back)."""
    for _ in range(300):
        state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout
        if state.strip() == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now+2"], check=True)
            return
        time.sleep(0.2)


def eval_metrics(folder: Path) -> dict:
    return {r["step"]: r["metrics"] for r in read_jsonl(folder / "evals.jsonl") if r["event"] == "eval"}


def assert_resumed_like(record_dir: Path, reference: dict) -> dict:
    """One resume from a checkpoint, and the same evaluations as the uninterrupted reference run."""
    final = read_json(record_dir / "manifest.json")
    assert final["status"] == "not_reached" and final["summary"]["steps"] == 12000
    assert len(final["attempts"]) == 2 and final["attempts"][1]["resumed_from_step"] > 0
    ref_dir = Path(load_sweep(Path(reference["sweep"]))["trials"][0]["record_dir"])
    assert eval_metrics(record_dir) == eval_metrics(ref_dir)
    return final


def test_requeued_trial_resumes_from_its_checkpoint(cluster: Path, reference: dict, tmp_path: Path) -> None:
    """`scontrol requeue` mid-run: the job restarts, resumes from the checkpoint and ends with the
    same evaluations (hence the same steps-to-target) as an uninterrupted run of the same trial."""
    results = tmp_path / "requeued"
    launcher = launch_in_background(results, "hydra.launcher.timeout_min=10")
    record_dir, job_id = checkpointed_trial(results, launcher)
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    start_soon_once_pending(job_id)
    launcher.join(timeout=400)
    assert not launcher.is_alive()
    final = assert_resumed_like(record_dir, reference)
    assert final["attempts"][1]["slurm"]["restart_count"] == "1"


def test_preempted_trial_checkpoints_through_submitit_and_resumes(cluster: Path, reference: dict,
                                                                   tmp_path: Path) -> None:
    """A higher-priority job preempts the trial (partition `low`, PreemptMode=REQUEUE with the user
    signal): submitit catches USR2, the job is requeued and resumes from the trial's checkpoint."""
    results = tmp_path / "preempted"
    launcher = launch_in_background(results, "hydra.launcher.timeout_min=30", "hydra.launcher.cpus_per_task=2")
    record_dir, job_id = checkpointed_trial(results, launcher)
    # The whole node (2 CPUs), in the high-priority partition: preempts the trial.
    subprocess.run(["sbatch", "-p", "debug", "-c", "2", "-o", str(tmp_path / "high.out"), "--wrap", "sleep 2"],
                   check=True, cwd=tmp_path)
    start_soon_once_pending(job_id)
    launcher.join(timeout=400)
    assert not launcher.is_alive()
    assert_resumed_like(record_dir, reference)
    logs = "".join(p.read_text() for p in results.rglob("*_log.err"))
    # submitit's own checkpoint path (with limits <= 10 min it calls the same signal a timeout)
    assert "Caught signal SIGUSR2" in logs and "this job is preempted" in logs
    await_sacct_completed([job_id])
    row = collect(results)[0]
    assert row["slurm_job"] == job_id and row["slurm_state"] == "COMPLETED" and row["state"] == "done-not-reached"


def test_a_job_signalled_once_more_than_max_num_timeout_fails_and_is_said_in_one_line(
        cluster: Path, reference: dict, tmp_path: Path) -> None:
    """Before, submitit's UncompletedJobError ("timed-out too many times"), which its handler raises
    inside the trial at the signal past hydra.launcher.max_num_timeout, came back as the job's result:
    tune printed the error's traceback as a job error, without the settings to raise, and counted the
    trial "running (SLURM job ... RUNNING)" while its job was leaving the queue. Now tune says it in
    one line naming those settings, once the job has ended, as status does, and a rerun resumes the
    trial exactly. (Hydra's job wrapper catches the error, so SLURM records the job COMPLETED.)"""
    results = tmp_path / "results"
    settings = [*LONG_TRIAL, f"results={results}", "launcher=slurm", "poll_s=1", "hydra.launcher.timeout_min=10",
                "hydra.launcher.cpus_per_task=1"]
    outcome: dict = {}
    tune = threading.Thread(target=lambda: outcome.update(
        run_tune([*settings, "hydra.launcher.max_num_timeout=0"], log=print)))
    tune.start()
    record_dir, job_id = checkpointed_trial(results, tune)
    # what SLURM sends signal_delay_s before the time limit (with a limit of 10 min or less submitit
    # takes any USR2 for the time limit): the first one is already one too many
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    tune.join(timeout=300)
    assert not tune.is_alive()
    assert outcome["job_errors"] == 0 and outcome["unfinished"] == 1, outcome
    [lost] = outcome["lost"]
    assert f"SLURM job {job_id} ended COMPLETED without a result: UncompletedJobError" in lost, lost
    assert "timed-out too many times" in lost and "hydra.launcher.max_num_timeout" in lost
    assert "Traceback" not in lost.partition(". Its stderr")[0], lost
    assert f"interrupted (SLURM job {job_id} COMPLETED)" in outcome["error"], outcome["error"]
    row = collect(results)[0]
    assert (row["state"], row["slurm_state"]) == ("interrupted", "COMPLETED")
    again = run_tune(settings, log=print)
    assert again["launched"] == 1 and again["error"] is None, again
    assert_resumed_like(record_dir, reference)
