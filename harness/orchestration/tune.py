"""``optbench tune``: plan a sweep, launch its unfinished trials, report progress, summarise.

Running the same command again finds the same sweep folder (it is named by a hash of the plan):
finished trials are skipped, interrupted ones resume from their checkpoints, and when every
trial has ended nothing is launched.

A launch that goes wrong is reported, never passed over: the launcher and its ``hydra.*`` settings
are checked before anything is written; jobs the scheduler would not take are counted in
``not_submitted`` with its message in ``error`` (``optbench tune`` exits 2), and launched trials
that did not end in ``unfinished`` (exit 1). Records already written are never touched.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config.compose import compose_config, split_overrides
from harness.config.described import described_submission
from harness.config.registry import workload_class
from harness.config.schema import TuneConfig
from harness.core.records import FINAL_STATUSES, DamagedRecord, made_otherwise, read_manifest
from harness.core.runner import data_digest_now
from harness.core.sweep_file import needs_run, trial_config, trial_state, write_sweep
from harness.errors import Interrupted, UserError
from harness.log import Log, stderr_logger
from harness.orchestration.launch import check_launcher, launch
from harness.orchestration.status import (
    STATE_NAMES,
    launched_jobs,
    live_jobs,
    pending_reasons,
    sweep_key,
    trial_rows,
)
from harness.orchestration.sweep import SweepSettings, plan_sweep


def split_hydra(overrides: list[str]) -> tuple[list[str], list[str]]:
    """``hydra.*`` and ``hydra/...`` overrides (for the launcher) and the rest."""
    hydra = [o for o in overrides if o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    return hydra, [o for o in overrides if o not in hydra]


def settings_of(cfg: Any) -> SweepSettings:
    """The sweep-shaping part of a tune or suite config (whose schemas extend :class:`SweepSettings`)."""
    return SweepSettings(**{field.name: cfg[field.name] for field in dataclasses.fields(SweepSettings)})


def run_tune(overrides: list[str], log: Log = None) -> dict[str, Any]:
    """Plan (or find) the sweep of one workload x submission and run what is left of it."""
    log = log or stderr_logger("tune")
    hydra_overrides, rest = split_hydra(overrides)
    own, trial_overrides = split_overrides(rest, TuneConfig)
    cfg = compose_config("tune", own)
    check_launcher(str(cfg.launcher), hydra_overrides)  # before anything is written
    sweep = plan_sweep(settings_of(cfg), trial_overrides)
    write_sweep(sweep)
    log(f"sweep {sweep['dir']}: {sweep['ruleset']} ruleset, {sweep['studies']} studies x "
        f"{sweep['trials_per_study']} trials of {sweep['submission']} on {sweep['workload']}/{sweep['size']}, "
        f"budget {sweep['budget_s']:g}s each")
    prune = {sweep["dir"]: {"prune": bool(sweep["trials"][0]["config"].get("prune", True))}}  # a kept plan may differ
    outcome = run_sweeps([sweep], cfg, hydra_overrides, log, prune)
    return {"sweep": sweep["dir"], **outcome}


def run_sweeps(sweeps: list[dict[str, Any]], cfg: Any, hydra_overrides: list[str], log: Log,
               settings: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Launch every unfinished trial of ``sweeps`` in one launch, in their order (within a sweep,
    study by study, trial by trial); report progress until done. ``settings``: see :func:`launch`."""
    refuse_other_making(sweeps, log)
    settings, pruned = run_pruned_to_the_end(sweeps, settings or {}, log)
    todo = [(Path(s["dir"]), t["index"]) for s in sweeps for t in s["trials"]
            if (s["dir"], t["index"]) in pruned or needs_run(Path(t["record_dir"]))]
    total = sum(len(s["trials"]) for s in sweeps)
    damaged = damaged_records(sweeps)
    for problem in damaged:
        log(f"not run, its record is damaged: {problem}")
    left_alone = f", {len(damaged)} damaged (left as they are)" if damaged else ""
    if not todo:
        log(f"{total - len(damaged)} of {total} trials already finished{left_alone}; nothing launched"
            if damaged else f"all {total} trials already finished; nothing launched")
        return {"launched": 0, "counts": count_states(sweeps), "not_submitted": 0, "unfinished": 0, "error": None,
                "all_failed": all_failed(sweeps)}
    first_results = Path(sweeps[0]["trials"][0]["config"]["results"])
    launch_root = Path(cfg.launch_dir) if cfg.launch_dir else first_results / "launches"
    held = held_by_earlier_jobs(sweeps, todo, launch_root, log)
    todo = [(folder, index) for folder, index in todo if (str(folder), index) not in held]
    if todo:
        log(f"launching {len(todo)} of {total} trials ({total - len(todo) - len(held) - len(damaged)} already "
            f"finished{left_alone}) with launcher={cfg.launcher}")
    waits = (lambda stuck_only: pending_jobs_text(launch_root, stuck_only)) if str(cfg.launcher) == "slurm" else None
    watcher = ProgressWatcher(sweeps, len(todo) + len(held), log, float(cfg.poll_s), waits)
    watcher.start()
    try:
        result, todo, held = launch_and_wait(todo, held, sweeps, cfg, hydra_overrides, launch_root, settings, log)
    except KeyboardInterrupt:  # Ctrl-C: the SLURM jobs go on without this command; say which, and how to stop them
        raise Interrupted(jobs_left_running(sweeps, launch_root, {(str(f), i) for f, i in todo} | set(held))) from None
    finally:
        watcher.stop()
    if result["submit_error"] is not None:  # not a single job was taken: nothing runs, nothing to resume
        log(f"no job was submitted: {result['submit_error'].splitlines()[-1]}")
        return {"launched": 0, "launch_dir": result["launch_dir"], "counts": count_states(sweeps), "job_errors": 0,
                "lost": [], "not_submitted": len(todo), "unfinished": 0, "waited_for": len(held),
                "error": not_submitted_message(result["launcher"], len(todo), result["submit_error"])}
    errors = [r for r in result["results"] if isinstance(r, dict) and r.get("status") == "error"]
    for error in errors:
        log(f"job {error['index']} of {error['plan']} could not run its trial:\n{error['error']}")
    for problem in result["lost"]:
        log(f"a job did not finish: {problem}")
    rows = {row["record_dir"]: row for row in trial_rows(sweeps, launched_jobs(launch_root), first_results)}
    counts = dict(Counter(STATE_KEYS[row["state"]] for row in rows.values()))  # as optbench status says them
    log("finished: " + describe(counts))
    launched = {(str(folder), index) for folder, index in todo} | set(held)
    left = [rows[t["record_dir"]] for s in sweeps for t in s["trials"]
            if (str(Path(s["dir"])), t["index"]) in launched and needs_run(Path(t["record_dir"]))]
    error = None
    if left:
        error = unfinished_message(left, len(launched), len(result["lost"]), len(errors), first_results)
    return {"launched": len(todo), "waited_for": len(held), "launch_dir": result["launch_dir"], "counts": counts,
            "job_errors": len(errors), "lost": result["lost"], "not_submitted": 0,
            "unfinished": len(left), "error": error, "all_failed": all_failed(sweeps)}


