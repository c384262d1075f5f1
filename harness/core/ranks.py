"""Where a data-parallel trial's ranks come from (``nproc=N``; what each rank does is
:mod:`harness.core.distributed`).

- ``optbench trial nproc=N`` (and a sweep's trial on one machine) starts torch's own launcher,
  ``torch.distributed.run`` (torchrun), with N workers on this machine. The launcher sets each
  rank's place (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``),
  hosts the rendezvous, and ends every rank when one fails.
- A SLURM job of N tasks (``launcher=slurm``: :func:`harness.orchestration.launch.data_parallel_overrides`):
  submitit runs ``optbench trial`` in every task; each task is a rank itself (:func:`slurm_task`).
- A user's own ``torchrun --nproc-per-node N -m harness.cli trial nproc=N ...`` (on one machine or
  with its rendezvous on several): each of its processes is a rank itself (:func:`torchrun_rank`).

Rank 0 writes the trial's summary, or its refusal of a setting, to a file the launching process
reads back (:func:`rank_0_summary`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from harness.config.compose import to_plain
from harness.config.described import handed_down
from harness.core import distributed
from harness.core.distributed import (
    LOCAL_RANK,
    RANK,
    STRAGGLER_GRACE_S,
    SUMMARY,
    TORCHRUN_RUN,
    WORLD_SIZE,
    rank_0_ended,
    refusal_file,
)
from harness.core.team import processes
from harness.errors import UserError

REPO = Path(__file__).resolve().parents[2]
# after rank 0's summary: the ranks end themselves after STRAGGLER_GRACE_S (distributed.end_after_rank_0);
# torch's launcher is told to end those still there a little later (stuck where Python cannot run)
LAUNCHER_GRACE_S = STRAGGLER_GRACE_S + 5.0
RENDEZVOUS_PORTS = range(20000, 32768)  # a SLURM job's ranks meet at one of these (slurm_task)


@dataclass(frozen=True)
class RankPlace:
    """This process's rank in a trial whose ranks something else started, and where they meet."""

    rank: int
    local_rank: int
    master: str  # where rank 0 runs
    port: int
    summary: Path  # rank 0's summary (or refusal), where every rank sees it


def started_as_a_rank() -> bool:
    """Whether torch's launcher started this process as one of several (a user's ``torchrun``)."""
    return TORCHRUN_RUN in os.environ and int(os.environ.get(WORLD_SIZE, "1")) > 1


def launch(cfg: DictConfig) -> dict[str, Any]:
    """Run the trial of ``cfg`` as ``nproc`` ranks; rank 0's summary.

    In a process that is already one rank of several (a SLURM task, a user's torchrun worker), it
    becomes that rank; anywhere else it starts the ranks on this machine with torch's launcher.
    The caller has checked the settings (``runner.check_trial_settings``); a refusal of rank 0
    found later (missing data, say) is raised here as the UserError it was there.
    """
    count = processes(cfg)
    place = slurm_task(count) or torchrun_rank(count)
    if place is not None:
        return _run_as_rank(cfg, count, place)
    return _start_ranks(cfg, count)


def slurm_task(count: int) -> RankPlace | None:
    """This process's rank when it is one of the ``count`` tasks that submitit started for one
    SLURM job (``optbench tune ... launcher=slurm nproc=N`` asks for N tasks per job): SLURM
    started the ranks, on one node or several, so none is started here. None anywhere else (a
    lone process, a job of one task: :func:`launch` then starts the ranks on this machine).

    The ranks meet on the job's first node, at a port derived from the job id, below Linux's
    ephemeral ports (32768 and up, where the system's own connections may hold one): in
    :data:`RENDEZVOUS_PORTS`, two jobs on one node collide with a chance of 1 in 12,768."""
    tasks = os.environ.get("SLURM_NTASKS")
    if count < 2 or os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or tasks in (None, "1"):
        return None
    if tasks != str(count):  # each task would start a whole trial of its own, racing for its lock
        raise UserError(f"This SLURM job has {tasks} tasks, but the trial runs nproc={count} processes: give its job "
                        f"{count} tasks (one per process) or 1 (it starts them all), e.g. "
                        f"hydra.launcher.tasks_per_node={count}.")
    import submitit

    job = submitit.JobEnvironment()
    folder = Path(os.environ.get("OPTBENCH_JOB_DIR") or tempfile.gettempdir())
    port = RENDEZVOUS_PORTS[zlib.crc32(job.job_id.encode()) % len(RENDEZVOUS_PORTS)]
    return RankPlace(job.global_rank, job.local_rank, job.hostnames[0], port,
                     folder / f"ddp-{job.job_id}-{os.environ.get('SLURM_RESTART_COUNT', '0')}-summary.json")


def torchrun_rank(count: int) -> RankPlace | None:
    """This process's rank when a user's ``torchrun`` started it as one of ``count`` workers;
    None when torch's launcher did not start it. Refuses a launcher that started another number
    of workers than ``nproc`` says (each would take the batch size for a different split).

    The summary goes through this machine's temporary folder: on several machines the ranks on
    other machines than rank 0's do not see it, and when rank 0 ends the trial early (reached,
    pruned) they print their broken wait as an error (exiting 0), the record being complete."""
    if TORCHRUN_RUN not in os.environ:
        return None
    size = int(os.environ[WORLD_SIZE])
    if size != count:
        raise UserError(f"torchrun started {size} processes for this trial, but nproc={count}: say nproc={size} "
                        f"(the batch size is the global one, split over nproc processes).")
    master, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    name = f"optbench-ddp-{os.environ[TORCHRUN_RUN]}-{master}-{port}-summary.json"
    return RankPlace(int(os.environ[RANK]), int(os.environ[LOCAL_RANK]), master, port,
                     Path(tempfile.gettempdir()) / name)


