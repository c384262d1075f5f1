"""Launching trials through Hydra's launcher plugins: in-process, submitit_local or submitit_slurm.

``optbench tune`` and ``optbench suite`` write a *launch plan* (a JSON list of ``(sweep folder,
trial index)`` pairs), then run a Hydra multirun of ``configs/launch.yaml`` over ``index=0..N-1``
with the launcher chosen by ``launcher=inline|parallel|local|slurm`` (``configs/launchers/*.yaml``, which
select ``hydra/launcher=basic|submitit_local|submitit_slurm`` and hold their settings). With
SLURM the N jobs are one job array. Each job (:func:`run_job`) reads its entry of the plan and
the sweep file and runs :func:`harness.core.trial.run_trial`, which resumes from the trial's
checkpoint when there is one — so a requeued or resubmitted job (submitit's checkpoint
protocol resubmits the same Hydra job) continues where it stopped.
"""

from __future__ import annotations

import gc
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.core.records import read_json, write_json_atomic
from harness.errors import UserError
from harness.exits import end_with
from harness.log import Log
from harness.orchestration.status import LIVE_STATES, job_folders, slurm_states

LAUNCHERS = ("inline", "parallel", "local", "slurm")
PLUGINS = {"basic": "inline", "joblib": "parallel", "submitit_local": "local", "submitit_slurm": "slurm"}
PLUGIN_OF = {launcher: plugin for plugin, launcher in PLUGINS.items()}
PACKAGES = {"joblib": "hydra-joblib-launcher", "submitit_local": "hydra-submitit-launcher",
            "submitit_slurm": "hydra-submitit-launcher"}


def run_job(cfg: DictConfig) -> dict[str, Any]:
    """The task function of every launched job: run trial ``cfg.index`` of the plan ``cfg.plan``.

    It does not raise (Hydra's sweeper would abort the remaining jobs): problems outside the
    trial are returned as ``{"status": "error", ...}`` and the trial's record, if any, stays. The
    one exception is a SLURM job signalled once more than ``hydra.launcher.max_num_timeout``
    allows (:func:`_out_of_requeues`): that job has ended, and the launch reports it as lost.
    """
    from harness.core.sweep_file import load_sweep, trial_config
    from harness.core.trial import run_trial

    _freeze_imported_objects()
    try:
        from hydra.core.hydra_config import HydraConfig

        os.environ["OPTBENCH_JOB_DIR"] = HydraConfig.get().runtime.output_dir
    except ValueError:
        pass
    try:
        plan = read_json(Path(cfg.plan))
        if plan is None:
            raise UserError(f"the launch plan {cfg.plan} is gone (was the results or launch folder removed while "
                            f"the launch ran?); run the command again")
        if plan.get("launcher") == "parallel" and plan.get("pid") not in (None, os.getpid()):
            end_with(int(plan["pid"]))  # a worker of the pool: it ends with the command that launched it
        job = plan["jobs"][int(cfg.index)]
        entry = load_sweep(Path(job["sweep"]))["trials"][job["index"]]
        trial = trial_config(entry)
        for key, value in (job.get("settings") or {}).items():  # launch-time settings, e.g. prune_peers
            trial[key] = value
        return run_trial(trial)
    except UserError as error:  # bad input found only now: its message, not a traceback
        return {"status": "error", "error": f"optbench: error: {error}", "plan": str(cfg.plan), "index": int(cfg.index)}
    except Exception as error:  # reported to the launching process instead of aborting the sweep
        if _out_of_requeues(error) and os.environ.get("SLURM_JOB_ID"):
            raise
        return {"status": "error", "error": traceback.format_exc(), "plan": str(cfg.plan), "index": int(cfg.index)}


def _out_of_requeues(error: Exception) -> bool:
    """Whether ``error`` is submitit's ``UncompletedJobError``: its signal handler raises it in a job
    signalled (time limit, preemption) once more than ``hydra.launcher.max_num_timeout`` allows.
    Raised on, Hydra keeps it as the job's failure, which the launch reports as a lost job in one line
    naming the settings to raise (:func:`job_outcome`); returned as a result, it was printed as a
    traceback, as if the trial's own error, and counted before its job had left the queue."""
    from submitit.core.utils import UncompletedJobError

    return isinstance(error, UncompletedJobError)


