"""`optbench tune` / `suite` / `status` through Hydra's launchers (in-process and submitit_local)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.cli import main
from harness.core.records import read_json
from harness.core.sweep_file import load_sweep
from harness.errors import UserError
from harness.orchestration.status import collect
from harness.orchestration.tune import run_tune

SMOKE = ["workload=fashion_mnist", "workload.size=smoke", "max_steps=30", "progress=false", "device=cpu"]


def tune(results: Path, *extra: str, messages: list | None = None) -> dict:
    log = messages.append if messages is not None else (lambda _: None)
    return run_tune([*SMOKE, f"results={results}", "poll_s=0.5", *extra], log=log)


def test_inline_sweep_runs_every_trial_and_a_rerun_launches_nothing(results: Path) -> None:
    messages: list[str] = []
    outcome = tune(results, "submission=momentum", "studies=2", "trials=2", messages=messages)
    assert outcome["launched"] == 4
    sweep = load_sweep(Path(outcome["sweep"]))
    for entry in sweep["trials"]:
        manifest = read_json(Path(entry["record_dir"]) / "manifest.json")
        assert manifest["status"] in ("reached", "not_reached", "pruned")
        assert (manifest["study"], manifest["trial"], manifest["ruleset"]) == (entry["study"], entry["trial"],
                                                                              "external")
        assert manifest["seed"] == entry["seed"]
        assert manifest["hparams"]["lr"] == pytest.approx(entry["hparams"]["lr"])
    assert any("launching 4 of 4 trials" in m for m in messages)

    messages.clear()
    again = tune(results, "submission=momentum", "studies=2", "trials=2", messages=messages)
    assert again["launched"] == 0 and again["sweep"] == outcome["sweep"]
    assert any("nothing launched" in m for m in messages)


def test_unfinished_trials_are_the_only_ones_relaunched(results: Path) -> None:
    outcome = tune(results, "submission=adamw", "studies=1", "trials=3")
    sweep = load_sweep(Path(outcome["sweep"]))
    victim = Path(sweep["trials"][1]["record_dir"])
    manifest = read_json(victim / "manifest.json")
    (victim / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # as if killed
    again = tune(results, "submission=adamw", "studies=1", "trials=3")
    assert again["launched"] == 1
    assert read_json(victim / "manifest.json")["status"] in ("reached", "not_reached", "pruned")


def test_a_rerun_waits_for_a_trial_another_process_runs_and_launches_it_if_left_unfinished(results: Path) -> None:
    """Before, a rerun (the first command killed, its worker still running a trial) launched that
    trial again: the copy failed on the trial's lock, a job error and exit 1. Now it waits for the
    holder, and launches the trial once the holder ended without finishing it."""
    import subprocess
    import sys

    outcome = tune(results, "submission=adamw", "studies=1", "trials=2")
    victim = Path(load_sweep(Path(outcome["sweep"]))["trials"][0]["record_dir"])
    manifest = read_json(victim / "manifest.json")
    (victim / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # as if killed
    # the holder keeps the lock until the rerun said it waits for it (60 s at most), not for a fixed
    # time the rerun might need more than on a busy machine just to reach its check
    release = results / "release-the-lock"
    holder = subprocess.Popen([sys.executable, "-c", "import time\nfrom pathlib import Path\n"
                               "from harness.core.trial_lock import TrialLock\n"
                               f"with TrialLock({str(victim)!r}):\n    print('held', flush=True)\n"
                               "    deadline = time.monotonic() + 60\n"
                               f"    while not Path({str(release)!r}).exists() and time.monotonic() < deadline:\n"
                               "        time.sleep(0.05)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"

    class ReleasingLog(list):
        def append(self, message: str) -> None:
            super().append(message)
            if "still have a job" in message:
                release.touch()

    messages = ReleasingLog()
    again = tune(results, "submission=adamw", "studies=1", "trials=2", messages=messages)
    holder.wait()
    assert any("1 unfinished trial(s) still have a job of an earlier launch" in m and f"pid {holder.pid}" in m
               for m in messages), messages
    assert any("1 of the trial(s) waited for did not end in their earlier jobs: launching them" in m for m in messages)
    assert again["launched"] == 1 and again["job_errors"] == 0 and again["error"] is None, (again, messages)
    final = read_json(victim / "manifest.json")
    assert final["status"] in ("reached", "not_reached", "pruned") and final["attempts"] != manifest["attempts"]


def test_prune_false_runs_the_trials_an_earlier_command_pruned_to_their_end(results: Path) -> None:
    """Before, tune prune=false over a sweep whose trials an earlier command had pruned said "all
    trials already finished" and kept them pruned: their curves stopped early without a word."""
    outcome = tune(results, "submission=adamw", "studies=1", "trials=2", "prune=false")
    victim = Path(load_sweep(Path(outcome["sweep"]))["trials"][1]["record_dir"])
    manifest = read_json(victim / "manifest.json")
    pruned = {**manifest, "status": "pruned", "summary": {**manifest["summary"], "status": "pruned"}}
    (victim / "manifest.json").write_text(json.dumps(pruned))  # as an earlier command with prune=true left it
    assert tune(results, "submission=adamw", "studies=1", "trials=2")["launched"] == 0  # pruning on: it stays
    messages: list[str] = []
    again = tune(results, "submission=adamw", "studies=1", "trials=2", "prune=false", messages=messages)
    assert again["launched"] == 1 and again["error"] is None, (again, messages)
    assert any("prune=false: 1 trial(s) of" in m and "run again to their end" in m for m in messages), messages
    assert read_json(victim / "manifest.json")["status"] != "pruned"
    assert read_json(victim / "manifest.previous-1.json")["status"] == "pruned"


