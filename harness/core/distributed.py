"""Data-parallel trials: ``nproc=N`` trains one trial as N processes with DistributedDataParallel.

This module is what runs in each of the N processes (the ranks); :mod:`harness.core.ranks` says
where they come from (torch's launcher on this machine, SLURM's tasks, or a user's own
``torchrun``). They join one process group (gloo on the CPU, NCCL on CUDA, each rank on its
machine's ``cuda:<local rank>``). Rank 0 runs the ordinary trial
(:func:`harness.core.runner.run_here`): it holds the trial's lock, evaluates, writes the record
and the checkpoints. Ranks 1..N-1 run :func:`follow`, the same steps without any of that.

What makes N processes one trial, and the same trial as one process with the same batch size:

- every rank draws the *global* batch of the trial's stream and keeps its own slice of
  ``batch_size / N`` examples (so the union of the slices is the one-process batch); the model
  the loss runs through is wrapped in DDP, which averages the gradients over the ranks: the mean
  of the slices' mean gradients is the global batch's mean gradient. The submission sees the
  plain model (same names, same parameters) and averaged gradients.
- after every step the ranks agree (a max over a tiny host-side tensor, on a gloo group even on
  CUDA, so no device synchronisation) on the clock and on divergence: every rank then takes the
  same decisions (evaluate, stop). The charged time is the slowest rank's. On CUDA a rank also
  checks in on that gloo group before it waits for its device (:meth:`Team.check_in`).
- at an evaluation boundary every rank runs ``prepare_for_eval`` and pauses its clock; the ranks
  agree on the time (max), the last loss (mean: the global batch's) and finiteness; rank 0
  evaluates, logs and checkpoints while the others wait with their clocks paused, then all go on.
- when rank 0 ends the trial at an evaluation the others cannot foresee (reached, pruned), they
  are waiting for it: its exit breaks their wait, and its summary file tells them it was the end
  (the launcher ends any that remain). A failure in another rank ends that rank, which first
  writes its traceback for rank 0 (:func:`failure_file`); its exit breaks rank 0's next
  collective (:class:`RankLeft`), and rank 0 records the trial as failed with that traceback.

docs/decisions.md, "Data-parallel trials", says what is not covered (BatchNorm statistics and
dropout are per rank, as in DDP; torch.compile is not combined with it).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

from harness.config.registry import submission_class, workload_class
from harness.config.schema import TrialConfig
from harness.core.checkpoint import load_checkpoint, restore_rng
from harness.core.clock import SubmissionClock
from harness.core.interrupts import UserInterrupts, user_interrupts
from harness.core.parts import build_submission, model_and_info, training_stream
from harness.core.records import write_atomic
from harness.core.runner import config_hash, loaded, record_for, resolve_device, run_here, trial_identity
from harness.core.team import ProcessTeam, current_team, failure_file, join
from harness.errors import UserError
from harness.exits import die_with_parent, exit_now

# torch's names for a rank's place (torchrun sets them; harness.core.ranks sets them for SLURM's tasks)
RANK, WORLD_SIZE, LOCAL_RANK = "RANK", "WORLD_SIZE", "LOCAL_RANK"
TORCHRUN_RUN = "TORCHELASTIC_RUN_ID"  # set by torch's launcher in every worker it starts
SUMMARY = "OPTBENCH_SUMMARY_FILE"  # where rank 0 writes the trial's summary (``.error``: its refusal)
REFUSAL_WAIT_S = 10.0  # how long a rank that refused the trial waits for rank 0 to refuse it too
STRAGGLER_GRACE_S = 10.0  # after rank 0's summary, the time the other ranks get to end by themselves
JOIN_TIMEOUT = datetime.timedelta(minutes=5)  # how long the ranks of a SLURM job wait to meet (meeting_point)
GROUP_TIMEOUT = datetime.timedelta(minutes=30)  # how long a collective waits for a rank (torch's default)


def follow(cfg: DictConfig) -> None:
    """A rank other than 0 (:func:`_follow`), telling a real interrupt from submission code's own
    ``KeyboardInterrupt``/``SystemExit`` as rank 0 does (:func:`harness.core.interrupts.user_interrupts`)."""
    with user_interrupts() as interrupts:
        _follow(cfg, interrupts)


def _follow(cfg: DictConfig, interrupts: UserInterrupts) -> None:
    """A rank other than 0: the trial's steps and evaluation boundaries, without records.

    It builds what rank 0 builds, in the same order and from the same seed, and takes every
    decision from values all ranks agreed on, so it stops exactly when rank 0 does (or is ended
    by the launcher when rank 0 ends after an evaluation).
    """
    team = current_team()
    device = resolve_device(str(cfg.device))
    submission_cls = submission_class(cfg.submission.name, cfg.submission.get("source"))
    hparams = submission_cls.Hparams.from_mapping(cfg.submission.hparams, submission=cfg.submission.name,
                                                  config=cfg.submission.get("config_from"))
    workload = workload_class(cfg.workload.name, cfg.workload.get("source"))(cfg.workload, device, cfg.data_dir)
    budget = float(cfg.max_runtime_s or workload.max_runtime_s)
    identity = trial_identity(cfg, workload, hparams, device, submission_cls.revision)
    record_dir = record_for(cfg, identity).dir
    workload = loaded(workload, cfg)
    seed, spec = int(cfg.seed), workload.spec
    model, info = model_and_info(workload, hparams.batch_size, seed)
    clock = SubmissionClock(device)
    clock.resume()  # the submission's construction is charged, as rank 0's (its clock is part of the slowest)
    submission = _in_submission(interrupts, "submission.__init__", build_submission, submission_cls, model, hparams,
                                info, seed)
    _in_submission(interrupts, "submission.__init__", clock.pause)  # waits for what construction queued
    batches, compute_loss = training_stream(workload, team.wrap(model), hparams.batch_size, seed)
    batches = team.shard(batches, hparams.batch_size)
    step, next_eval_s = 0, spec.eval_period_s or math.inf
    # rank 0 has loaded (or rejected) the checkpoint before DDP's construction above, a collective
    resume = load_checkpoint(record_dir, config_hash(identity), say=lambda _message: None)
    if resume is not None:
        model.load_state_dict(resume["model"])
        submission.load_state_dict(resume["submission"])
        for _ in range(resume["step"]):
            next(batches)
        restore_rng(resume["rng"], device)
        step, next_eval_s = resume["step"], resume["next_eval_s"]
        clock.restore(resume["submission_s"])
        if device.type == "cuda":  # as rank 0's (StepRunner.restore): the replay's queued work is not charged
            torch.cuda.synchronize(device)
    on_cuda = device.type == "cuda"
    check_every = cfg.divergence_check_every or (25 if on_cuda else 1)
    all_finite = torch.ones((), dtype=torch.bool, device=device)
    max_steps = cfg.max_steps or math.inf
    clock.resume()
    while True:  # the runner's loop (harness/core/runner.py: _train), less what only rank 0 does
        loss = _in_submission(interrupts, "submission.update", submission.update, next(batches), compute_loss)
        step += 1
        if on_cuda:  # as rank 0's steps (harness/core/steps.py): every loss since the start counts
            all_finite &= torch.isfinite(loss).all()
        elif not math.isfinite(_in_submission(interrupts, "submission.update", loss.item)):  # as rank 0's
            all_finite.fill_(False)  # StepRunner._read: a kernel's error is raised at such reads, the step's
        check = step % check_every == 0
        if check:
            team.check_in()  # as rank 0's steps: before the read, which waits for the gradient exchange
        diverged = check and not _in_submission(interrupts, "submission.update", all_finite.item)
        diverged, now = team.agree(diverged, clock.peek())
        if diverged:
            return
        eval_due = (now > budget or step >= max_steps or (spec.eval_every_steps is not None and
                    step % spec.eval_every_steps == 0) or now >= next_eval_s)
        if not eval_due:
            continue
        _in_submission(interrupts, "submission.prepare_for_eval", submission.prepare_for_eval)
        settled = _in_submission(interrupts, "submission.update", clock.pause)  # waits for the queued steps
        elapsed, loss, all_finite = team.at_eval(settled, loss, all_finite)
        if not (all_finite.item() and math.isfinite(loss.item())) or elapsed > budget or step >= max_steps:
            return  # rank 0 ends the trial here too
        next_eval_s = elapsed + (spec.eval_period_s or math.inf)
        team.go_on()  # rank 0 has evaluated; when it ended the trial instead, this raises (rank 0 is gone)
        clock.resume()


class SubmissionFailed(Exception):
    """Submission code raised in a follower, in ``part`` (as a record's ``error_in`` names it)."""

    def __init__(self, part: str):
        super().__init__(part)
        self.part = part


def _in_submission(interrupts: UserInterrupts, part: str, call: Any, *args: Any) -> Any:
    """``call(*args)``, submission code: what it raises says so (:class:`SubmissionFailed`), its own
    ``SystemExit``/``KeyboardInterrupt`` too; a real interrupt (a signal arrived) goes up as it is."""
    try:
        return call(*args)
    except BaseException as error:
        interrupts.reraise_if_real(error)
        raise SubmissionFailed(part) from error


def main(argv: list[str], last_words: Callable[[], None] | None = None) -> int:
    """A rank: join the process group, run rank 0's trial or follow it. ``argv[0]`` is the
    trial's configuration (JSON); the rank's place is in torch's variables (:data:`RANK`, ...).
    ``last_words``: what a follower that :func:`end_after_rank_0` ends does first (under SLURM,
    leave submitit this task's result)."""
    cfg = OmegaConf.merge(OmegaConf.structured(TrialConfig), json.loads(argv[0]))
    rank, size = int(os.environ[RANK]), int(os.environ[WORLD_SIZE])
    summary = Path(os.environ[SUMMARY])
    if str(cfg.device).startswith("cuda") or (str(cfg.device) == "auto" and torch.cuda.is_available()):
        # its own GPU on its machine; a SLURM task given one GPU (gpus_per_task=1) sees only that one
        index = int(os.environ.get(LOCAL_RANK, rank)) % max(1, torch.cuda.device_count())
        cfg.device = f"cuda:{index}"
        torch.cuda.set_device(index)
    device = torch.device("cpu" if str(cfg.device) in ("auto", "cpu") else str(cfg.device))
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if rank == 0:  # an earlier attempt's (a requeued job's): gone before any rank can read it, i.e. before the
        # group exists (its creation waits for every rank), so a rank that reads one reads this attempt's
        for stale in (summary, refusal_file(summary), *(failure_file(summary, r) for r in range(1, size))):
            stale.unlink(missing_ok=True)
    store = None if TORCHRUN_RUN in os.environ else meeting_point(rank, size)  # torchrun's: its agent's
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=rank, world_size=size,
                            timeout=GROUP_TIMEOUT)
    join(ProcessTeam(rank, size, device, summary))
    followed = end_after_rank_0(rank, summary, last_words=last_words) if rank != 0 else FollowerWatch()
    try:
        if rank == 0:
            summary.write_text(json.dumps(run_here(cfg)))
        else:
            try:
                follow(cfg)
            except (Exception, KeyboardInterrupt) as error:
                if rank_0_ended(summary, wait_s=REFUSAL_WAIT_S if isinstance(error, UserError) else 0.0):
                    return 0  # rank 0 ended the trial (reached, pruned, refused): its leaving broke our wait
                if isinstance(error, KeyboardInterrupt):
                    raise
                if isinstance(error, UserError):
                    return _refused_alone(rank, error)
                return _failed_alone(rank, error, summary)
    except UserError as error:  # rank 0's refusal (another rank's is answered above)
        refusal_file(summary).write_text(str(error))
        return 0  # said in the file, which the launcher raises; the launcher's own status stays quiet
    except KeyboardInterrupt:  # Ctrl-C, passed on by the launcher: rank 0 has kept the record and said so
        return 130
    finally:  # the group's threads ended here, not by the interpreter's exit (which can abort the process)
        if dist.is_initialized():  # not when rank 0 aborted the groups (Team.abandon)
            dist.destroy_process_group()
        followed.set()  # ended by itself: the watch is over (a rank run inside another program goes on)
    return 0