def _run_as_rank(cfg: DictConfig, count: int, place: RankPlace) -> dict[str, Any]:
    """Rank ``place.rank`` of the trial, in this process; rank 0's summary, or for another rank a
    line saying which it was (:func:`follower_result`; submitit returns task 0's result, torchrun
    prints every rank's)."""
    os.environ.update({RANK: str(place.rank), WORLD_SIZE: str(count), LOCAL_RANK: str(place.local_rank),
                       SUMMARY: str(place.summary), "MASTER_ADDR": place.master, "MASTER_PORT": str(place.port)})
    under_submitit = os.environ.get("SUBMITIT_EXECUTOR") == "slurm"
    last_words = _submitit_result(follower_result(place.rank, 0)) if under_submitit and place.rank else None
    status = distributed.main([json.dumps(to_plain(cfg))], last_words)
    if place.rank != 0:
        return follower_result(place.rank, status)
    return rank_0_summary(place.summary, status, "its messages are in the job's log")


def follower_result(rank: int, status: int) -> dict[str, Any]:
    """What a rank other than 0 returns as its task's result: which rank it was, its status."""
    return {"status": "rank", "rank": rank, "exit_status": status}


def _submitit_result(result: dict[str, Any]) -> Callable[[], None]:
    """Write ``result`` as this submitit task's result, as submitit does when the task function
    returns: for a follower that ends itself instead (:func:`distributed.end_after_rank_0`).
    Without it, the launch waiting on the job's tasks counts the job as lost and stops waiting for
    the sweep's other jobs."""

    def write() -> None:
        import submitit
        from submitit.core import utils

        with utils.temporary_save_path(submitit.JobEnvironment().paths.result_pickle) as temporary:
            utils.cloudpickle_dump(("success", result), temporary)

    return write


def _start_ranks(cfg: DictConfig, count: int) -> dict[str, Any]:
    """The trial's ``count`` ranks on this machine, started by torch's launcher (in a session of
    its own: a Ctrl-C reaches it once, from here); rank 0's summary.

    The launcher dies with this process (:func:`harness.exits.die_with_parent`), and
    its workers with it. Each worker gets ``cpu_count / count`` threads unless the environment
    or ``threads=`` says otherwise.
    """
    device = str(cfg.device)
    gpus = torch.cuda.device_count() if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) \
        else count
    if gpus < count:
        raise UserError(f"nproc={count} on CUDA runs one rank per GPU, and this machine has {gpus}: use nproc={gpus} "
                        f"or fewer, or device=cpu (gloo). On SLURM, launcher=slurm gives each task its own GPUs.")
    with tempfile.TemporaryDirectory(prefix="optbench-ddp-") as folder:
        summary = Path(folder) / "summary.json"
        env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // count)), **os.environ, SUMMARY: str(summary),
               **handed_down(cfg),  # rank 0 plans and records the trial with this process's description of it
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "harness.core.torchrun", "--standalone", f"--nproc-per-node={count}",
                   "--max-restarts=0", f"--log-dir={Path(folder) / 'launcher'}",  # else a torchelastic_* folder stays
                   "--module", "harness.core.distributed", json.dumps(to_plain(cfg))]
        launcher = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            status = _wait(launcher, summary)
        except BaseException:
            launcher.send_signal(signal.SIGINT)  # passed on to every rank: rank 0 stops as interrupted
            _wait_or_kill(launcher, 60.0)
            raise
        return rank_0_summary(summary, status, "its messages are above")


def _wait(launcher: subprocess.Popen, summary: Path) -> int:
    """The launcher's exit status. Once rank 0 has written its summary (or refusal), the other
    ranks end by themselves (their wait for rank 0 breaks when it exits, or
    :func:`distributed.end_after_rank_0` ends them); after :data:`LAUNCHER_GRACE_S` the launcher
    is told to end those that remain."""
    rank_0_done: float | None = None
    while True:
        try:
            return launcher.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if rank_0_done is None and rank_0_ended(summary):
            rank_0_done = time.monotonic()
        if rank_0_done is not None and time.monotonic() - rank_0_done > LAUNCHER_GRACE_S:
            launcher.terminate()  # torchrun passes SIGTERM on to its workers
            return _wait_or_kill(launcher, 60.0)


def _wait_or_kill(process: subprocess.Popen, timeout_s: float) -> int:
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()  # its workers die with it (die_with_parent)
        return process.wait()


def rank_0_summary(summary: Path, status: int, messages: str) -> dict[str, Any]:
    """The trial's summary rank 0 wrote to ``summary``; its UserError (a bad setting) raised here
    as it was there; no summary: a UserError with the exit ``status`` and where ``messages`` are.

    A summary counts whatever the status: rank 0 finished the trial's record, and only the ranks
    that did not end by themselves were ended."""
    refused = refusal_file(summary)
    if refused.is_file():
        raise UserError(refused.read_text())
    if not summary.is_file():
        raise UserError(f"The data-parallel trial ended with status {status} before rank 0's summary ({messages}); "
                        f"its record, if it was started, keeps what was reached: run the same command to resume.")
    return json.loads(summary.read_text())