_FROZEN = False


def _freeze_imported_objects() -> None:
    """Once per process: move what exists now (the modules torch, Hydra and the harness imported,
    hundreds of thousands of objects) out of the garbage collector's reach (``gc.freeze``). A
    ``launcher=parallel`` worker (loky) runs a full ``gc.collect()`` after every job when psutil is
    absent; traversing those objects took ~0.2-0.45 s of each trial's wall time there, between
    trials (no trial's timing includes it). Only garbage made before this first call could be kept
    by it, and it is collected first."""
    global _FROZEN
    if not _FROZEN:
        gc.collect()
        gc.freeze()
        _FROZEN = True


def launch(jobs: list[tuple[Path, int]], launcher: str, hydra_overrides: list[str], folder: Path,
           settings: dict[str, dict[str, Any]] | None = None, poll_s: float = 5.0,
           log: Log | None = None) -> dict[str, Any]:
    """Run ``jobs`` (sweep folder, trial index) through the chosen launcher; wait for them all.

    ``settings`` maps a sweep folder to trial settings applied at launch time to its jobs
    (``optbench suite`` sets ``prune_peers``: which sweeps compete with it).

    ``folder`` receives the plan, Hydra's per-job output folders (``jobs/<i>/``) and, for the
    submitit launchers, submitit's logs (``submitit/``). Returns the per-job results; a job that
    could not finish (killed, cancelled) is reported in ``lost`` (one paragraph each), never raised,
    and its trial stays resumable. On SLURM the launch returns only once none of its jobs is queued
    or running any more (checked every ``poll_s`` seconds, said through ``log``), even when one of
    them was lost early (:func:`after_a_lost_job`). A launch of which no job was submitted or started
    (sbatch refused the array) returns the scheduler's message in ``submit_error``; Hydra rejecting
    the launch config raises UserError.
    """
    from hydra import version
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    launcher = resolve_launcher(launcher, hydra_overrides)
    hydra_overrides = [*hydra_overrides, *data_parallel_overrides(launcher, hydra_overrides, jobs)]
    launch_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    folder = Path(folder).resolve() / launch_id  # unique: a fresh cluster reuses job ids
    plan_path = folder / "plan.json"
    settings = {str(Path(k).resolve()): v for k, v in (settings or {}).items()}
    write_json_atomic(plan_path, {"launcher": launcher, "pid": os.getpid(), "jobs": [
        {"sweep": str(Path(s).resolve()), "index": i, "settings": settings.get(str(Path(s).resolve()), {})}
        for s, i in jobs]})
    overrides = [f"plan={hydra_quoted(plan_path)}", f"launch_dir={hydra_quoted(folder)}", f"launchers={launcher}",
                 "index=" + ",".join(str(i) for i in range(len(jobs))), *hydra_overrides]
    version.setbase("1.3")
    hydra = _hydra()
    submit_error = None
    try:
        returns = hydra.multirun(config_name="launch", task_function=run_job, overrides=overrides,
                                 with_log_configuration=False)
        results = [r.return_value for batch in returns for r in batch]
        lost: list[str] = []
    except Exception as error:  # e.g. submitit's UncompletedJobError for a job killed from outside
        results, lost = [], []
        if _anything_submitted(folder):
            results, lost = after_a_lost_job(folder, launcher, error, poll_s, log or (lambda line: None))
        elif isinstance(error, (HydraException, OmegaConfBaseException)):  # not caught by check_launcher
            raise UserError(_settings_message(error, launcher, hydra_overrides)) from None
        else:  # sbatch failed, or the launcher could not start a single job: the scheduler's own words
            submit_error = _scheduler_message(error)
    finally:
        GlobalHydra.instance().clear()
    return {"launch_dir": str(folder), "launcher": launcher, "results": results, "lost": lost,
            "submit_error": submit_error}


