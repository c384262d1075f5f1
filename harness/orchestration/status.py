"""``optbench status results=DIR``: every study and trial of every sweep with its state and logs.

States come from the records (``pending`` when a trial has no record yet, ``running`` while its
manifest says so, else its final status) and are checked against the scheduler where one is
known: a ``running`` trial whose SLURM job is no longer queued, or whose local process is gone,
is shown as ``interrupted`` (run the same tune command again to resume it), as is a ``pending``
one whose job ended before it started (cancelled, failed); a ``running`` trial whose job was
requeued and waits in the queue is ``requeued``. The SLURM job of
every launched trial is found through the launch plans and submitit's job folders, and its
state is read from ``squeue`` (queued jobs) and ``sacct`` (ended ones) when they are installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.config.compose import compose_config
from harness.core.records import FINAL_STATUSES, DamagedRecord, read_json, read_manifest
from harness.core.sweep_file import SWEEP_FILE, load_sweep, trial_state
from harness.core.trial_lock import lock_holder
from harness.errors import Incomplete, UserError
from harness.paths import Unreadable, walk_folders
from scoring.consistency import check_consistent, check_tuning_budgets
from scoring.records import Records, problem_messages, read_records
from scoring.trial_files import FOREIGN, MISSING, RUNNING, STRAY, SWEEP, Problem

STATE_NAMES = {"reached": "done-reached", "not_reached": "done-not-reached", "pruned": "done-pruned",
               "diverged": "diverged",
               "failed": "failed", "running": "running", "pending": "pending", "interrupted": "interrupted",
               "requeued": "requeued", "damaged": "damaged"}


def collect(results: Path, ask_scheduler: bool = True) -> list[dict[str, Any]]:
    """One row per trial of every sweep under ``results``.

    A damaged sweep file gives one row in state ``damaged`` (its trials cannot be listed); a
    damaged manifest gives its trial that state, with the problem in ``problem``.
    """
    paths, damaged = [], []
    for found in walk_folders(str(results), lambda folder, entries: SWEEP_FILE not in {e.name for e in entries}):
        if isinstance(found, Unreadable):
            damaged.append(_unreadable_row(found))
        elif SWEEP_FILE in {entry.name for entry in found[1]}:
            paths.append(Path(found[0]) / SWEEP_FILE)
    sweeps = []
    for path in sorted(paths):
        try:
            sweeps.append(load_sweep(path.parent))
        except DamagedRecord as error:
            damaged.append(_damaged_sweep_row(path, error))
    return damaged + trial_rows(sweeps, launched_jobs(results), results, ask_scheduler)


def trial_rows(sweeps: list[dict[str, Any]], jobs: dict[tuple[str, int], dict[str, Any]], results: Path,
               ask_scheduler: bool = True) -> list[dict[str, Any]]:
    """One row per trial of ``sweeps``: its state from its record, checked against its SLURM job (``jobs``:
    :func:`launched_jobs`). ``optbench tune`` reports its launch's trials with these rows too, so that
    its counts and ``optbench status``'s agree."""
    known = {j["job_id"] for j in jobs.values() if j.get("job_id")}
    manifests = {}
    for sweep in sweeps:  # also the jobs that ran each trial's latest attempt
        for entry in sweep["trials"]:
            manifests[entry["record_dir"]] = manifest = _manifest_or_problem(Path(entry["record_dir"]))
            known.add(_slurm_id((manifest.get("attempts") or [{}])[-1]))
    known.discard(None)
    scheduler = slurm_states(known) if ask_scheduler else {}
    waiting = pending_reasons({job for job, state in scheduler.items() if state == "PENDING"})
    rows = []
    for sweep in sweeps:
        for entry in sweep["trials"]:
            record_dir = Path(entry["record_dir"])
            state = trial_state(record_dir)
            manifest = manifests[entry["record_dir"]]
            attempt = (manifest.get("attempts") or [{}])[-1]
            job = jobs.get((sweep_key(sweep["dir"]), entry["index"]), {})
            slurm_id = (_slurm_id(attempt) or job.get("job_id")) if job.get("launcher") != "local" else None
            slurm_state = scheduler.get(slurm_id) if slurm_id else None
            if state == "running" and _gone(attempt, slurm_state, bool(scheduler)):
                state = "interrupted"
            elif state == "running" and attempt.get("slurm") and slurm_state in QUEUED_STATES:
                state = "requeued"  # its job was requeued (preempted, scontrol requeue): it waits to resume
            elif state == "pending" and slurm_state == "RUNNING":
                state = "running"  # the job has started; the trial has not written its record yet
            elif state == "pending" and slurm_state and slurm_state not in LIVE_STATES:
                state = "interrupted"  # its job ended (cancelled, failed, timed out) before the trial started
            summary = manifest.get("summary") or {}
            rows.append({
                "sweep": sweep["sweep_id"], "workload": sweep["workload"], "size": sweep["size"],
                "submission": sweep["submission"], "ruleset": sweep["ruleset"],
                "study": entry["study"], "trial": entry["trial"], "seed": entry["seed"],
                "state": STATE_NAMES[state], "time_to_target_s": summary.get("time_to_target_s"),
                "best_validation": summary.get("best_validation"), "steps": summary.get("steps"),
                "slurm_job": slurm_id, "slurm_state": slurm_state, "slurm_reason": waiting.get(slurm_id),
                "record_dir": str(record_dir),
                "logs": log_path([(attempt.get("logs") or {}).get("stdout"), job.get("log"), attempt.get("job_dir")],
                                 results),
                "problem": manifest.get("problem"),
                "stderr": job.get("stderr"),
            })
    return rows


