"""``optbench status results=DIR``: every study and trial of every sweep with its state and logs.

States come from the records (``pending`` when a trial has no record yet, ``running`` while its
manifest says so, else its final status) and are checked against the scheduler where one is
known: a ``running`` trial whose SLURM job is no longer queued, or whose local process is gone,
is shown as ``interrupted`` (run the same tune command again to resume it). The SLURM job of
every launched trial is found through the launch plans and submitit's job folders, and its
state is read from ``squeue`` (queued jobs) and ``sacct`` (ended ones) when they are installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import compose_config
from harness.errors import UserError
from harness.records import read_json
from harness.sweep import SWEEP_FILE, trial_state

STATE_NAMES = {"reached": "done-reached", "not_reached": "done-not-reached", "pruned": "done-pruned",
               "diverged": "diverged",
               "failed": "failed", "running": "running", "pending": "pending", "interrupted": "interrupted"}


@dataclass
class StatusConfig:
    """``optbench status``'s keys."""

    results: str = "results"
    scheduler: bool = True  # ask squeue/sacct about SLURM jobs when they are installed


def collect(results: Path, ask_scheduler: bool = True) -> list[dict[str, Any]]:
    """One row per trial of every sweep under ``results``."""
    sweeps = sorted(results.rglob(SWEEP_FILE))
    if not sweeps:
        raise UserError(f"No sweeps under {results}: run `optbench tune` or `optbench suite` with results={results}.")
    jobs = launched_jobs(results)
    known = {j["job_id"] for j in jobs.values() if j.get("job_id")}
    for path in sweeps:  # also the jobs that ran each trial's latest attempt
        for entry in (read_json(path) or {}).get("trials", []):
            manifest = read_json(Path(entry["record_dir"]) / "manifest.json") or {}
            known.add(_slurm_id((manifest.get("attempts") or [{}])[-1]))
    known.discard(None)
    scheduler = slurm_states(known) if ask_scheduler else {}
    rows = []
    for path in sweeps:
        sweep = read_json(path) or {}
        for entry in sweep.get("trials", []):
            record_dir = Path(entry["record_dir"])
            state = trial_state(record_dir)
            manifest = read_json(record_dir / "manifest.json") or {}
            attempt = (manifest.get("attempts") or [{}])[-1]
            job = jobs.get((str(Path(sweep["dir"]).resolve()), entry["index"]), {})
            slurm_id = (_slurm_id(attempt) or job.get("job_id")) if job.get("launcher") != "local" else None
            slurm_state = scheduler.get(slurm_id) if slurm_id else None
            if state == "running" and _gone(attempt, slurm_state, bool(scheduler)):
                state = "interrupted"
            elif state == "pending" and slurm_state == "RUNNING":
                state = "running"  # the job has started; the trial has not written its record yet
            summary = manifest.get("summary") or {}
            rows.append({
                "sweep": sweep.get("sweep_id"), "workload": sweep.get("workload"), "size": sweep.get("size"),
                "submission": sweep.get("submission"), "ruleset": sweep.get("ruleset"),
                "study": entry["study"], "trial": entry["trial"], "seed": entry["seed"],
                "state": STATE_NAMES[state], "time_to_target_s": summary.get("time_to_target_s"),
                "best_validation": summary.get("best_validation"), "steps": summary.get("steps"),
                "slurm_job": slurm_id, "slurm_state": slurm_state, "record_dir": str(record_dir),
                "logs": (attempt.get("logs") or {}).get("stdout") or job.get("log") or attempt.get("job_dir"),
            })
    return rows


def launched_jobs(results: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(sweep folder, trial index) -> the latest launch's job: launcher, SLURM job id, log file.

    submitit names each job's folder after its job id (``<array id>_<task>`` for an array) and
    array task ``i`` runs entry ``i`` of the plan.
    """
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for plan_path in sorted(results.rglob("plan.json")):  # launch folders sort by time
        plan = read_json(plan_path) or {}
        by_task: dict[int, Path] = {}
        for folder in (plan_path.parent / "submitit").glob("*"):
            head, _, task = folder.name.rpartition("_")
            if head and task.isdigit():
                by_task[int(task)] = folder
            elif folder.name.isdigit() and len(plan.get("jobs", [])) == 1:
                by_task[0] = folder  # a one-job launch is submitted as a plain job, not an array
        for i, job in enumerate(plan.get("jobs", [])):
            folder = by_task.get(i)
            logs = sorted(folder.glob("*_log.out")) if folder else []
            found[(str(Path(job["sweep"]).resolve()), job["index"])] = {
                "launcher": plan.get("launcher"),
                "job_id": folder.name if folder and plan.get("launcher") == "slurm" else None,
                "log": str(logs[-1]) if logs else str(plan_path.parent / "jobs" / str(i)),
            }
    return found


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


def _gone(attempt: dict[str, Any], slurm_state: str | None, scheduler_known: bool) -> bool:
    """Whether the process of a 'running' attempt is certainly no longer running."""
    if attempt.get("slurm"):
        return scheduler_known and slurm_state not in ("RUNNING", "PENDING", "REQUEUED", "COMPLETING",
                                                       "CONFIGURING", "SUSPENDED", "RESIZING")
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
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="status_schema", node=StatusConfig)
    cfg = compose_config("status", overrides)
    results = Path(cfg.results)
    if not results.is_dir():
        raise UserError(f"results={results} is not a folder.")
    rows = collect(results, bool(cfg.scheduler))
    print(format_rows(rows), end="", flush=True)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines, current = [], None
    for row in rows:
        key = (row["workload"], row["size"], row["submission"], row["ruleset"], row["sweep"])
        if key != current:
            current = key
            lines.append(f"{row['workload']}/{row['size']} {row['submission']} "
                         f"({row['ruleset']}, sweep {row['sweep']})")
        outcome = (f"{row['time_to_target_s']:.2f}s to target" if row["time_to_target_s"] is not None
                   else f"best {row['best_validation']:.4g}" if row["best_validation"] is not None else "")
        slurm = f" slurm {row['slurm_job']} {row['slurm_state'] or '?'}" if row["slurm_job"] else ""
        lines.append(f"  study {row['study']} trial {row['trial']}  {row['state']:<17} {outcome:<20}{slurm}"
                     f"  logs: {row['logs'] or '-'}")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    lines.append("total: " + ", ".join(f"{state} {n}" for state, n in sorted(counts.items())))
    return "\n".join(lines) + "\n"