def after_a_lost_job(folder: Path, launcher: str, error: BaseException, poll_s: float,
                     log: Log) -> tuple[list[Any], list[str]]:
    """The results and the lost jobs of the launch in ``folder`` once Hydra's submitit launcher gave up
    on it: it collects the jobs' results in task order and raises on the first that ended without
    one (cancelled, failed, timed out too often) while the others may still be queued or running.
    On SLURM: wait until none of the launch's jobs is live (the states ``optbench status`` reads),
    then read each job's result from its submitit folder, so that the command never reports (and a
    script never scores) while its job array still runs. Elsewhere the launcher's error is all
    there is."""
    if launcher != "slurm" or not shutil.which("squeue"):
        return [], [_error_text(error)]
    folders = job_folders(folder, len((read_json(folder / "plan.json") or {}).get("jobs", [])))
    why = _error_text(error).partition("\n")[0]
    states = wait_until_ended({f.name for f in folders.values()}, poll_s, log, why)
    results, lost = [], []
    for job_folder in (folders[i] for i in sorted(folders)):
        result, problem = job_outcome(job_folder, states.get(job_folder.name))
        if problem is None:
            results.append(result)
        else:
            lost.append(problem)
    return results, lost


def wait_until_ended(job_ids: set[str], poll_s: float, log: Log, why: str) -> dict[str, str]:
    """Wait until none of the SLURM jobs ``job_ids`` is queued or running (:data:`LIVE_STATES`);
    their states then. ``why``: what ended the launcher's wait, said once if anything is left."""
    said = False
    while True:
        states = slurm_states(job_ids)
        live = sorted(job for job in job_ids if states.get(job) in LIVE_STATES)
        if not live:
            return states
        if not said:
            log(f"the launcher stopped waiting ({why}); waiting for the {len(live)} job(s) of this launch still "
                f"queued or running ({', '.join(f'{job} {states[job]}' for job in live)}) before reporting")
            said = True
        time.sleep(max(poll_s, 0.5))


def job_outcome(job_folder: Path, state: str | None) -> tuple[Any, str | None]:
    """A submitit job's result (its task function's return value), or None and the paragraph that
    says why it has none: its SLURM state, what it raised, the end of its stderr."""
    from hydra.core.utils import JobStatus
    from submitit.core.utils import pickle_load

    job = job_folder.name
    said = None
    try:
        kind, value = pickle_load(job_folder / f"{job}_0_result.pkl")  # task 0: the one submitit reports
        if kind == "success" and value.status == JobStatus.FAILED:  # what run_job let through (_out_of_requeues)
            raised = value._return_value  # the property would raise it, and write to stderr
            said = _last_error(f"{type(raised).__name__}: {raised}")
        elif kind == "success":
            return value.return_value, None  # Hydra's JobReturn of run_job
        else:
            said = _last_error(str(value))
    except FileNotFoundError:
        pass
    except Exception as unreadable:  # a truncated pickle (the job was killed while writing it)
        said = f"its result file cannot be read ({type(unreadable).__name__}: {unreadable})"
    ended = f"SLURM job {job} ended {state or '(state unknown)'} without a result"
    return None, f"{ended}{': ' + said if said else ''}. {log_tail(job_folder)}"


def _last_error(traceback_text: str) -> str:
    """The exception a job's traceback ends with, without its module path; what submitit's
    ``UncompletedJobError`` for a job timed out too often means."""
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "an error"
    name, colon, rest = last.partition(":")
    said = f"{name.rpartition('.')[2]}{colon}{rest}"
    if "timed-out too many times" in said:
        said += (" (its time limit, hydra.launcher.timeout_min, ran out, or it was preempted, more often than "
                 "hydra.launcher.max_num_timeout allows; raise them, the trial resumes from its checkpoint)")
    return said