def log_path(candidates: list[str | None], results: Path) -> str | None:
    """The first of ``candidates`` (the attempt's own log, the launch's job log, the job's folder)
    that exists inside ``results``, else the first that exists, else the first given. An attempt
    names its log by the path it was written at: in a copied results folder (brought back from a
    cluster) that is in the original, while the launch's job log is found in the copy."""
    given = [path for path in candidates if path and path != "not submitted"]
    existing = [path for path in given if Path(path).exists()]
    inside = [path for path in existing if Path(path).resolve().is_relative_to(results.resolve())]
    return (inside or existing or [path for path in candidates if path] or [None])[0]


def _manifest_or_problem(record_dir: Path) -> dict[str, Any]:
    """The trial's manifest, ``{}`` when there is none, or ``{"problem": ...}`` when it is damaged."""
    try:
        return read_manifest(record_dir / "manifest.json") or {}
    except DamagedRecord as error:
        return {"problem": str(error)}


def _damaged_sweep_row(path: Path, error: DamagedRecord) -> dict[str, Any]:
    parts = path.parent.parts
    workload_size, submission = (parts[-3], parts[-2]) if len(parts) >= 3 else ("?", "?")
    workload, _, size = workload_size.rpartition("-")
    return {"sweep": path.parent.name, "workload": workload or workload_size, "size": size or "?",
            "submission": submission, "ruleset": path.parent.name.partition("-")[0], "study": None,
            "trial": None, "seed": None, "state": "damaged", "time_to_target_s": None, "best_validation": None,
            "steps": None, "slurm_job": None, "slurm_state": None, "record_dir": str(path.parent), "logs": None,
            "problem": str(error)}


def _unreadable_row(found: Unreadable) -> dict[str, Any]:
    """A folder that cannot be listed: what is under it (sweeps, trials) is unknown."""
    parts = Path(found.folder).parts
    return {"sweep": None, "workload": parts[-1], "size": "?", "submission": "?", "ruleset": None, "study": None,
            "trial": None, "seed": None, "state": "damaged", "time_to_target_s": None, "best_validation": None,
            "steps": None, "slurm_job": None, "slurm_state": None, "record_dir": found.folder, "logs": None,
            "problem": f"{found.folder} cannot be listed ({found.reason}): the sweeps and trials under it are "
                       f"unknown; make it readable to this account (ls -ld, chmod)"}


