"""Data-parallel trials: ``nproc=N`` trains one trial as N processes with DistributedDataParallel.

The launcher (:func:`launch`, in the process that ran ``optbench trial``) starts N workers of
this module (``python -m harness.core.distributed``) on this machine; they join one process group
(gloo on the CPU, NCCL on CUDA, rank r on ``cuda:r``). Rank 0 runs the ordinary trial
(:func:`harness.core.runner.run_trial`): it holds the trial's lock, evaluates, writes the record
and the checkpoints. Ranks 1..N-1 run :func:`follow`, the same steps without any of that.

What makes N processes one trial, and the same trial as one process with the same batch size:

- every rank draws the *global* batch of the trial's stream and keeps its own slice of
  ``batch_size / N`` examples (so the union of the slices is the one-process batch); the model
  the loss runs through is wrapped in DDP, which averages the gradients over the ranks: the mean
  of the slices' mean gradients is the global batch's mean gradient. The submission sees the
  plain model (same names, same parameters) and averaged gradients.
- after every step the ranks agree (a max over a tiny host-side tensor, on a gloo group even on
  CUDA, so no device synchronisation) on the clock and on divergence: every rank then takes the
  same decisions (evaluate, stop). The charged time is the slowest rank's.
- at an evaluation boundary every rank runs ``prepare_for_eval`` and pauses its clock; the ranks
  agree on the time (max), the last loss (mean: the global batch's) and finiteness; rank 0
  evaluates, logs and checkpoints while the others wait with their clocks paused, then all go on.
- when rank 0 ends the trial at an evaluation the others cannot foresee (reached, pruned), they
  are waiting for it: its exit ends their wait, and the launcher ends any that remain. A failure
  in another rank breaks rank 0's next collective: the trial ends as failed, that rank's traceback
  is on stderr.

docs/decisions.md, "Data-parallel trials", says what is not covered (BatchNorm statistics and
dropout are per rank, as in DDP; torch.compile is not combined with it).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils._pytree import tree_map

from harness.config.compose import to_plain
from harness.config.registry import submission_class, workload_class
from harness.config.schema import TrialConfig
from harness.core.checkpoint import load_checkpoint, restore_rng
from harness.core.clock import SubmissionClock
from harness.core.parts import build_submission, model_and_info, training_stream
from harness.errors import UserError
from harness.workload import Batch

RANK, WORLD_SIZE, SUMMARY = "OPTBENCH_RANK", "OPTBENCH_WORLD_SIZE", "OPTBENCH_SUMMARY_FILE"
LOCAL_RANK = "OPTBENCH_LOCAL_RANK"  # the rank's place on its own machine (its GPU); default: its rank
REPO = Path(__file__).resolve().parents[2]


class Team:
    """The processes of one trial. This one is a single process: every method changes nothing."""

    rank, size = 0, 1

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the loss runs through (DDP's, which averages gradients over the ranks)."""
        return model

    def shard(self, batches: Iterator[Batch], batch_size: int) -> Iterator[Batch]:
        """This rank's slice of every global batch."""
        return batches

    def agree(self, diverged: bool, now: float) -> tuple[bool, float]:
        """After a step: diverged anywhere, and the slowest rank's clock."""
        return diverged, now

    def at_eval(self, elapsed: float, loss: torch.Tensor,
                all_finite: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        """At an evaluation boundary: the slowest clock, the mean loss, finite everywhere."""
        return elapsed, loss, all_finite

    def go_on(self) -> None:
        """After rank 0's evaluation (and checkpoint): every rank resumes training together."""


class ProcessTeam(Team):
    """Rank ``rank`` of ``size`` processes in the default process group."""

    def __init__(self, rank: int, size: int, device: torch.device):
        self.rank, self.size, self.device = rank, size, device
        # host-side agreement on its own gloo group: on CUDA it never waits for the device
        self.host = dist.new_group(backend="gloo") if device.type == "cuda" else None

    def wrap(self, model: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def shard(self, batches: Iterator[Batch], batch_size: int) -> Iterator[Batch]:
        per = batch_size // self.size
        start = self.rank * per

        def piece(value: Any) -> Any:
            is_batch = isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch_size
            return value.narrow(0, start, per) if is_batch else value

        for batch in batches:
            yield tree_map(piece, batch)

    def agree(self, diverged: bool, now: float) -> tuple[bool, float]:
        state = torch.tensor([float(diverged), now], dtype=torch.float64)
        dist.all_reduce(state, op=dist.ReduceOp.MAX, group=self.host)
        return bool(state[0]), float(state[1])

    def at_eval(self, elapsed: float, loss: torch.Tensor,
                all_finite: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        value = float(loss.detach().float().item())
        worst = torch.tensor([elapsed, float(not bool(all_finite.item()) or not math.isfinite(value))],
                             dtype=torch.float64)
        dist.all_reduce(worst, op=dist.ReduceOp.MAX, group=self.host)
        total = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=self.host)
        mean = torch.tensor(float(total[0]) / self.size, dtype=loss.dtype, device=loss.device)
        finite = torch.tensor(not bool(worst[1]), device=all_finite.device)
        return float(worst[0]), mean, finite

    def go_on(self) -> None:
        dist.barrier(group=self.host)


_TEAM: Team = Team()


def current_team() -> Team:
    """The team of this process: a single process unless it is a worker of a data-parallel trial."""
    return _TEAM


def processes(cfg: DictConfig) -> int:
    """The trial's ``nproc``, checked."""
    count = int(cfg.nproc)
    if count < 1:
        raise UserError(f"nproc={cfg.nproc} must be a positive number of processes.")
    return count


def process_identity(cfg: DictConfig, batch_size: int) -> dict[str, Any]:
    """The process count's part of a trial's identity (nothing for one process: old hashes hold);
    refuses a batch size that does not split evenly."""
    count = processes(cfg)
    if count == 1:
        return {}
    if batch_size % count:
        raise UserError(f"batch_size={batch_size} does not split evenly over nproc={count} processes: the batch "
                        f"size is the global one, each process takes batch_size / nproc. Use a multiple of {count}.")
    if str(cfg.compile).lower() == "true":
        raise UserError(f"compile=true with nproc={count} is not supported: torch.compile is not combined with "
                        f"data-parallel trials yet. Use compile=false (auto is off for them).")
    return {"nproc": count}


def launch(cfg: DictConfig) -> dict[str, Any]:
    """Run the trial of ``cfg`` as ``nproc`` local processes; rank 0's summary.

    The workers inherit stdout and stderr (rank 0's progress lines). When rank 0 ends, the others
    are ended; a failure of rank 0 that is not the trial's own (it records those) is a UserError
    with its exit status.
    """
    count = processes(cfg)
    if RANK in os.environ:  # a worker never launches workers of its own
        raise RuntimeError(f"launch() called in rank {os.environ[RANK]} of a data-parallel trial")
    hparams_cls = submission_class(cfg.submission.name, cfg.submission.get("source")).Hparams
    hparams = hparams_cls.from_mapping(cfg.submission.hparams, submission=cfg.submission.name,
                                       config=cfg.submission.get("config_from"))
    process_identity(cfg, hparams.batch_size)  # refused here, before any process starts
    task = slurm_task(count)
    if task is not None:
        return _run_as_task(cfg, count, task)
    with tempfile.TemporaryDirectory(prefix="optbench-ddp-") as folder:
        summary_file = Path(folder) / "summary.json"
        env = {**os.environ, WORLD_SIZE: str(count), SUMMARY: str(summary_file), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(_free_port()),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "harness.core.distributed", json.dumps(to_plain(cfg))]
        workers = [subprocess.Popen(command, env={**env, RANK: str(rank)}) for rank in range(count)]
        try:
            status = workers[0].wait()
            _end(workers[1:], grace_s=10.0)
        except BaseException:
            _end(workers, grace_s=2.0)
            raise
        return _rank_0_summary(summary_file, status, "its messages are above")


@dataclass(frozen=True)
class SlurmTask:
    """This process's place in a SLURM job of ``nproc`` tasks, and where the ranks meet."""

    rank: int
    local_rank: int
    master: str  # the first node of the job: rank 0 runs there
    port: int
    summary: Path  # rank 0's summary (or refusal) for this job, in the job's shared folder


def slurm_task(count: int) -> SlurmTask | None:
    """This process's rank when it is one of the ``count`` tasks that submitit started for one
    SLURM job (``optbench tune ... launcher=slurm nproc=N`` asks for N tasks per job, see
    :func:`harness.orchestration.launch.data_parallel_overrides`): SLURM started the ranks, on
    one node or several, so none is started here. None anywhere else (a lone process, a job of
    one task: the workers are then started by :func:`launch` on this machine).

    The ranks meet on the job's first node, at a port derived from the job id (20000-39999: two
    jobs on one node collide with a chance of 1 in 20,000)."""
    if count < 2 or os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or os.environ.get("SLURM_NTASKS") != str(count):
        return None
    import submitit

    job = submitit.JobEnvironment()
    folder = Path(os.environ.get("OPTBENCH_JOB_DIR") or tempfile.gettempdir())
    return SlurmTask(job.global_rank, job.local_rank, job.hostnames[0], 20000 + zlib.crc32(job.job_id.encode()) % 20000,
                     folder / f"ddp-{job.job_id}-summary.json")


def _run_as_task(cfg: DictConfig, count: int, task: SlurmTask) -> dict[str, Any]:
    """Rank ``task.rank`` of the trial, in this process (see :func:`slurm_task`); rank 0's summary,
    or for another rank a line saying which it was (submitit returns task 0's result)."""
    os.environ.update({RANK: str(task.rank), WORLD_SIZE: str(count), LOCAL_RANK: str(task.local_rank),
                       SUMMARY: str(task.summary), "MASTER_ADDR": task.master, "MASTER_PORT": str(task.port)})
    status = main([json.dumps(to_plain(cfg))])
    if task.rank != 0:
        return {"status": "rank", "rank": task.rank, "exit_status": status}
    return _rank_0_summary(task.summary, status, "its messages are in the job's log")


def _rank_0_summary(summary: Path, status: int, messages: str) -> dict[str, Any]:
    """The trial's summary rank 0 wrote to ``summary`` (exit ``status``); its UserError (a bad
    setting) raised here as it was there; any other end a UserError saying where ``messages`` are."""
    refused = summary.with_suffix(".error")
    if refused.is_file():
        raise UserError(refused.read_text())
    if status != 0 or not summary.is_file():
        raise UserError(f"The data-parallel trial's rank 0 exited with status {status} ({messages}); its record, "
                        f"if it was started, keeps what was reached: run the same command to resume.")
    return json.loads(summary.read_text())


def _end(workers: list[subprocess.Popen], grace_s: float) -> None:
    """Let ``workers`` end by themselves for ``grace_s``, then terminate (then kill) the rest."""
    deadline = time.monotonic() + grace_s
    for worker in workers:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def follow(cfg: DictConfig) -> None:
    """A rank other than 0: the trial's steps and evaluation boundaries, without records.

    It builds what rank 0 builds, in the same order and from the same seed, and takes every
    decision from values all ranks agreed on, so it stops exactly when rank 0 does (or is ended
    by the launcher when rank 0 ends after an evaluation).
    """
    from harness.core import runner  # it imports this module

    team = current_team()
    device = runner.resolve_device(str(cfg.device))
    submission_cls = submission_class(cfg.submission.name, cfg.submission.get("source"))
    hparams = submission_cls.Hparams.from_mapping(cfg.submission.hparams, submission=cfg.submission.name,
                                                  config=cfg.submission.get("config_from"))
    workload = workload_class(cfg.workload.name, cfg.workload.get("source"))(cfg.workload, device, cfg.data_dir)
    budget = float(cfg.max_runtime_s or workload.max_runtime_s)
    identity = runner.trial_identity(cfg, workload, hparams, device, submission_cls.revision)
    record_dir = runner.record_for(cfg, identity).dir
    workload = runner.loaded(workload, cfg)
    seed, spec = int(cfg.seed), workload.spec
    model, info = model_and_info(workload, hparams.batch_size, seed)
    submission = build_submission(submission_cls, model, hparams, info, seed)
    batches, compute_loss = training_stream(workload, team.wrap(model), hparams.batch_size, seed)
    batches = team.shard(batches, hparams.batch_size)
    clock = SubmissionClock(device)
    step, next_eval_s = 0, spec.eval_period_s or math.inf
    # rank 0 has loaded (or rejected) the checkpoint before DDP's construction above, a collective
    resume = load_checkpoint(record_dir, runner.config_hash(identity), say=lambda _message: None)
    if resume is not None:
        model.load_state_dict(resume["model"])
        submission.load_state_dict(resume["submission"])
        for _ in range(resume["step"]):
            next(batches)
        restore_rng(resume["rng"])
        step, next_eval_s = resume["step"], resume["next_eval_s"]
        clock.restore(resume["submission_s"])
    on_cuda = device.type == "cuda"
    check_every = cfg.divergence_check_every or (25 if on_cuda else 1)
    all_finite = torch.ones((), dtype=torch.bool, device=device)
    max_steps = cfg.max_steps or math.inf
    clock.resume()
    while True:  # the runner's loop (harness/core/runner.py: _train), less what only rank 0 does
        loss = submission.update(next(batches), compute_loss)
        step += 1
        if on_cuda:
            all_finite &= torch.isfinite(loss)
            diverged = step % check_every == 0 and not all_finite.item()
        else:
            diverged = step % check_every == 0 and not math.isfinite(loss.item())
        diverged, now = team.agree(diverged, clock.peek())
        if diverged:
            return
        eval_due = (now > budget or step >= max_steps or (spec.eval_every_steps is not None and
                    step % spec.eval_every_steps == 0) or now >= next_eval_s)
        if not eval_due:
            continue
        submission.prepare_for_eval()
        elapsed, loss, all_finite = team.at_eval(clock.pause(), loss, all_finite)
        if not (all_finite.item() and math.isfinite(loss.item())) or elapsed > budget or step >= max_steps:
            return  # rank 0 ends the trial here too
        next_eval_s = elapsed + (spec.eval_period_s or math.inf)
        team.go_on()  # rank 0 has evaluated; when it ended the trial instead, this raises (rank 0 is gone)
        clock.resume()


def main(argv: list[str]) -> int:
    """A worker: join the process group, run rank 0's trial or follow it."""
    from harness.core.runner import run_trial  # it imports this module

    global _TEAM
    cfg = OmegaConf.merge(OmegaConf.structured(TrialConfig), json.loads(argv[0]))
    rank, size = int(os.environ[RANK]), int(os.environ[WORLD_SIZE])
    if str(cfg.device).startswith("cuda") or (str(cfg.device) == "auto" and torch.cuda.is_available()):
        # its own GPU on its machine; a SLURM task given one GPU (gpus_per_task=1) sees only that one
        index = int(os.environ.get(LOCAL_RANK, rank)) % max(1, torch.cuda.device_count())
        cfg.device = f"cuda:{index}"
        torch.cuda.set_device(index)
    device = torch.device("cpu" if str(cfg.device) in ("auto", "cpu") else str(cfg.device))
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=size,
                            timeout=datetime.timedelta(minutes=30))
    _TEAM = ProcessTeam(rank, size, device)
    try:
        if rank == 0:
            summary = run_trial(cfg)
            Path(os.environ[SUMMARY]).write_text(json.dumps(summary))
        else:
            try:
                follow(cfg)
            except Exception:
                summary = Path(os.environ[SUMMARY])
                if summary.is_file() or summary.with_suffix(".error").is_file():
                    return 0  # rank 0 ended the trial (reached, pruned, refused): its leaving broke our wait
                raise  # our own failure: its traceback on stderr; rank 0 records the trial as failed
    except UserError as error:
        if rank == 0:
            Path(os.environ[SUMMARY]).with_suffix(".error").write_text(str(error))
        return 2
    finally:  # the group's threads ended here, not by the interpreter's exit (which can abort the process)
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # run as a script, this file is __main__: the team must be set on the module
    from harness.core.distributed import main as worker_main  # that the runner imports

    sys.exit(worker_main(sys.argv[1:]))