def test_self_tuning_sweep(results: Path) -> None:
    outcome = tune(results, "submission=adamw", "ruleset=self", "studies=2")
    sweep = load_sweep(Path(outcome["sweep"]))
    assert len(sweep["trials"]) == 2
    manifest = read_json(Path(sweep["trials"][0]["record_dir"]) / "manifest.json")
    assert manifest["ruleset"] == "self" and manifest["max_runtime_s"] == 60  # 3 x the 20 s smoke budget


def test_submitit_local_launcher_runs_jobs_in_processes(results: Path) -> None:
    outcome = tune(results, "submission=sgd", "studies=1", "trials=2", "launcher=local",
                   "hydra.launcher.timeout_min=10")
    assert outcome["launched"] == 2 and outcome["job_errors"] == 0 and not outcome["lost"]
    rows = collect(results, ask_scheduler=False)
    assert [r["state"] for r in rows] == ["done-reached"] * 2 or all(r["state"].startswith("done") for r in rows)
    manifests = [read_json(Path(r["record_dir"]) / "manifest.json") for r in rows]
    pids = {m["attempts"][-1]["pid"] for m in manifests}
    import os

    assert os.getpid() not in pids  # each trial ran in its own process
    assert all(Path(m["attempts"][-1]["logs"]["stdout"]).is_file() for m in manifests)


def test_parallel_launcher_runs_trials_in_a_pool_of_worker_processes(results: Path) -> None:
    """launcher=parallel: joblib's loky workers, two at a time, each running several trials in turn."""
    outcome = tune(results, "submission=sgd", "studies=1", "trials=4", "launcher=parallel", "threads=1")
    assert outcome["launched"] == 4 and outcome["job_errors"] == 0 and not outcome["lost"]
    manifests = [read_json(Path(r["record_dir"]) / "manifest.json") for r in collect(results, ask_scheduler=False)]
    assert all(m["status"] in ("reached", "not_reached", "pruned") for m in manifests)
    pids = [m["attempts"][-1]["pid"] for m in manifests]
    import os

    assert os.getpid() not in pids and len(set(pids)) <= 2  # at most two workers, reused across trials


def test_status_lists_every_state(results: Path, capsys: pytest.CaptureFixture) -> None:
    outcome = tune(results, "submission=momentum", "studies=1", "trials=2")
    sweep = load_sweep(Path(outcome["sweep"]))
    # Make trial 1 look pending (no record) and add a 'running' trial whose process is gone.
    first = Path(sweep["trials"][0]["record_dir"])
    manifest = read_json(first / "manifest.json")
    manifest["status"] = "running"
    manifest["attempts"][-1]["pid"] = 2**22 + 12345  # no such process
    (first / "manifest.json").write_text(json.dumps(manifest))
    second = Path(sweep["trials"][1]["record_dir"])
    for child in second.iterdir():
        child.unlink()
    second.rmdir()
    assert main(["status", f"results={results}"]) == 0
    out = capsys.readouterr().out
    assert "study 0 trial 0  interrupted" in out
    assert "study 0 trial 1  pending" in out


def unstarted_in_job_78_1(sweep: dict, results: Path) -> Path:
    """Trial 1 of ``sweep`` without its record, and a later SLURM launch whose job 78_1 held it; that
    job's submitit folder."""
    second = Path(sweep["trials"][1]["record_dir"])
    for child in second.iterdir():
        child.unlink()
    second.rmdir()
    launch = results / "launches" / "20991231-000000-1"
    (launch / "submitit" / "78_1").mkdir(parents=True)
    (launch / "plan.json").write_text(json.dumps({"launcher": "slurm", "jobs": [
        {"sweep": sweep["dir"], "index": i, "settings": {}} for i in range(2)]}))
    return launch / "submitit" / "78_1"