class RanksDidNotMeet(RuntimeError):
    """The ranks of a trial did not all reach their meeting point (:func:`meeting_point`)."""


def meeting_point(rank: int, size: int) -> dist.TCPStore:
    """Where the ranks of a SLURM job meet (``MASTER_ADDR``:``MASTER_PORT``): rank 0 opens it and
    waits for the others, who connect to it; each waits :data:`JOIN_TIMEOUT`, not the process
    group's 30 minutes (torch's ``env://`` meeting waits that long, holding every GPU of the job when
    a task never started, or rank 0 could not listen at the port).
    """
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    try:
        store = dist.TCPStore(host, port, size, rank == 0, timeout=JOIN_TIMEOUT, wait_for_workers=True)
    except RuntimeError as error:  # torch's DistNetworkError / DistStoreError
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        waited = f"{JOIN_TIMEOUT.total_seconds():g} s"
        if rank == 0:
            why = (f"rank 0 could not open the ranks' meeting point at port {port} on {host}, or the other {size - 1} "
                   f"did not all connect to it within {waited}")
        else:
            why = f"rank {rank} could not reach rank 0's meeting point at {host}:{port} within {waited}"
        raise RanksDidNotMeet(
            f"The data-parallel trial's {size} ranks did not meet: {why} ({first}). A task that failed before "
            f"it started the trial says why in its own log; a port another program holds is another port for "
            f"another job (the port comes from the job id), so submitting the trial again retries it.") from error
    store.set_timeout(GROUP_TIMEOUT)  # met: from here on, waits are the process group's
    return store