def log_tail(job_folder: Path, lines: int = 10) -> str:
    """The job's log with its error named, with its last ``lines`` lines: its stderr
    (``<job>_0_log.err``, where a Python error goes), else its stdout where the stderr is empty
    (a failing ``hydra.launcher.setup`` line may write there)."""
    for stream in ("err", "out"):
        path = job_folder / f"{job_folder.name}_0_log.{stream}"
        try:
            text = path.read_text(errors="replace").rstrip()
        except OSError:
            continue
        if text:
            tail = "\n".join(f"    {line}" for line in text.splitlines()[-lines:])
            return f"Its std{stream} {path} ends:\n{tail}"
    return f"Its logs {job_folder / job_folder.name}_0_log.err and .out are empty or missing."


def _error_text(error: BaseException) -> str:
    """``error`` as its type and message, the message's first line and its last 10 (submitit puts
    the job and its state first, the job's stderr after)."""
    lines = str(error).strip().splitlines()
    text = "\n".join(lines if len(lines) <= 11 else [lines[0], "...", *lines[-10:]])
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def data_parallel_overrides(launcher: str, hydra_overrides: list[str], jobs: list[tuple[Path, int]]) -> list[str]:
    """What a launch of data-parallel trials (``nproc=N``) adds to the launcher's settings: on
    SLURM, N tasks per job (``hydra.launcher.tasks_per_node=N``), each task one rank of the trial
    (harness/core/ranks.py, ``slurm_task``), unless the command sets ``tasks_per_node`` or
    ``nodes`` itself (e.g. ``nodes=2 tasks_per_node=2``, or ``nodes=2`` alone, for 4 ranks on two
    machines; a job of one task starts its N ranks on its own node). A shape of another number of
    tasks is refused: each task would start a whole trial of its own. Other launchers start the
    ranks on their machine. A launch whose trials ask for different process counts is refused on
    SLURM: one job array has one shape."""
    if launcher != "slurm":
        return []
    from harness.core.sweep_file import load_sweep

    plans = {folder: load_sweep(Path(folder))["trials"] for folder in {folder for folder, _ in jobs}}
    counts = {int(plans[folder][index]["config"].get("nproc", 1)) for folder, index in jobs}
    if len(counts) > 1:
        raise UserError(f"These trials ask for different numbers of processes (nproc={sorted(counts)}); one SLURM "
                        f"job array has one shape. Tune them in separate commands.")
    count = counts.pop() if counts else 1
    if count == 1:
        return []
    nodes, per_node = _launcher_shape(launcher, hydra_overrides)
    if nodes < 1 or per_node < 1:
        raise UserError(f"hydra.launcher.nodes={nodes}, tasks_per_node={per_node}: a job needs at least one of each.")
    chosen = any(_key(item) == "hydra.launcher.tasks_per_node" for item in hydra_overrides)
    wanted = per_node if chosen or count % nodes else count // nodes  # nodes=2 for nproc=4: 2 tasks on each
    if nodes * wanted not in (1, count):
        raise UserError(f"A job of {nodes} node(s) x {wanted} task(s) per node is {nodes * wanted} tasks, but "
                        f"each trial runs nproc={count} processes: a job needs one task per process "
                        f"(nodes x tasks_per_node = {count}) or a single task that starts them all. Change "
                        f"hydra.launcher.nodes / tasks_per_node, or nproc.")
    return [] if wanted == per_node else [f"hydra.launcher.tasks_per_node={wanted}"]