def sweep_key(folder: str | Path) -> str:
    """A sweep folder as ``<workload>-<size>/<submission>/<ruleset>-<hash>``, its place in a results
    folder: a launch's plan names sweeps by the paths they had at launch, which a copied (or moved)
    results folder no longer has."""
    return "/".join(Path(folder).parts[-3:])


def launched_jobs(results: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(:func:`sweep_key`, trial index) -> the latest launch's job: launcher, SLURM job id, log file.

    submitit names each job's folder after its job id (``<array id>_<task>`` for an array) and
    array task ``i`` runs entry ``i`` of the plan. ``log`` is only ever a path that exists: the jobs
    of a submitit launch that has no job folder at all (sbatch refused it) are ``"not submitted"``,
    a job that has not started yet has ``None``.
    """
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for plan_path in sorted(results.rglob("plan.json")):  # launch folders sort by time
        plan = read_json(plan_path) or {}
        by_task = job_folders(plan_path.parent, len(plan.get("jobs", [])))
        submitit = plan.get("launcher") in ("local", "slurm")
        any_submitted = any(f.is_dir() and f.name[:1].isdigit() for f in (plan_path.parent / "submitit").glob("*"))
        for i, job in enumerate(plan.get("jobs", [])):
            folder = by_task.get(i)
            logs = sorted(folder.glob("*_log.out")) if folder else []
            job_dir = plan_path.parent / "jobs" / str(i)
            log = str(logs[-1]) if logs else str(job_dir) if job_dir.is_dir() else None
            if log is None and submitit and not any_submitted:
                log = "not submitted"  # the scheduler took no job of this launch
            found[(sweep_key(job["sweep"]), job["index"])] = {
                "launcher": plan.get("launcher"),
                "job_id": folder.name if folder and plan.get("launcher") == "slurm" else None,
                "log": log,
                "stderr": nonempty_stderr(logs[-1]) if logs else None,
            }
    return found


def nonempty_stderr(stdout_log: Path) -> str | None:
    """The stderr beside a submitit job's stdout log (``*_log.err``) when it holds anything: where a
    job that failed says why, while its stdout may be empty."""
    stderr = stdout_log.with_suffix(".err")
    try:
        return str(stderr) if stderr.stat().st_size > 0 else None
    except OSError:
        return None


def job_folders(launch_dir: Path, jobs: int) -> dict[int, Path]:
    """Plan index -> submitit's folder of the job that runs it, for the launch in ``launch_dir`` of
    ``jobs`` jobs: array task ``i`` (folder ``<array id>_<i>``) runs entry ``i``; a one-job launch is
    submitted as a plain job (folder ``<job id>``). The folder's name is the job's SLURM id."""
    by_task: dict[int, Path] = {}
    for folder in (launch_dir / "submitit").glob("*"):
        head, _, task = folder.name.rpartition("_")
        if head and task.isdigit():
            by_task[int(task)] = folder
        elif folder.name.isdigit() and jobs == 1:
            by_task[0] = folder
    return by_task


def slurm_states(job_ids: set[str]) -> dict[str, str]:
    """State of each SLURM job id: squeue for queued/running jobs, sacct for the rest."""
    if not job_ids or not shutil.which("squeue"):
        return {}
    states: dict[str, str] = {}
    queued = _run(["squeue", "-h", "-r", "-o", "%i %T"])
    for line in queued.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    missing = sorted(job_ids - set(states))
    if missing and shutil.which("sacct"):
        out = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(missing)])
        for line in out.splitlines():
            job, _, state = line.partition("|")
            if job in job_ids:
                states[job] = state.split()[0] if state else state
    return states


def pending_reasons(job_ids: set[str]) -> dict[str, str]:
    """Why each of the pending SLURM jobs ``job_ids`` waits, as squeue says it (``Resources``, ``Priority``,
    ``JobHeldAdmin``, ``ReqNodeNotAvail, ...``): a queue that never moves (a drained node, a held job) is
    told apart from one that is busy. Jobs squeue gives no reason for are left out."""
    if not job_ids or not shutil.which("squeue"):
        return {}
    reasons = {}
    for line in _run(["squeue", "-h", "-r", "-t", "PENDING", "-o", "%i|%r"]).splitlines():
        job, _, reason = line.partition("|")
        if job in job_ids and reason.strip() and reason.strip() != "None":
            reasons[job] = reason.strip()
    return reasons


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _slurm_id(attempt: dict[str, Any]) -> str | None:
    slurm = attempt.get("slurm") or {}
    if slurm.get("array_job_id") and slurm.get("array_task_id"):
        return f"{slurm['array_job_id']}_{slurm['array_task_id']}"
    return slurm.get("job_id")


#: SLURM job states in which a job still holds (or will run) its trial; those of a job waiting in the queue
LIVE_STATES = ("RUNNING", "PENDING", "REQUEUED", "REQUEUE_HOLD", "COMPLETING", "CONFIGURING", "SUSPENDED", "RESIZING")
QUEUED_STATES = ("PENDING", "REQUEUED", "REQUEUE_HOLD")


def live_jobs(sweeps: list[dict[str, Any]], launch_root: Path,
              only: set[tuple[str, int]] | None = None) -> dict[tuple[str, int], str]:
    """(sweep folder, trial index) -> what still holds that trial, for the trials of ``sweeps`` that a
    job of an earlier launch (from ``launch_root``) still runs or will run: a SLURM job queued or
    running (the latest launch's, or the one of the trial's latest attempt), or any process that
    holds the trial's lock (harness/core/trial_lock.py). A command launched again (``optbench tune`` after the
    first was killed) must not launch these a second time: the copy fails on the trial's lock, or
    runs it while the first waits in the queue. ``only``: look at these trials alone."""
    jobs = launched_jobs(launch_root) if launch_root.is_dir() else {}
    candidates: dict[tuple[str, int], set[str]] = {}
    held: dict[tuple[str, int], str] = {}
    for sweep in sweeps:
        for entry in sweep["trials"]:
            key = (str(Path(sweep["dir"])), int(entry["index"]))
            if only is not None and key not in only:
                continue
            attempt = (_manifest_or_problem(Path(entry["record_dir"])).get("attempts") or [{}])[-1]
            job = jobs.get((sweep_key(sweep["dir"]), entry["index"]), {})
            ids = {job.get("job_id") if job.get("launcher") == "slurm" else None, _slurm_id(attempt)} - {None}
            if ids:
                candidates[key] = ids
            if who := lock_holder(Path(entry["record_dir"])):  # running now, under any launcher
                held[key] = f"running: {who}"
    states = slurm_states(set().union(*candidates.values())) if candidates else {}
    for key, ids in candidates.items():
        live = sorted(f"SLURM job {i} {states[i]}" for i in ids if states.get(i) in LIVE_STATES)
        if live and key not in held:
            held[key] = live[0]
    return held


def _gone(attempt: dict[str, Any], slurm_state: str | None, scheduler_known: bool) -> bool:
    """Whether the process of a 'running' attempt is certainly no longer running."""
    if attempt.get("slurm"):
        return scheduler_known and slurm_state not in LIVE_STATES
    if attempt.get("host") == os.uname().nodename and attempt.get("pid"):
        try:
            os.kill(int(attempt["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return _is_zombie(int(attempt["pid"]))
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def run_status(overrides: list[str]) -> list[dict[str, Any]]:
    cfg = compose_config("status", overrides)
    results = Path(cfg.results)
    if not results.is_dir():
        raise UserError(f"results={results} is not a folder.")
    rows = collect(results, bool(cfg.scheduler))
    # as score reads them (through its index), what the rows alone cannot show; resolved as the rows' folders are
    records = read_records(results.resolve(), index=True)
    by_folder = {row["record_dir"]: row for row in rows if row["study"] is not None}  # trial rows, by folder
    unseen = [problem for problem in records.problems if mark_row(by_folder, problem)]
    if not rows and not unseen:
        raise UserError(f"No sweeps under {results}: run `optbench tune` or `optbench suite` with results={results}.")
    print(format_rows(rows), end="", flush=True)
    for message in problem_messages(unseen, records.planned):
        print(f"warning: {message}", file=sys.stderr, flush=True)
    if cfg.strict:
        refuse_incomplete(results, rows, records)
    return rows


def mark_row(rows: dict[str, dict[str, Any]], problem: Problem) -> bool:
    """Put ``problem`` (score's reading of a trial) on its trial's row where the row does not say it
    (a record that is not the slot's trial, one that disagrees with its evaluations); True when no
    row can show it (trials of a sweep whose plan is lost or unreadable, a record in a folder the
    plan has none in): to be said beside the listing."""
    row = rows.get(str(problem.record_dir))  # ``rows``: the trials' rows by their folders
    if row is None:
        return problem.kind in (SWEEP, FOREIGN, STRAY) or problem.sweep is None
    if problem.kind in (MISSING, RUNNING):  # its state says it: pending, running or interrupted
        return False
    if not row.get("problem"):
        row["problem"] = f"{problem.file}: {problem.detail}"
    return False


def refuse_incomplete(results: Path, rows: list[dict[str, Any]], records: Records) -> None:
    """``strict=true``: exit 1 where a trial has not ended with a readable record, or where
    ``optbench score strict=true`` would refuse the records for another reason (a manifest and
    evals.jsonl that disagree, trials found without their sweep's plan): read as score reads them,
    so that both answer "complete?" alike. Then exit 2 where score would refuse to compare them
    (two sweeps of one submission, other targets or hardware, other tuning budgets:
    scoring/consistency.py), as its own settings (precisions, tau_max) do not decide."""
    messages = problem_messages(records.problems, records.planned)
    if unfinished_rows(rows) and not messages:  # score's own lines name those trials, where it lists any
        messages.append(f"{len(unfinished_rows(rows))} trial(s) have not ended with a readable record "
                        f"(listed above)")
    if messages:
        listed = "".join(f"\n  - {message}" for message in messages)
        raise Incomplete(f"strict=true: the records under {results} are not complete:{listed}")
    if not records.trials.empty:  # complete, but comparable? What score refuses whatever its settings
        try:
            check_consistent(records.trials)
            check_tuning_budgets(records.trials, records.per_study)
        except UserError as error:
            raise UserError(f"strict=true: the records under {results} are complete, but optbench score would "
                            f"refuse to rank them: {error}") from None


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines, current = [], None
    for row in rows:
        if row["sweep"] is None:  # a folder that cannot be listed (_unreadable_row)
            lines.append(f"unreadable folder: {row['problem']}")
            current = None
            continue
        key = (row["workload"], row["size"], row["submission"], row["ruleset"], row["sweep"])
        if key != current:
            current = key
            lines.append(f"{row['workload']}/{row['size']} {row['submission']} "
                         f"({row['ruleset']}, sweep {row['sweep']})")
        outcome = (f"{row['time_to_target_s']:.2f}s to target" if row["time_to_target_s"] is not None
                   else f"best {row['best_validation']:.4g}" if row["best_validation"] is not None else "")
        waits = f" ({row['slurm_reason']})" if row.get("slurm_reason") else ""
        slurm = f" slurm {row['slurm_job']} {row['slurm_state'] or '?'}{waits}" if row["slurm_job"] else ""
        if row["study"] is None:  # the sweep file itself
            lines.append(f"  sweep file damaged: {row['problem']}")
            continue
        stderr = f" (stderr: {row['stderr']})" if row.get("stderr") and not row["state"].startswith("done-") else ""
        lines.append(f"  study {row['study']} trial {row['trial']}  {row['state']:<17} {outcome:<20}{slurm}"
                     f"  logs: {row['logs'] or '-'}{stderr}")
        if row.get("problem"):
            lines.append(f"      {row['problem']}")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    lines.append("total: " + ", ".join(f"{state} {n}" for state, n in sorted(counts.items())))
    return "\n".join(lines) + "\n"


def unfinished_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of trials that have not ended cleanly: damaged, pending, running or interrupted."""
    ended = {STATE_NAMES[s] for s in FINAL_STATUSES}
    return [r for r in rows if r["state"] not in ended]