def end_after_rank_0(rank: int, summary: Path, grace_s: float = STRAGGLER_GRACE_S,
                     poll_s: float = 0.5, last_words: Callable[[], None] | None = None) -> FollowerWatch:
    """Watch, beside this follower's work, for rank 0's summary or refusal; ``grace_s`` after it, end
    the process (status 0: the trial's record is complete; ``last_words`` first) unless the returned
    event was set first (the follower's work ended by itself).

    A follower's wait normally breaks when rank 0 exits. Over NCCL it may not: a follower inside a
    collective that rank 0 never joined (its submission failed before the backward pass) waits for
    the process group's timeout, 30 minutes, keeping its GPU. Torch's launcher on this machine
    ends such ranks (:mod:`harness.core.ranks`); SLURM's tasks and a user's torchrun have nobody
    to. Started once the process group exists, i.e. after rank 0 removed an earlier attempt's files.
    Under SLURM ``last_words`` leaves submitit the task's result (harness.core.ranks): without one
    the launch would count the job as lost, and stop waiting for the sweep's other jobs.
    """
    done = FollowerWatch()

    def watch() -> None:
        while True:
            while not rank_0_ended(summary):
                if done.ended.wait(poll_s):
                    return
            if done.ended.wait(grace_s):
                return
            if rank_0_ended(summary):  # still there (not a deleted file that a shared file system still showed)
                break
        with done.deciding:  # the follower's own end cannot come between (it would write submitit's result too)
            if done.ended.is_set():
                return
            print(f"rank {rank}: rank 0 ended the trial {grace_s:g} s ago and this rank was still waiting for it: "
                  f"ending it (the record is rank 0's)", file=sys.stderr)
            if last_words is not None:
                try:
                    last_words()
                except Exception as error:
                    print(f"rank {rank}: {error}", file=sys.stderr)
            exit_now(0)

    threading.Thread(target=watch, name="optbench-rank-0-watch", daemon=True).start()
    return done