def test_status_names_the_stderr_of_a_failed_job(results: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, status named only a failed job's stdout log, which was empty: its error is in the
    stderr beside it, which is now named too."""
    import harness.orchestration.status as status

    outcome = tune(results, "submission=momentum", "studies=1", "trials=2")
    job = unstarted_in_job_78_1(load_sweep(Path(outcome["sweep"])), results)
    (job / "78_1_0_log.out").write_text("")
    (job / "78_1_0_log.err").write_text("Traceback (most recent call last):\nValueError: boom\n")
    monkeypatch.setattr(status, "slurm_states", lambda ids: {"78_1": "FAILED"})
    assert main(["status", f"results={results}"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "study 0 trial 1" in line)
    assert "interrupted" in line and f"logs: {job / '78_1_0_log.out'} (stderr: {job / '78_1_0_log.err'})" in line
    assert "(stderr:" not in next(line for line in out.splitlines() if "study 0 trial 0" in line)


def test_status_shows_a_requeued_job_s_trial_as_requeued_and_a_cancelled_pending_one_as_interrupted(
        results: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a running trial whose job was requeued (PENDING) showed as running, and a trial whose
    job was cancelled before it started showed as pending, as if it would still run."""
    import harness.orchestration.status as status

    outcome = tune(results, "submission=momentum", "studies=1", "trials=2")
    sweep = load_sweep(Path(outcome["sweep"]))
    first = Path(sweep["trials"][0]["record_dir"])
    manifest = read_json(first / "manifest.json")
    manifest["status"] = "running"
    manifest["attempts"][-1]["slurm"] = {"job_id": "77"}
    (first / "manifest.json").write_text(json.dumps(manifest))
    unstarted_in_job_78_1(sweep, results)
    monkeypatch.setattr(status, "slurm_states", lambda ids: {"77": "PENDING", "78_1": "CANCELLED"})
    assert main(["status", f"results={results}"]) == 0
    out = capsys.readouterr().out
    assert "study 0 trial 0  requeued" in out and "slurm 77 PENDING" in out, out
    assert "study 0 trial 1  interrupted" in out and "slurm 78_1 CANCELLED" in out, out


def test_status_says_why_a_pending_job_waits(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A drained node or a held job: status showed PENDING, the same as a busy queue, and nothing more."""
    import harness.orchestration.status as status

    outcome = tune(results, "submission=momentum", "studies=1", "trials=2")
    unstarted_in_job_78_1(load_sweep(Path(outcome["sweep"])), results)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"  # what squeue -h -r -t PENDING -o '%i|%r' prints
    squeue.write_text("#!/bin/sh\necho '78_1|ReqNodeNotAvail, UnavailableNodes:node1'\necho '99|None'\n")
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(status, "slurm_states", lambda ids: {"78_1": "PENDING"})
    assert main(["status", f"results={results}"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if "study 0 trial 1" in line)
    assert "slurm 78_1 PENDING (ReqNodeNotAvail, UnavailableNodes:node1)" in line, line
    assert status.pending_reasons({"99"}) == {}  # squeue's "None": no reason to show


def test_progress_is_said_again_when_nothing_changes_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs held in the queue (a drained node): tune said "pending 2" once, then nothing, indefinitely."""
    import harness.orchestration.tune as tune_module

    monkeypatch.setattr(tune_module, "count_states", lambda sweeps: {"pending": 2})
    said: list[str] = []
    watcher = tune_module.ProgressWatcher([], 2, said.append, 1.0,
                                          waits=lambda stuck_only: "" if stuck_only else
                                          "; pending in SLURM's queue: 81_0 (Resources)")
    watcher.report()
    watcher.report()  # nothing changed, and not for long: nothing said
    assert len(said) == 1 and said[0].startswith("done 0 (none), running 0, pending 2")
    monkeypatch.setattr(watcher, "QUIET_S", 0.0)
    watcher.report()
    assert len(said) == 2 and "(no change for " in said[1] and "81_0 (Resources))" in said[1], said


def test_jobs_waiting_for_a_reason_that_does_not_pass_are_said_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, jobs that could never start (more CPUs than the partition has: PartitionConfig; a hold)
    were first named after QUIET_S (5 minutes) of "pending 2"; now at the first report that sees them."""
    import harness.orchestration.tune as tune_module

    monkeypatch.setattr(tune_module, "count_states", lambda sweeps: {"pending": 2})
    monkeypatch.setattr(tune_module, "launched_jobs", lambda root: {("s", 0): {"job_id": "81_0"},
                                                                    ("s", 1): {"job_id": "81_1"}})
    monkeypatch.setattr(tune_module, "pending_reasons", lambda ids: {"81_0": "PartitionConfig", "81_1": "Priority"})
    said: list[str] = []
    watcher = tune_module.ProgressWatcher([], 2, said.append, 1.0,
                                          waits=lambda stuck_only: tune_module.pending_jobs_text(Path(), stuck_only))
    watcher.report()
    watcher.report()  # the same jobs for the same reason: said once
    assert len(said) == 1 and "pending in SLURM's queue: 81_0 (PartitionConfig): a reason that" in said[0], said
    assert "81_1" not in said[0] and "scancel them and change the hydra.launcher settings" in said[0]


@pytest.mark.parametrize(("reason", "passes"), [
    ("Resources", True), ("Priority", True), ("JobArrayTaskLimit", True),
    ("QOSMaxJobsPerUserLimit", True), ("AssocGrpCpuLimit", True), ("AssocGrpCPURunMinutesLimit", True),
    ("JobHeldUser", False), ("PartitionConfig", False), ("ReqNodeNotAvail, UnavailableNodes:n1", False),
    ("PartitionTimeLimit", False), ("QOSMaxWallDurationPerJobLimit", False), ("AssocGrpCPUMinutesLimit", False),
])
def test_a_limit_on_the_user_s_running_jobs_passes_and_a_limit_the_job_exceeds_does_not(
        reason: str, passes: bool) -> None:
    """A qos's jobs-per-user limit clears as the user's own jobs end: it was said as stuck, with advice
    to scancel; a per-job limit or spent CPU minutes never clear."""
    import harness.orchestration.tune as tune_module

    assert tune_module.passes(reason) is passes


def test_jobs_held_again_after_a_release_are_said_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.orchestration.tune as tune_module

    monkeypatch.setattr(tune_module, "count_states", lambda sweeps: {"pending": 1})
    queue = ["; pending in SLURM's queue: 81_0 (JobHeldUser)", "", "; pending in SLURM's queue: 81_0 (JobHeldUser)"]
    asked: list[bool] = []
    said: list[str] = []
    watcher = tune_module.ProgressWatcher([], 1, said.append, 1.0,
                                          waits=lambda stuck_only: asked.append(stuck_only) or queue.pop(0))
    monkeypatch.setattr(watcher, "STUCK_CHECK_S", 0.0)
    for _ in range(3):
        watcher.report()
    assert sum("81_0 (JobHeldUser)" in line for line in said) == 2, said
    monkeypatch.setattr(watcher, "STUCK_CHECK_S", 3600.0)
    watcher.report()  # squeue is not asked again before STUCK_CHECK_S
    assert asked == [True, True, True]


def test_status_of_an_empty_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["status", f"results={tmp_path}"]) == 2
    assert "No sweeps under" in capsys.readouterr().err


def test_suite_smoke_preset(results: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["suite", "suite=smoke", "workloads=[fashion_mnist]", "submissions=[adamw,sgd]",
                 "studies=1", "trials=2", f"results={results}", "progress=false", "device=cpu", "poll_s=1"])
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["trials"] == 4 and summary["launched"] == 4
    assert Path(summary["table"]).is_file() and Path(summary["plots"][0]).is_file()
    assert "| fashion_mnist | smoke | " in out
    # a part of the preset: its tables beside the whole suite's, not over them (they were suite-smoke/)
    assert Path(summary["table"]).parent == results / "suite-smoke-fashion_mnist-adamw+sgd"


@pytest.mark.parametrize("changes, names, name", [
    ([], [], "suite-smoke"), (["size=mini"], [], "suite-smoke-mini"), (["size=smoke"], [], "suite-smoke"),
    (["workloads=[gpt]", "submissions=[adamw,sgd]"], [], "suite-smoke-gpt-adamw+sgd"),
    (["workloads=[cifar10,gpt,fashion_mnist]"], [], "suite-smoke"),
    (["submissions=[adamw,mypkg.adan:Adan]"], ["adamw", "adan"], "suite-smoke-adamw+adan")])
def test_a_suite_run_with_another_size_or_selection_gets_its_own_tables_folder(changes: list[str], names: list[str],
                                                                              name: str) -> None:
    """`suite size=smoke` wrote its tables into suite-mini/, over the whole suite's; a submission given
    as a module named the folder after it, colon and all (suite-smoke-adamw+mypkg.adan:Adan)."""
    from harness.config.compose import compose_config
    from harness.config.names import submission_names
    from harness.orchestration.suite import default_out_name

    cfg = compose_config("suite", ["suite=smoke", *changes])
    sweeps = [{"workload": w, "submission": s} for w in cfg.workloads
              for s in names or list(cfg.submissions) or submission_names()]
    assert default_out_name(cfg, ["suite=smoke"], sweeps) == name


def test_a_suite_s_table_is_never_written_from_records_its_leaderboard_refuses(
        results: Path, capsys: pytest.CaptureFixture) -> None:
    """Before, a rerun over an edited target rewrote suite.md/.csv from the records (the edited trial
    first, ratio 1) and only then refused to rank them; a damaged record's row was not marked."""
    args = ["suite", "suite=smoke", "workloads=[fashion_mnist]", "submissions=[adamw,sgd]", "studies=1", "trials=2",
            f"results={results}", "progress=false", "device=cpu", "poll_s=1"]
    assert main(args) == 0
    capsys.readouterr()
    out = results / "suite-smoke-fashion_mnist-adamw+sgd"
    written = {name: (out / name).read_bytes() for name in ("suite.md", "suite.csv")}
    manifests = sorted((results / "fashion_mnist-smoke" / "adamw").rglob("manifest.json"))
    edited = read_json(manifests[0])
    other = json.loads(json.dumps(edited))  # as if made with workload.sizes.smoke.target=0.5
    other["target"] = other["summary"]["target"] = other["identity"]["spec"]["target"] = 0.5
    manifests[0].write_text(json.dumps(other))
    assert main(args) == 2
    assert "different validation targets" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in written} == written
    manifests[0].write_text(json.dumps(edited)[: len(json.dumps(edited)) // 2])  # torn: damaged
    assert main(args) == 0
    capsys.readouterr()
    rows = {line.split(" | ")[2]: line for line in (out / "suite.md").read_text().splitlines()
            if line.startswith("| fashion_mnist")}
    assert rows["adamw"].rstrip(" |").endswith("yes") and not rows["sgd"].rstrip(" |").endswith("yes")
    assert str(manifests[0]) in (out / "suite.md").read_text()


def test_a_sweep_s_trial_is_run_again_as_advised_not_by_a_lone_trial_command(
        results: Path, capsys: pytest.CaptureFixture) -> None:
    """The advice used to be `optbench trial record_dir=<its folder> <its settings> rerun=true`: the
    record it wrote there was a lone trial's (ruleset single, no study), which status and score then
    refused as not the sweep's."""
    outcome = tune(results, "submission=sgd", "studies=1", "trials=2")
    entry = load_sweep(Path(outcome["sweep"]))["trials"][1]
    settings = [f"submission.hparams.{k}={v}" for k, v in entry["hparams"].items()]
    assert main(["trial", "submission=sgd", *SMOKE, f"results={results}", f"record_dir={entry['record_dir']}",
                 f"seed={entry['seed']}", *settings, "rerun=true"]) == 2
    err = capsys.readouterr().err
    assert "is a trial of the sweep" in err and "move their folders" in err
    record = Path(entry["record_dir"])
    before = read_json(record / "manifest.json")
    record.rename(results.parent / "kept-trial1")  # as advised: moved out of the results folder, kept
    again = tune(results, "submission=sgd", "studies=1", "trials=2")
    assert again["launched"] == 1 and again["error"] is None
    assert read_json(record / "manifest.json")["config_hash"] == before["config_hash"]
    assert main(["status", f"results={results}", "scheduler=false", "strict=true"]) == 0


@pytest.mark.parametrize(("args", "said"), [
    (["suite", "suite=smok"], "Valid suite options: cpu, gpu, mini, smoke."),  # was: Hydra's first line alone
    (["suite", "suite=smoke", "workloads=[]"], "workloads=[] names no workload"),  # was: an IndexError's traceback
    (["suite", "suite=smoke", "submissions=[]"], "submissions=[] names no submission"),  # was: all 13, unsaid
    (["score", "results="], "results= is empty"),  # was: the current folder read as a results folder
    (["trial", "results="], "results= is empty"),
])
def test_settings_that_mean_nothing_or_everything_are_refused(
        args: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert said in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("changed", ["submission.search_space.lr.max=0.1", "search_seed=1", "studies=2"])
def test_a_second_sweep_beside_the_first_is_refused_before_it_runs(changed: str, results: Path) -> None:
    """Before, it ran (a second sweep folder of the submission on the workload), and only optbench
    score refused the two, after every trial: 'come from 2 sweeps' or 'tuned in 2 ways'."""
    first = tune(results, "submission=sgd", "studies=1", "trials=1")
    before = sorted(results.rglob("*"))
    with pytest.raises(UserError, match="already holds the external sweep of sgd") as refused:
        tune(results, "submission=sgd", "studies=1", "trials=1", changed)
    said = str(refused.value)
    assert Path(first["sweep"]).name in said and changed.split("=")[0].split(".")[-1] in said
    assert sorted(results.rglob("*")) == before
    assert tune(results, "submission=sgd", "studies=1", "trials=1")["launched"] == 0  # as it was: resumed, done
    assert tune(results, "submission=sgd", "ruleset=self", "studies=1")["launched"] == 1  # another ruleset: its own


def test_unknown_launchers_are_clear_errors(results: Path) -> None:
    from harness.errors import UserError

    with pytest.raises(UserError, match="Valid launchers: inline, parallel, local, slurm"):
        tune(results, "submission=sgd", "studies=1", "trials=1", "launcher=cloud")
    with pytest.raises(UserError, match="hydra/launcher=ray is not supported"):
        tune(results, "submission=sgd", "studies=1", "trials=1", "hydra/launcher=ray")


def test_a_sweep_asked_with_other_timing_settings_than_its_records_is_refused(results: Path) -> None:
    """isolation and threads change a trial's charged time but not its identity: the records of a sweep
    made in-process with one thread were reused as the answer to isolation=process threads=2."""
    first = tune(results, "submission=adamw", "studies=1", "trials=2", "threads=1")
    assert first["launched"] == 2
    manifests = sorted(Path(first["sweep"]).rglob("manifest.json"))
    before = [m.read_bytes() for m in manifests]
    with pytest.raises(UserError) as refused:
        tune(results, "submission=adamw", "studies=1", "trials=2", "threads=2", "isolation=process")
    message = str(refused.value)
    assert "2 of the 2 trials" in message and first["sweep"] in message
    assert "isolation=inprocess then, isolation=process now" in message and "threads=1 then, threads=2 now" in message
    assert "results=" in message  # what to do
    assert [m.read_bytes() for m in manifests] == before  # nothing ran, nothing was rewritten
    with pytest.raises(UserError, match=r"threads=1 then, threads=null \(torch's default\) now"):
        tune(results, "submission=adamw", "studies=1", "trials=2")
    assert tune(results, "submission=adamw", "studies=1", "trials=2", "threads=1")["launched"] == 0


def test_a_finished_trial_asked_with_other_timing_settings_is_not_returned(results: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    args = ["trial", "submission=adamw", *SMOKE, f"results={results}", "threads=1"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    code = main([*args[:-1], "isolation=process", "threads=1"])
    err = capsys.readouterr().err
    assert code == 2 and "finished with other settings" in err and "isolation=inprocess then" in err, err
    assert "rerun=true" in err
    assert main([*args[:-1], "isolation=process", "threads=1", "rerun=true"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["record_dir"] == first["record_dir"] and not again.get("cached")
    assert read_json(Path(first["record_dir"]) / "manifest.json")["isolation"] == "process"


@pytest.mark.parametrize("tau_max", ["nan", "inf", "0.5", "1"])
def test_suite_and_score_refuse_a_tau_max_that_is_not_a_finite_number_above_1(tau_max: str, results: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    """inf ranked the fastest submission (score nan) below one that never reached; a suite with 0.5 ran
    every trial before its scoring failed with a traceback."""
    code = main(["suite", "suite=smoke", "workloads=[fashion_mnist]", "submissions=[sgd]", "studies=1", "trials=1",
                 f"results={results}", "progress=false", "device=cpu", f"tau_max={tau_max}"])
    assert code == 2 and f"tau_max={tau_max}" in capsys.readouterr().err
    assert not results.exists() or not list(results.rglob("manifest.json"))  # refused before any trial ran
    assert main(["score", f"results={results}", f"tau_max={tau_max}"]) == 2
    assert f"tau_max={tau_max}" in capsys.readouterr().err


@pytest.mark.parametrize("samples", ["-1", "1", "39"])
def test_score_refuses_a_bootstrap_too_small_to_give_an_interval(samples: str, results: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["score", f"results={results}", f"bootstrap={samples}"]) == 2
    assert f"bootstrap={samples}" in capsys.readouterr().err


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_score_refuses_a_bootstrap_seed_numpy_cannot_take(seed: str, results: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """seed=-1 was a traceback from NumPy's SeedSequence, after the out folder was made."""
    assert main(["score", f"results={results}", f"seed={seed}", f"out={results / 'board'}"]) == 2
    assert f"seed={seed}" in capsys.readouterr().err and not (results / "board").exists()


@pytest.mark.parametrize(("extra", "said"), [
    (["submission=adamw", "submission.hparams.lr=0.5"], "lr is searched by the external ruleset"),
    (["submission=sgd", "ruleset=self", "submission.hparams.lr=0.9"], "runs the submission's own defaults"),
    (["submission=sgd", "seed=7"], "seed is set by the sweep"),
    (["submission=sgd", "+study=1"], "study is set by the sweep"),
    (["submission=sgd", "record_dir=/tmp/x"], "record_dir is set by the sweep"),
])
def test_tune_refuses_trial_settings_the_sweep_would_replace_or_that_hand_tune(extra: list[str], said: str,
                                                                               results: Path) -> None:
    """An external sweep replaced lr=0.5 by its searched values (a second sweep folder of the same
    trials); a self-tuning sweep ran sgd hand-tuned, unmarked, and it ranked first; seed= was ignored."""
    with pytest.raises(UserError, match=said):
        tune(results, "studies=1", "trials=1", *extra)
    assert not results.exists() or not list(results.rglob("sweep.json"))


def test_tune_keeps_overrides_of_hyperparameters_it_does_not_search(results: Path) -> None:
    outcome = tune(results, "submission=adamw", "studies=1", "trials=1", "submission.hparams.batch_size=32")
    entry = load_sweep(Path(outcome["sweep"]))["trials"][0]
    assert read_json(Path(entry["record_dir"]) / "manifest.json")["hparams"]["batch_size"] == 32


@pytest.mark.parametrize(("setting", "said"), [
    ("self_tuning_factor=nan", "self_tuning_factor=nan"),  # was: a 10 s budget, null in sweep.json
    ("self_tuning_factor=inf", "self_tuning_factor=inf"),
    ("search_seed=-1", "search_seed=-1"),  # was: a traceback
])
def test_tune_refuses_sweep_settings_out_of_range(setting: str, said: str, results: Path) -> None:
    with pytest.raises(UserError, match=said):
        tune(results, "submission=sgd", "ruleset=self", "studies=1", setting)


@pytest.mark.parametrize("search_seed", ["0", "3"])
@pytest.mark.parametrize(("space", "said"), [
    # search_seed=0..2 drew only valid points and ran; 3 drew an invalid one: the ends decide now
    ("submission.search_space.momentum.max=1.5", "momentum=1.499"),
    # drawn and planned, then every run of the trial failed with a traceback, the sweep never ending
    ("+submission.search_space.batch_size={feasible_points:[32,100000]}", "batch_size=100000 is outside the range"),
    # was: "expected a value of type int ... narrow the range", which no narrowing could satisfy
    ("+submission.search_space.batch_size={min:16,max:512,scaling:log}", "integer hyperparameter.*feasible_points"),
])
def test_tune_refuses_a_search_space_whose_ends_are_invalid_before_writing_anything(
        space: str, said: str, search_seed: str, results: Path) -> None:
    with pytest.raises(UserError, match=said) as refused:
        tune(results, "submission=momentum", "studies=1", "trials=1", f"search_seed={search_seed}", space)
    assert "search space of momentum" in str(refused.value)
    assert not results.exists() or not list(results.rglob("sweep.json"))


def test_a_job_whose_trial_refuses_its_settings_reports_the_message_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.core.trial as trial
    from harness.orchestration.launch import run_job

    outcome = tune(tmp_path, "submission=sgd", "studies=1", "trials=1")  # a plan and its launch files
    plan = next(Path(outcome["launch_dir"]).rglob("plan.json"))

    def refuses(cfg):
        raise UserError("batch_size=9 is outside the range")

    monkeypatch.setattr(trial, "run_trial", refuses)
    result = run_job(OmegaConf.create({"plan": str(plan), "index": 0}))
    assert result["status"] == "error" and result["error"] == "optbench: error: batch_size=9 is outside the range"


def test_a_worker_s_first_job_takes_the_imported_objects_out_of_the_collector_s_reach(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A launcher=parallel worker (loky) runs gc.collect() after every job: over the ~335k objects torch,
    Hydra and the harness import it took 0.15-0.36 s between trials, 32 of 48 worker-seconds of the gaps.
    Frozen once per process (gc.freeze), they are not traversed again."""
    import gc

    import harness.core.trial as trial
    import harness.orchestration.launch as launch

    outcome = tune(tmp_path, "submission=sgd", "studies=1", "trials=1")
    plan = next(Path(outcome["launch_dir"]).rglob("plan.json"))
    monkeypatch.setattr(trial, "run_trial", lambda cfg: {"status": "reached"})
    monkeypatch.setattr(launch, "_FROZEN", False, raising=False)
    gc.unfreeze()
    try:
        launch.run_job(OmegaConf.create({"plan": str(plan), "index": 0}))
        frozen = gc.get_freeze_count()
        assert frozen > 10_000, frozen  # the modules imported so far
        launch.run_job(OmegaConf.create({"plan": str(plan), "index": 0}))
        assert gc.get_freeze_count() == frozen  # once per process
    finally:
        gc.unfreeze()


def test_a_new_search_dimension_without_its_plus_is_told_how_to_add_it(results: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """'Unknown setting batch_size in the overrides' said nothing of the + a new dimension needs."""
    assert main(["tune", *SMOKE, "submission=sgd", f"results={results}",
                 "submission.search_space.batch_size={feasible_points:[32,64]}"]) == 2
    err = capsys.readouterr().err
    assert "Add a dimension with a leading +: +submission.search_space.batch_size=" in err, err


@pytest.mark.parametrize("seed", ["-1", str(2**32 + 1)])
def test_a_seed_outside_32_bits_is_refused_not_aliased(seed: str, results: Path, capsys: pytest.CaptureFixture) -> None:
    """seed=2^32+1 trained exactly as seed=1, stored and scored as another study."""
    assert main(["trial", "submission=sgd", *SMOKE, f"results={results}", f"seed={seed}"]) == 2
    assert f"seed={seed} must be in [0, 2^32)" in capsys.readouterr().err


def test_a_results_folder_named_outside_ascii_or_with_a_quote_runs(tmp_path: Path) -> None:
    """Hydra's override grammar refused the launch's plan path: exit 2 after sweep.json was written."""
    results = tmp_path / "résultats d'été"
    outcome = run_tune([*SMOKE, f'results="{results}"', "poll_s=0.5", "submission=sgd", "studies=1", "trials=1"],
                       log=lambda _: None)  # quoted as on a command line: results="..."
    assert outcome["launched"] == 1 and outcome["counts"] and Path(outcome["sweep"]).is_relative_to(results)


@pytest.mark.parametrize("setting", ["submission.hparams.eps=1e-6", "submission.search_space.lr.max=0.1"])
def test_score_refuses_a_submission_tuned_otherwise_on_another_workload(setting: str, results: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """Two tune commands, one per workload, the second with a fixed hyperparameter (or the search
    space) of its own: the submission's one row of the table stood for two algorithms, one of them
    tuned by hand for its workload, which external tuning forbids."""
    common = ["submission=adamw", "studies=1", "trials=1", "max_steps=20", "progress=false", "device=cpu",
              "threads=1", "workload.size=smoke", f"results={results}"]
    run_tune(["workload=fashion_mnist", *common], log=lambda _: None)
    run_tune(["workload=rosenbrock", *common, setting], log=lambda _: None)
    capsys.readouterr()
    assert main(["score", f"results={results}", f"out={results / 'board'}", "bootstrap=0"]) == 2
    err = capsys.readouterr().err
    assert "adamw" in err and "fashion_mnist-smoke" in err and "rosenbrock-smoke" in err, err
    assert setting.split("=")[0].removeprefix("submission.hparams.").removeprefix("submission.") in err, err
    assert f"{results}/rosenbrock-smoke/adamw/external-" in err, err


@pytest.mark.parametrize("setting", ["submission.hparams.batch_size=64", "ruleset=self"])
def test_score_ranks_a_submission_with_a_batch_size_or_ruleset_of_its_own_per_workload(
        setting: str, results: Path, capsys: pytest.CaptureFixture) -> None:
    """A batch size is a submission's choice per workload (AlgoPerf's get_batch_size; a workload's range
    may exclude the default, and optbench then asks for another); and an external sweep on one workload
    beside a self-tuning one on another is not one submission tuned two ways: it is two leaderboards,
    refused together as such (two rulesets), each scored on its own."""
    common = ["submission=adamw", "studies=1", "trials=1", "max_steps=20", "progress=false", "device=cpu",
              "threads=1", "workload.size=smoke", f"results={results}"]
    run_tune(["workload=fashion_mnist", *common], log=lambda _: None)
    run_tune(["workload=rosenbrock", *common, setting], log=lambda _: None)
    capsys.readouterr()
    score = ["score", f"results={results}", f"out={results / 'board'}", "bootstrap=0"]
    if setting.startswith("ruleset="):
        assert main(score) == 2
        err = capsys.readouterr().err
        assert "2 rulesets" in err and "self on rosenbrock-smoke" in err and "tuned in" not in err, err
        for ruleset in ("external", "self"):
            assert main([*score, f"ruleset={ruleset}"]) == 0, capsys.readouterr().err
    else:
        assert main(score) == 0, capsys.readouterr().err


def test_a_target_met_at_the_first_evaluation_is_noted(results: Path, capsys: pytest.CaptureFixture) -> None:
    """Every trial reaching at its first evaluation ranks submissions by the cost of the steps before
    it: the leaderboard said nothing of it."""
    easy = ["workload.sizes.smoke.target=0.01", "workload.sizes.smoke.eval_every_steps=5"]
    for submission in ("sgd", "adamw"):
        tune(results, f"submission={submission}", "studies=1", "trials=2", *easy)
    board = results / "board"
    assert main(["score", f"results={results}", f"out={board}", "bootstrap=0"]) == 0
    text = (board / "leaderboard.md").read_text()
    assert "every trial that reached the target did so at its first evaluation" in text
    other = results.parent / "other"
    for submission in ("sgd", "adamw"):
        tune(other, f"submission={submission}", "studies=1", "trials=2")
    assert main(["score", f"results={other}", f"out={board}", "bootstrap=0"]) == 0
    assert "at its first evaluation" not in (board / "leaderboard.md").read_text()


def test_score_prints_the_table_its_files_have(results: Path, capsys: pytest.CaptureFixture) -> None:
    """The printed table was the board from before the bootstrap: no "95% CI" or "P(rank holds)"."""
    for submission in ("sgd", "adamw"):
        tune(results, f"submission={submission}", "studies=2", "trials=1")
    capsys.readouterr()
    assert main(["score", f"results={results}", f"out={results / 'board'}", "bootstrap=50"]) == 0
    printed = capsys.readouterr().out
    table = printed[:printed.rindex("\n{")]  # then the command's JSON summary
    assert "95% CI" in table and table.strip() in (results / "board" / "leaderboard.md").read_text()


FAILING = '''
import dataclasses
from pathlib import Path

import torch

from harness.submission import TorchOptimSubmission, TrainingHparams


@dataclasses.dataclass(kw_only=True)
class FailingHparams(TrainingHparams):
    lr: float


class Failing(TorchOptimSubmission):
    """SGD whose update raises: in every trial, or only in the first one run (MARKER)."""

    Hparams = FailingHparams

    def build_optimizer(self, params, hp):
        return torch.optim.SGD(params, lr=hp.lr)

    def update(self, batch, compute_loss):
        marker = Path(MARKER)
        if EVERY or not marker.exists():
            marker.touch()
            raise ValueError("a sign error in the update")
        return super().update(batch, compute_loss)


SUBMISSION = Failing
'''


@pytest.mark.parametrize("every, status", [(True, 3), (False, 0)])
def test_a_sweep_whose_every_trial_failed_exits_3_and_one_failure_among_others_does_not(
        every: bool, status: int, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A tune whose every trial failed in the submission's code exited 0, as if it had measured something."""
    source = tmp_path / "failing.py"
    source.write_text(FAILING.replace("MARKER", repr(str(tmp_path / "failed_once"))).replace("EVERY", str(every)))
    (tmp_path / "failing.yaml").write_text("hparams: {lr: 0.05, batch_size: 64}\n"
                                          "search_space:\n  lr: {min: 0.01, max: 0.2, scaling: log}\n")
    command = ["tune", *SMOKE, f"results={tmp_path / 'results'}", "poll_s=0.5", f"submission={source}",
               "studies=1", "trials=2", "prune=false"]
    assert main(command) == status
    out, err = capsys.readouterr()
    assert len(json.loads(out.splitlines()[-1])["all_failed"]) == (1 if every else 0)
    if every:
        assert "every one of the 2 trials of" in err and "ValueError: a sign error in the update" in err
        assert main(command) == 3  # a rerun launches nothing and says it again
        assert "every one of the 2 trials of" in capsys.readouterr().err
    else:
        assert "every one of" not in err


def test_the_command_that_moves_a_failed_sweep_aside_works_in_a_folder_with_a_space(tmp_path: Path) -> None:
    """It was printed unquoted: `mv /x/my results/...` moved nothing, or the wrong folder."""
    import subprocess

    from harness.orchestration.tune import _move_out

    sweep = tmp_path / "my results" / "w-cpu" / "sub" / "external-abc"
    (sweep / "study0").mkdir(parents=True)
    subprocess.run(["bash", "-c", _move_out(str(sweep))], check=True)
    moved = tmp_path / "my results-failed" / "w-cpu" / "sub" / "external-abc"
    assert not sweep.exists() and (moved / "study0").is_dir()