STATE_KEYS = {name: key for key, name in STATE_NAMES.items()}  # a status row's state -> a record's


def jobs_left_running(sweeps: list[dict[str, Any]], launch_root: Path, launched: set[tuple[str, int]]) -> str:
    """What an interrupted command leaves behind: the SLURM jobs of its trials still queued or
    running, which go on using the allocation, and the ``scancel`` that stops them; "" if none."""
    held = live_jobs(sweeps, launch_root, only=launched)
    jobs = sorted({what.split()[2] for what in held.values() if what.startswith("SLURM job ")})
    if not jobs:
        return ""
    return (f"its {len(jobs)} SLURM job(s) still queued or running ({', '.join(jobs)}) go on without it and use "
            f"the allocation; `scancel {' '.join(jobs)}` stops them (running the same command again waits for "
            f"them instead)")


def all_failed(sweeps: list[dict[str, Any]]) -> list[str]:
    """One line for each sweep whose every trial failed in the submission's code (a trial's final
    ``failed``: not the harness's, which a rerun retries), naming the first error and where its
    traceback is. Such a sweep measures nothing (every trial counts as never reaching the target):
    almost always a bug in the submission, so ``tune`` and ``suite`` exit 3 for it, like ``trial``."""
    lines = []
    for sweep in sweeps:
        folders = [Path(t["record_dir"]) for t in sweep["trials"]]
        if not folders or any(trial_state(f) != "failed" or needs_run(f) for f in folders):
            continue
        summary = read_manifest(folders[0] / "manifest.json")["summary"]
        lines.append(f"every one of the {len(folders)} trials of {sweep['dir']} failed in the submission's code; the "
                     f"first in {summary.get('error_in') or 'the submission'}: {summary.get('error_message', '?')} "
                     f"(the traceback: summary.error of {folders[0] / 'manifest.json'})")
    return lines