class FollowerWatch:
    """:func:`end_after_rank_0`'s watch: :meth:`set` says the follower's work ended by itself. A
    watch that is ending the process holds ``deciding`` until it is gone, so a follower that ends
    at that moment waits there instead of also finishing (its task's result written twice)."""

    def __init__(self) -> None:
        self.ended = threading.Event()
        self.deciding = threading.Lock()

    def set(self) -> None:
        with self.deciding:
            self.ended.set()


def refusal_file(summary: Path) -> Path:
    """Where rank 0 writes its refusal of a setting (a UserError) instead of the ``summary``."""
    return summary.with_suffix(".error")


def rank_0_ended(summary: Path, wait_s: float = 0.0) -> bool:
    """Whether rank 0 has written the trial's summary or its refusal to ``summary`` (its ``.error``),
    waiting up to ``wait_s`` seconds for it."""
    deadline = time.monotonic() + wait_s
    while not (summary.is_file() or refusal_file(summary).is_file()):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _refused_alone(rank: int, error: UserError) -> int:
    """A refusal (a UserError) in a rank other than 0 that rank 0 has not also written: its message,
    and the exit status. Usually rank 0 meets the same refusal a moment later (missing data, say:
    every rank loads it) and the follower waited for it; one it does not meet breaks rank 0's next
    collective, which records the trial as failed. Under torch's launcher the status is 0, as in
    :func:`_failed_alone`, so that the launcher does not end rank 0 before it has said why."""
    print(f"rank {rank} of the data-parallel trial refused it: {error}", file=sys.stderr)
    return 0 if TORCHRUN_RUN in os.environ else 2


