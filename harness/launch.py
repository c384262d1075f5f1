"""Launching trials through Hydra's launcher plugins: in-process, submitit_local or submitit_slurm.

``optbench tune`` and ``optbench suite`` write a *launch plan* (a JSON list of ``(sweep folder,
trial index)`` pairs), then run a Hydra multirun of ``configs/launch.yaml`` over ``index=0..N-1``
with the launcher chosen by ``launcher=inline|parallel|local|slurm`` (``configs/launchers/*.yaml``, which
select ``hydra/launcher=basic|submitit_local|submitit_slurm`` and hold their settings). With
SLURM the N jobs are one job array. Each job (:func:`run_job`) reads its entry of the plan and
the sweep file and runs :func:`harness.runner.run_trial`, which resumes from the trial's
checkpoint when there is one — so a requeued or resubmitted job (submitit's checkpoint
protocol resubmits the same Hydra job) continues where it stopped.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.errors import UserError
from harness.records import read_json, write_json_atomic

LAUNCHERS = ("inline", "parallel", "local", "slurm")


def run_job(cfg: DictConfig) -> dict[str, Any]:
    """The task function of every launched job: run trial ``cfg.index`` of the plan ``cfg.plan``.

    It never raises (Hydra's sweeper would abort the remaining jobs): problems outside the
    trial are returned as ``{"status": "error", ...}`` and the trial's record, if any, stays.
    """
    from harness.runner import run_trial
    from harness.sweep import load_sweep, trial_config

    try:
        from hydra.core.hydra_config import HydraConfig

        os.environ["OPTBENCH_JOB_DIR"] = HydraConfig.get().runtime.output_dir
    except ValueError:
        pass
    try:
        plan = read_json(Path(cfg.plan))
        job = plan["jobs"][int(cfg.index)]
        entry = load_sweep(Path(job["sweep"]))["trials"][job["index"]]
        trial = trial_config(entry)
        for key, value in (job.get("settings") or {}).items():  # launch-time settings, e.g. prune_peers
            trial[key] = value
        return run_trial(trial)
    except Exception:  # reported to the launching process instead of aborting the sweep
        return {"status": "error", "error": traceback.format_exc(), "plan": str(cfg.plan), "index": int(cfg.index)}


def launch(jobs: list[tuple[Path, int]], launcher: str, hydra_overrides: list[str], folder: Path,
           settings: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run ``jobs`` (sweep folder, trial index) through the chosen launcher; wait for them all.

    ``settings`` maps a sweep folder to trial settings applied at launch time to its jobs
    (``optbench suite`` sets ``prune_peers``: which sweeps compete with it).

    ``folder`` receives the plan, Hydra's per-job output folders (``jobs/<i>/``) and, for the
    submitit launchers, submitit's logs (``submitit/``). Returns the per-job results; a job that
    could not finish (killed, cancelled) is reported, never raised, and its trial stays resumable.
    """
    from hydra import version
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    plugin = {"basic": "inline", "joblib": "parallel", "submitit_local": "local", "submitit_slurm": "slurm"}
    for item in hydra_overrides:  # the usual `hydra/launcher=...` wins over `launcher=`
        key, _, value = item.lstrip("+").partition("=")
        if key == "hydra/launcher":
            if value not in plugin:
                raise UserError(f"hydra/launcher={value} is not supported. Use one of: {', '.join(plugin)} "
                                f"(or launcher={'|'.join(LAUNCHERS)}).")
            launcher = plugin[value]
    if launcher not in LAUNCHERS:
        raise UserError(f"launcher={launcher!r} is not valid. Valid launchers: {', '.join(LAUNCHERS)}.")
    launch_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    folder = Path(folder).resolve() / launch_id  # unique: a fresh cluster reuses job ids
    plan_path = folder / "plan.json"
    settings = {str(Path(k).resolve()): v for k, v in (settings or {}).items()}
    write_json_atomic(plan_path, {"launcher": launcher, "jobs": [
        {"sweep": str(Path(s).resolve()), "index": i, "settings": settings.get(str(Path(s).resolve()), {})}
        for s, i in jobs]})
    overrides = [f"plan={plan_path}", f"launch_dir={folder}", f"launchers={launcher}",
                 "index=" + ",".join(str(i) for i in range(len(jobs))), *hydra_overrides]
    version.setbase("1.3")
    GlobalHydra.instance().clear()
    hydra = Hydra.create_main_hydra2("optbench", create_config_search_path("pkg://configs"))
    try:
        returns = hydra.multirun(config_name="launch", task_function=run_job, overrides=overrides,
                                 with_log_configuration=False)
        results = [r.return_value for batch in returns for r in batch]
        lost: list[str] = []
    except Exception as error:  # e.g. submitit's UncompletedJobError for a job killed from outside
        results, lost = [], [f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"]
    finally:
        GlobalHydra.instance().clear()
    return {"launch_dir": str(folder), "results": results, "lost": lost}