def run_pruned_to_the_end(sweeps: list[dict[str, Any]], settings: dict[str, dict[str, Any]],
                          log: Log) -> tuple[dict[str, dict[str, Any]], set[tuple[str, int]]]:
    """The trials an earlier command pruned in the sweeps this command does not prune (``prune=false``),
    as (sweep folder, index), and ``settings`` with ``rerun`` for their sweeps: they run again, to their
    end, their pruned records kept beside (``manifest.previous-N.json``). Before, they stayed pruned
    without a word."""
    settings = {key: dict(value) for key, value in settings.items()}
    pruned: set[tuple[str, int]] = set()
    for sweep in sweeps:
        if settings.get(sweep["dir"], {}).get("prune", True):
            continue
        these = {(sweep["dir"], t["index"]) for t in sweep["trials"] if trial_state(Path(t["record_dir"])) == "pruned"}
        if these:
            settings.setdefault(sweep["dir"], {})["rerun"] = True  # only the launched trials: unfinished or pruned
            log(f"prune=false: {len(these)} trial(s) of {sweep['dir']} were pruned by an earlier command; they run "
                f"again to their end (their pruned records are kept beside as manifest.previous-N.json)")
            pruned |= these
    return settings, pruned


def launch_and_wait(todo: list[tuple[Path, int]], held: dict[tuple[str, int], str], sweeps: list[dict[str, Any]],
                    cfg: Any, hydra_overrides: list[str], launch_root: Path,
                    settings: dict[str, dict[str, Any]] | None, log: Log) -> tuple[dict[str, Any], list, dict]:
    """Launch ``todo`` and wait for it, then for the trials ``held`` by earlier jobs; launch those of
    them that their jobs left unfinished (cancelled, killed). The launch's result, and ``todo`` and
    ``held`` as they ended up (the trials launched here, those only waited for)."""
    def run(jobs: list[tuple[Path, int]]) -> dict[str, Any]:
        return launch(jobs, str(cfg.launcher), hydra_overrides, launch_root, settings, float(cfg.poll_s), log)

    result = run(todo) if todo else {"submit_error": None, "results": [], "lost": [], "launch_dir": None,
                                     "launcher": str(cfg.launcher)}
    wait_for_earlier_jobs(held, sweeps, launch_root, float(cfg.poll_s))
    records = {(str(Path(s["dir"])), t["index"]): Path(t["record_dir"]) for s in sweeps for t in s["trials"]}
    left = [key for key in held if needs_run(records[key])]
    if not left or result["submit_error"] is not None:
        return result, todo, held
    log(f"{len(left)} of the trial(s) waited for did not end in their earlier jobs: launching them")
    again = run([(Path(folder), index) for folder, index in left])
    result = {**again, "launch_dir": result["launch_dir"] or again["launch_dir"],
              "results": [*result["results"], *again["results"]], "lost": [*result["lost"], *again["lost"]]}
    return result, [*todo, *((Path(f), i) for f, i in left)], {k: v for k, v in held.items() if k not in left}


def held_by_earlier_jobs(sweeps: list[dict[str, Any]], todo: list[tuple[Path, int]], launch_root: Path,
                         log: Log) -> dict[tuple[str, int], str]:
    """The unfinished trials that a job of an earlier launch still holds (queued or running: the
    command was killed while its jobs were not), said; they are waited for, not launched again."""
    held = live_jobs(sweeps, launch_root, only={(str(folder), index) for folder, index in todo})
    if held:
        shown = "; ".join(f"{sweep_key(folder)} trial {index}: {what}"
                          for (folder, index), what in list(held.items())[:5])
        log(f"{len(held)} unfinished trial(s) still have a job of an earlier launch ({shown}"
            f"{'; ...' if len(held) > 5 else ''}): not launched again, but waited for (scancel those jobs to have "
            f"this command launch them anew)")
    return held