def _failed_alone(rank: int, error: Exception, summary: Path) -> int:
    """This rank's own failure (a rank other than 0): its traceback on stderr and in its
    :func:`failure_file` (where rank 0 reads it for the record), and the exit status.

    Its exit breaks rank 0's wait for it, and rank 0 records the trial as failed, in the part of
    the submission that raised here (``harness`` for anything else, which a rerun retries). Under torch's
    launcher the status is 0: torchrun ends every rank as soon as one exits with an error, which
    would end rank 0 before it has recorded anything (the trial would stay resumable and fail
    the same way each time). The failure is in the record and in the launching command's status.
    """
    part = error.part if isinstance(error, SubmissionFailed) else "harness"
    cause = error.__cause__ if isinstance(error, SubmissionFailed) and error.__cause__ is not None else error
    told = "".join(traceback.format_exception(cause))
    try:  # before this rank leaves: rank 0's wait breaks only then, and it finds the file
        write_atomic(failure_file(summary, rank),
                     json.dumps({"error": told, "error_in": part, "at": time.time()}).encode())
    except OSError as unwritten:
        print(f"rank {rank}: could not tell rank 0 why it failed ({unwritten})", file=sys.stderr)
    print(f"rank {rank} of the data-parallel trial stopped on the error below; unless rank 0 ended the trial "
          f"itself, it records the trial as failed:\n{told}", file=sys.stderr, end="")
    return 0 if TORCHRUN_RUN in os.environ else 1


def run_launched_rank(argv: list[str]) -> None:
    """A rank started by torch's launcher for ``optbench trial nproc=N``: :func:`main`, then the
    process ends without the interpreter's teardown, which can abort it (harness/exits.py).

    When rank 0 ends the trial (reached, pruned) while another rank waits in a collective, that
    rank's wait breaks and it leaves; torch's launcher printed a failure report of a trial that
    had succeeded when the rank then aborted. Nothing is left to write once main returns."""
    die_with_parent(signal.SIGKILL)
    exit_now(main(argv))


if __name__ == "__main__":  # a rank started by torch's launcher (harness.core.ranks)
    run_launched_rank(sys.argv[1:])