def _launcher_shape(launcher: str, hydra_overrides: list[str]) -> tuple[int, int]:
    """The launcher's nodes and tasks per node as the launch resolves them: its preset, then the
    command's overrides (interpolations included)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    try:
        cfg = _hydra().compose_config("launch", _probe_overrides(launcher, hydra_overrides), run_mode=RunMode.MULTIRUN)
        return int(cfg.hydra.launcher.nodes), int(cfg.hydra.launcher.tasks_per_node)
    except Exception as error:
        raise UserError(_settings_message(error, launcher, hydra_overrides)) from None
    finally:
        GlobalHydra.instance().clear()


def resolve_launcher(launcher: str, hydra_overrides: list[str]) -> str:
    """The launcher a launch uses: ``launcher=``, unless a ``hydra/launcher=`` override picks one."""
    for item in hydra_overrides:  # the usual `hydra/launcher=...` wins over `launcher=`
        key, _, value = item.lstrip("+").partition("=")
        if key == "hydra/launcher":
            if value not in PLUGINS:
                raise UserError(f"hydra/launcher={value} is not supported. Use one of: {', '.join(PLUGINS)} "
                                f"(or launcher={'|'.join(LAUNCHERS)}).")
            launcher = PLUGINS[value]
    if launcher not in LAUNCHERS:
        raise UserError(f"launcher={launcher!r} is not valid. Valid launchers: {', '.join(LAUNCHERS)}.")
    return launcher


def check_launcher(launcher: str, hydra_overrides: list[str]) -> str:
    """Validate a launch before anything is written; return the launcher it will use.

    Checks the launcher's name, that its Hydra plugin is installed and imports, that Hydra accepts
    every ``hydra.*`` override with it (unknown keys, wrong types), and for SLURM that sbatch and
    srun are on PATH. Raises :class:`UserError` naming the bad setting.
    """
    from hydra import version
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode

    launcher = resolve_launcher(launcher, hydra_overrides)
    if launcher == "slurm":
        missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
        if missing:
            raise UserError(
                f"launcher=slurm submits through SLURM's commands, and {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not on PATH here. Run optbench where the cluster's "
                f"client commands are installed (a login node), or start the bundled single-node cluster on "
                f"this machine with `eval \"$(bash scripts/slurm/up.sh)\"` (needs root and apt); "
                f"`sinfo` should then list a partition.")
    version.setbase("1.3")
    hydra = _hydra()
    try:
        cfg = hydra.compose_config("launch", _probe_overrides(launcher, hydra_overrides), run_mode=RunMode.MULTIRUN)
        Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(cfg)),
            task_function=run_job, config=cfg)
    except Exception as error:
        raise UserError(_settings_message(error, launcher, hydra_overrides)) from None
    finally:
        GlobalHydra.instance().clear()
    _refuse_new_launcher_keys(launcher, hydra_overrides)
    if launcher == "slurm":
        refuse_signal_before_start(float(cfg.hydra.launcher.timeout_min), float(cfg.hydra.launcher.signal_delay_s))
    return launcher


def refuse_signal_before_start(timeout_min: float, signal_delay_s: float) -> None:
    """Refuse a SLURM time limit at or below the signal delay: submitit asks SLURM for USR2
    ``signal_delay_s`` before the limit, so each job would be signalled the moment it starts, requeued
    before its trial wrote anything, again and again until submitit gives up ("timed-out too many
    times"), having run nothing."""
    if timeout_min * 60 > signal_delay_s:
        return
    raise UserError(f"hydra.launcher.timeout_min={timeout_min:g} ({timeout_min * 60:g} s) is not longer than "
                    f"hydra.launcher.signal_delay_s={signal_delay_s:g}: SLURM signals each job signal_delay_s "
                    f"seconds before its time limit (to checkpoint and requeue), so every job would be signalled "
                    f"as soon as it starts and requeued before its trial wrote anything, until submitit gives up. "
                    f"Nothing was submitted. Raise timeout_min above {signal_delay_s / 60:g} by the time a trial "
                    f"needs, or lower signal_delay_s to the few seconds a trial needs to checkpoint and exit.")


def _refuse_new_launcher_keys(launcher: str, hydra_overrides: list[str]) -> None:
    """``+hydra.launcher.K=V`` adds K to the launcher's config, which Hydra allows, and the submitit
    launchers pass it on to submitit, which takes its own parameters (``mail_type``, ``nodelist``,
    ...) and refuses others only when the jobs are submitted ("Unavailable parameter(s)"), which
    read as the scheduler refusing them. Such a key is refused here, before anything is written."""
    if not any(o.startswith("+hydra.launcher.") for o in hydra_overrides):
        return  # nothing added: the launcher's settings need not be composed again
    known = {key.removeprefix("hydra.launcher.") for key in _launcher_keys(launcher)}
    if launcher in ("slurm", "local"):
        from submitit.local.local import LocalExecutor
        from submitit.slurm.slurm import SlurmExecutor

        executor = SlurmExecutor if launcher == "slurm" else LocalExecutor
        known |= set(getattr(executor, "_valid_parameters", set)())  # what its update_parameters accepts
    new = [o for o in hydra_overrides if o.startswith("+hydra.launcher.") and known
           and _key(o).split(".")[2] not in known]
    if new:
        extra = (" A SLURM option submitit has no setting for goes in "
                 f"+hydra.launcher.additional_parameters.{_key(new[0]).split('.')[2]}=VALUE (an sbatch flag)."
                 if launcher == "slurm" else "")
        raise UserError(f"{', '.join(new)}: launcher={launcher} has no such setting (its settings: "
                        f"{', '.join(sorted(known))}).{extra}")


def hydra_quoted(path: Path) -> str:
    """``path`` as a quoted value of a Hydra override: unquoted, Hydra's grammar refuses characters
    outside ASCII letters and a few others (a results folder named ``résultats`` or with a space)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _hydra() -> Any:
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    return Hydra.create_main_hydra2("optbench", create_config_search_path("pkg://configs"))


def _probe_overrides(launcher: str, hydra_overrides: list[str]) -> list[str]:
    return ["plan=/optbench-check/plan.json", "launch_dir=/optbench-check", f"launchers={launcher}", "index=0",
            *hydra_overrides]


def _settings_message(error: BaseException, launcher: str, hydra_overrides: list[str]) -> str:
    """One paragraph for an error Hydra raised composing the launch, naming the override at fault."""
    plugin = PLUGIN_OF[launcher]
    text = str(error).strip()
    if isinstance(error, ImportError) or f"hydra/launcher/{plugin}" in text or "Error locating target" in text:
        return (f"launcher={launcher} needs the Hydra launcher plugin {PACKAGES.get(plugin, plugin)}, which could "
                f"not be loaded ({text.splitlines()[0] if text else type(error).__name__}). Install it into this "
                f"environment (pip install {PACKAGES.get(plugin, plugin)}) or pick another launcher.")
    cause = error.__cause__ or error
    detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    full_key = str(getattr(cause, "full_key", "") or "")
    named = [o for o in hydra_overrides if _key(o) and (_key(o) in text or (full_key and full_key.startswith(_key(o))))]
    where = ", ".join(named) if named else (", ".join(hydra_overrides) or "the launcher preset")
    message = (f"The launcher settings are not valid: {where} with launcher={launcher} "
               f"(hydra/launcher={plugin}): {detail.rstrip('.')}.")
    parent, _, leaf = full_key.rpartition(".")
    if parent == "hydra.launcher" and "not in" in detail:
        message += f" Settings of launcher={launcher}: {', '.join(_launcher_keys(launcher))}."
    elif parent.startswith("hydra.launcher.") and "not in" in detail:  # a new entry of a mapping
        message += f" To add an entry to {parent}, write +{parent}.{leaf}=VALUE."
    return message


def _key(override: str) -> str:
    return override.lstrip("+~").partition("=")[0]


def _launcher_keys(launcher: str) -> list[str]:
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    try:
        cfg = _hydra().compose_config("launch", _probe_overrides(launcher, []), run_mode=RunMode.MULTIRUN)
        return [f"hydra.launcher.{k}" for k in cfg.hydra.launcher if k != "_target_"]
    except Exception:
        return []
    finally:
        GlobalHydra.instance().clear()


def _anything_submitted(folder: Path) -> bool:
    """Whether any job of the launch in ``folder`` was submitted or started: submitit made a job
    folder (named by its job id), or Hydra made a job's output folder (``jobs/<i>``)."""
    submitted = [p for p in (folder / "submitit").glob("*") if p.is_dir() and p.name[:1].isdigit()]
    started = [p for p in (folder / "jobs").glob("*") if p.is_dir() and p.name.isdigit()]
    return bool(submitted or started)


def _scheduler_message(error: BaseException) -> str:
    """What the scheduler said: submitit raises sbatch's whole stderr as ``FailedJobError(stderr)``."""
    text = str(error).strip()
    if isinstance(error, FileNotFoundError) and error.filename:
        return f"{error.filename}: command not found ({error.strerror})"
    return text or type(error).__name__