def wait_for_earlier_jobs(held: dict[tuple[str, int], str], sweeps: list[dict[str, Any]], launch_root: Path,
                          poll_s: float) -> None:
    """Return once none of ``held`` has a job of an earlier launch queued or running."""
    while held:
        time.sleep(max(poll_s, 0.5))
        still = live_jobs(sweeps, launch_root, only=set(held))
        held = {key: what for key, what in held.items() if key in still}


def refuse_other_making(sweeps: list[dict[str, Any]], log: Log) -> None:
    """Refuse sweeps with records made other than this command asks: by other code (the submission's
    or the workload's source changed since), under other charged settings (``isolation``,
    ``threads``: not part of a trial's identity) or on other data (the examples' sha256: another
    copy of the dataset in data_dir=). Their trials would not run again, and their results would be
    reported, then scored, as this command's; the sweep's new trials would run another algorithm,
    or be charged otherwise. A trial's own command refuses the same
    (:func:`harness.core.trial.run_trial`)."""
    problems = []
    digests: dict[str, str | None] = {}  # per workload setting and data_dir: a suite's sweeps share them
    for sweep in sweeps:
        config = sweep["trials"][0]["config"]
        submission = described_submission(config["submission"]["name"], config["submission"].get("source"))
        workload = workload_class(config["workload"]["name"], config["workload"].get("source"))
        changed: Counter[str] = Counter()
        failed_in_code: list[str] = []  # of those made otherwise, the submission's own failures
        key = json.dumps([config["workload"], config.get("data_dir")], sort_keys=True)
        for entry in sweep["trials"]:
            try:
                manifest = read_manifest(Path(entry["record_dir"]) / "manifest.json")
            except DamagedRecord:
                continue  # reported as damaged, never run
            if not manifest:
                continue
            if manifest.get("data_sha256") and key not in digests:  # read once, where a record has one
                digests[key] = readable_data_digest(sweep, log)
            if change := made_otherwise(manifest, entry["config"], submission, workload, data=digests.get(key)):
                changed[change] += 1
                failed_in_code += [_submission_failure(manifest)]
        problems += [f"{count} of the {len(sweep['trials'])} trials of the sweep {sweep['dir']} were made with "
                     f"{change}" for change, count in changed.items()]
        if failed_in_code and all(failed_in_code) and len(failed_in_code) == len(sweep["trials"]):
            problems.append(f"Every trial of {sweep['dir']} failed in the submission's code (the first: "
                            f"{failed_in_code[0]}): if the change fixed that, nothing of this sweep is worth keeping "
                            f"beside the new code's. Move its folder out of the results folder "
                            f"({_move_out(sweep['dir'])}) and run this command again.")
    if problems:
        raise UserError("\n".join(problems) + "\nTheir results would be reported and scored as this command's, "
                        "and the sweep's other trials would run another algorithm, on other data or be charged "
                        "otherwise; nothing was launched. Restore the code, settings and data they were made with, "
                        "or tune into a new results folder (results=DIR).")


def _move_out(sweep_dir: str) -> str:
    """The shell command that moves a sweep's folder (``<results>/<workload>-<size>/<submission>/<sweep>``)
    into a folder beside the results folder: a sweep left in it would still count as the sweep there."""
    folder = Path(sweep_dir)
    results = folder.parents[2]
    aside = results.with_name(f"{results.name}-failed") / folder.parent.relative_to(results)
    return f"mkdir -p {shlex.quote(str(aside))} && mv {shlex.quote(str(folder))} {shlex.quote(f'{aside}/')}"


def _submission_failure(manifest: dict[str, Any]) -> str:
    """``"submission.__init__: TypeError: ..."`` for a record of a trial that failed in the submission's
    code; "" for any other."""
    summary = manifest.get("summary") or {}
    where = str(summary.get("error_in") or "")
    if manifest.get("status") != "failed" or not where.startswith("submission"):
        return ""
    return f"{where}: {summary.get('error_message') or summary.get('error_type') or 'an error'}"


def readable_data_digest(sweep: dict[str, Any], log: Log) -> str | None:
    """The digest of the data the sweep's trials would read, read here; None, said, where they cannot
    be read here (on a SLURM login node, data on the compute nodes only): not compared then."""
    try:
        return data_digest_now(trial_config(sweep["trials"][0]))
    except UserError as error:
        log(f"the data of {sweep['dir']} cannot be read here, so its records are not compared with it "
            f"(a record made on another copy would be reported as this one's): {str(error).splitlines()[0]}")
        return None


def not_submitted_message(launcher: str, jobs: int, said: str) -> str:
    """The paragraph for a launch whose jobs the scheduler (or the local launcher) did not take."""
    quoted = "\n".join(f"    {line}" for line in said.splitlines()[-20:])
    if launcher != "slurm":
        return (f"launcher={launcher} could not start any of the {jobs} job(s) of this launch; nothing was "
                f"launched and no record was touched. The launcher said:\n{quoted}")
    conf = os.environ.get("SLURM_CONF")
    where = f"SLURM_CONF={conf}" if conf else "SLURM_CONF is not set, so SLURM's default slurm.conf (or DNS) is used"
    return (f"SLURM did not accept the {jobs} job(s) of this launch (one job array); nothing was submitted and "
            f"no record was touched. sbatch said:\n{quoted}\n"
            f"What to check: {where}; it must name the cluster whose controller should take the jobs; "
            f"`sinfo` must answer from this shell and list a partition; partition, account and qos settings "
            f"(hydra.launcher.*) must exist on the cluster. To use the bundled single-node cluster on this "
            f"machine: `eval \"$(bash scripts/slurm/up.sh)\"`. Once `sinfo` answers, the same command submits "
            f"the trials.")


def unfinished_message(rows: list[dict[str, Any]], launched: int, lost: int, job_errors: int, results: Path) -> str:
    """The paragraph for launched trials that did not end (jobs lost, killed, or failing outside the
    trial), their states as ``optbench status`` shows them (``rows``: :func:`trial_rows`)."""
    states = Counter("failed by the harness" if row["state"] == "failed" else row["state"] for row in rows)
    shown = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
    each = "; ".join(f"study {row['study']} trial {row['trial']} {row['state']}"
                     + (f" (SLURM job {row['slurm_job']} {row['slurm_state'] or '?'})" if row["slurm_job"] else "")
                     for row in rows[:5])
    why = [f"{lost} job(s) ended without a result (said above)"] if lost else []
    if job_errors:
        why.append(f"{job_errors} job(s) could not run their trial (their messages above)")
    return (f"{len(rows)} of the {launched} launched trials did not end ({shown}: {each}"
            f"{'; ...' if len(rows) > 5 else ''}){': ' if why else ''}"
            f"{'; '.join(why)}. Their records are kept as they are; `optbench status results={results}` shows "
            f"each one's state, job and log. Running the same command again resumes them (waiting first for any "
            f"of their jobs still queued or running).")


def damaged_records(sweeps: list[dict[str, Any]]) -> list[str]:
    """What is wrong with each trial whose manifest is damaged (those are never rerun over)."""
    problems = []
    for sweep in sweeps:
        for trial in sweep["trials"]:
            try:
                read_manifest(Path(trial["record_dir"]) / "manifest.json")
            except DamagedRecord as error:
                problems.append(str(error))
    return problems


def count_states(sweeps: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(trial_state(Path(t["record_dir"])) for s in sweeps for t in s["trials"]))


def describe(counts: dict[str, int]) -> str:
    done = sum(counts.get(s, 0) for s in FINAL_STATUSES)
    parts = [f"{s.replace('_', ' ')} {counts[s]}" for s in FINAL_STATUSES if counts.get(s)]
    others = "".join(f", {state} {counts[state]}" for state in ("requeued", "interrupted", "damaged")
                     if counts.get(state))
    return (f"done {done} ({', '.join(parts) or 'none'}), running {counts.get('running', 0)}, "
            f"pending {counts.get('pending', 0)}{others}")


#: squeue's reasons for a pending job that clear by themselves, as other jobs end or time passes
#: (a requeued job's BeginTime, array_parallelism's JobArrayTaskLimit); besides these, a qos's or an
#: account's limit on running work passes (:func:`passes`); any other (a hold, a partition's limits,
#: a node that is down, a per-job limit the job exceeds) needs someone to act
PASSING_REASONS = ("Resources", "Priority", "BeginTime", "JobArrayTaskLimit", "Dependency")


def passes(reason: str) -> bool:
    """Whether a pending job's squeue reason clears by itself: one of :data:`PASSING_REASONS`, or a
    qos's or account's limit on the running work of a user or group (``QOSMaxJobsPerUserLimit``,
    ``AssocGrpCpuLimit``, ``AssocGrpCPURunMinutesLimit``: the user's own jobs ending free it). Not a
    limit on one job (``QOSMaxWallDurationPerJobLimit``: the job asks for more than is allowed) nor
    on used time (``AssocGrpCPUMinutesLimit``: spent until an administrator resets it)."""
    head = reason.partition(",")[0].strip()
    if head in PASSING_REASONS:
        return True
    limit = head.startswith(("QOS", "Assoc")) and head.endswith("Limit")
    return limit and "PerJob" not in head and ("Minutes" not in head or "RunMinutes" in head)


def pending_jobs_text(launch_root: Path, stuck_only: bool = False) -> str:
    """``"; pending in SLURM's queue: 81_0, 81_1 (ReqNodeNotAvail, ...)"``: the jobs of the launches
    under ``launch_root`` that wait in the queue, grouped by squeue's reason ("" when none waits);
    ``stuck_only``: only those waiting for a reason that does not pass by itself (:func:`passes`)."""
    ids = {job["job_id"] for job in launched_jobs(launch_root).values() if job.get("job_id")}
    reasons = pending_reasons(ids)
    grouped: dict[str, list[str]] = {}
    for job, reason in sorted(reasons.items()):
        if not (stuck_only and passes(reason)):
            grouped.setdefault(reason, []).append(job)
    return "".join(f"; pending in SLURM's queue: {', '.join(jobs)} ({reason})" for reason, jobs in grouped.items())


class ProgressWatcher:
    """Reads the records every ``poll_s`` seconds and reports whenever the counts change, and every
    ``QUIET_S`` seconds when they do not (with ``waits(False)``: why jobs wait, e.g. a busy node), so a
    launch stuck in the queue is not a silent one. Jobs that wait for a reason that does not pass by
    itself (``waits(True)``: a hold, a partition's limits, a drained node) are said at the first report
    that sees them (squeue is asked every ``STUCK_CHECK_S``), with what to do: before, such a launch
    said nothing about them for ``QUIET_S``."""

    QUIET_S = 300.0
    #: how often squeue is asked for stuck jobs while trials are pending (not every poll: a busy
    #: cluster's controller answers every user's squeue)
    STUCK_CHECK_S = 30.0

    def __init__(self, sweeps: list[dict[str, Any]], launched: int, log: Log, poll_s: float,
                 waits: Callable[[bool], str] | None = None):
        self.sweeps, self.launched, self.log, self.poll_s, self.waits = sweeps, launched, log, poll_s, waits
        self._stuck = ""
        self._stuck_checked_at = -math.inf
        self._said_at = time.monotonic()
        self.done_before = sum(count_states(sweeps).get(s, 0) for s in FINAL_STATUSES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="optbench-progress")
        self._started = time.monotonic()
        self._last = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.report()

    def report(self) -> None:
        counts = count_states(self.sweeps)
        text = describe(counts)
        quiet = time.monotonic() - self._said_at
        stuck = self._stuck
        if time.monotonic() - self._stuck_checked_at >= self.STUCK_CHECK_S:
            stuck = self.waits(True) if self.waits and counts.get("pending") else ""
            self._stuck_checked_at = time.monotonic()
            if not stuck:
                self._stuck = ""  # released: a later hold is said again
        if stuck and stuck != self._stuck:  # new: said now, not after QUIET_S
            self._stuck, self._last = stuck, text
            text += (f"{stuck}: a reason that does not pass as other jobs end (`scontrol show job <id>` says "
                     f"more); release those jobs, or scancel them and change the hydra.launcher settings")
        elif text == self._last and quiet < self.QUIET_S:
            return
        elif text == self._last:
            text += f" (no change for {quiet:.0f}s{self.waits(False) if self.waits else ''})"
        else:
            self._last = text
        self._said_at = time.monotonic()
        done_now = sum(counts.get(s, 0) for s in FINAL_STATUSES) - self.done_before
        elapsed = time.monotonic() - self._started
        remaining = self.launched - done_now
        eta = f", ETA {elapsed / done_now * remaining:.0f}s" if done_now > 0 and remaining > 0 else ""
        self.log(f"{text}; {elapsed:.0f}s elapsed{eta}")
