"""The processes of one trial: a single process, or the ranks of a data-parallel trial.

:class:`Team` is what the training loop asks at each step and evaluation boundary (agree on the
clock and divergence, wait for rank 0's evaluation, say who failed first); for one process every
answer is its own. :class:`ProcessTeam` answers for rank ``rank`` of ``size`` in torch's process
group, which :mod:`harness.core.distributed` (each rank's process) joins. This module imports
nothing of the trial's loop, which asks it: docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch import nn
from torch.utils._pytree import tree_map

from harness.errors import UserError
from harness.workload import Batch

TOLD_GRACE_S = 2.0  # how long rank 0 waits for another rank's failure file when an exchange broke


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

    def check_in(self) -> None:
        """Before this rank waits for its device with the other ranks' exchanges queued on it (a
        divergence check, DDP's construction): every rank is still in the trial (:class:`RankLeft`)."""

    def blame(self, error: str, error_in: str | None) -> tuple[str, str | None]:
        """Rank 0's failure (traceback, part) as the trial's: with the failure of another rank that
        left the trial first, when one did (that rank's exit is what broke rank 0's wait)."""
        return error, error_in

    def abandon(self) -> None:
        """Another rank left: end the exchanges still queued with it, so that nothing waits for them."""


class RankLeft(RuntimeError):
    """Another rank of the trial left it (failed, was killed) while this one waited for it."""


class ProcessTeam(Team):
    """Rank ``rank`` of ``size`` processes in the default process group."""

    def __init__(self, rank: int, size: int, device: torch.device, summary: Path):
        self.rank, self.size, self.device, self.summary = rank, size, device, summary
        # host-side agreement on its own gloo group: on CUDA it never waits for the device
        self.host = dist.new_group(backend="gloo") if device.type == "cuda" else None

    def wrap(self, model: nn.Module) -> nn.Module:
        self.check_in()  # DDP's construction broadcasts rank 0's weights: a collective on the device
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DataParallelModel(model, device_ids=ids)

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
        with self._exchange("the agreement after a step"):
            dist.all_reduce(state, op=dist.ReduceOp.MAX, group=self.host)
        return bool(state[0]), float(state[1])

    def at_eval(self, elapsed: float, loss: torch.Tensor,
                all_finite: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        value = float(loss.detach().float().item())
        worst = torch.tensor([elapsed, float(not bool(all_finite.item()) or not math.isfinite(value))],
                             dtype=torch.float64)
        total = torch.tensor([value], dtype=torch.float64)
        with self._exchange("the agreement at an evaluation"):
            dist.all_reduce(worst, op=dist.ReduceOp.MAX, group=self.host)
            dist.all_reduce(total, op=dist.ReduceOp.SUM, group=self.host)
        mean = torch.tensor(float(total[0]) / self.size, dtype=loss.dtype, device=loss.device)
        finite = torch.tensor(not bool(worst[1]), device=all_finite.device)
        return float(worst[0]), mean, finite

    def go_on(self) -> None:
        dist.barrier(group=self.host)

    def check_in(self) -> None:
        # NCCL: a rank that left (its submission failed before its backward, say) never joins the
        # exchange queued on the device, and reading the device would wait for NCCL's 30-minute
        # timeout. Its exit breaks a host-side wait at once. gloo's own waits break the same way: nothing to do.
        if self.host is None:
            return
        with self._exchange("the check-in before a wait for the device"):
            dist.barrier(group=self.host)

    def blame(self, error: str, error_in: str | None) -> tuple[str, str | None]:
        told = self._told()  # each written before its rank left, so before rank 0's wait for it broke
        if not told and error_in != "harness" and broken_exchange(error):
            time.sleep(TOLD_GRACE_S)  # ranks that failed in the same exchange as rank 0 write theirs now
            told = self._told()
            if not told:  # DDP's all-reduce in the submission's backward: no fault of its code
                return (f"{error.rstrip()}\n\nAnother rank of the data-parallel trial left it during an exchange "
                        f"inside {error_in} without saying why (killed: out of memory, a preempted task, kill -9). "
                        f"That is not the submission's failure: running the same command again resumes the "
                        f"trial from its last checkpoint.", "harness")
        if not told:
            return error, error_in
        # the first to fail: its leaving broke the others' waits (with 3 ranks or more, theirs too)
        theirs, rank = min(told, key=lambda pair: (pair[0].get("at", 0.0), pair[1]))
        return (f"{error.rstrip()}\n\nRank {rank} of the data-parallel trial failed first, which ended the wait "
                f"above:\n{theirs['error']}", theirs["error_in"])

    def _told(self) -> list[tuple[dict[str, Any], int]]:
        """The failures the other ranks wrote (:func:`failure_file`), with their ranks."""
        told = []
        for rank in range(1, self.size):
            try:
                told.append((json.loads(failure_file(self.summary, rank).read_text()), rank))
            except (OSError, ValueError):  # none (or unreadable): that rank did not fail on its own
                continue
        return told

    def abandon(self) -> None:
        # NCCL: a queued all-reduce with a rank that left waits for the group's 30-minute timeout, and
        # the next device synchronisation with it; aborting the groups ends it now. gloo's exchanges
        # ended already; aborting them too keeps one path, the one the CPU tests run.
        try:
            dist.distributed_c10d._abort_process_group()
        except Exception as error:  # a torch without it (or a group already gone): the timeout then
            print(f"rank {self.rank}: could not abort the process group ({error})", file=sys.stderr)

    @contextlib.contextmanager
    def _exchange(self, what: str) -> Iterator[None]:
        try:
            yield
        except RuntimeError as error:  # gloo: "Connection closed by peer"
            raise RankLeft(f"another rank left the data-parallel trial during {what}: {error}") from error


#: what the last line of an error says when a collective broke because a rank left: gloo's
#: transport ("Connection reset by peer", "Connection closed by peer"), NCCL's (DistBackendError)
BROKEN_EXCHANGE = ("DistBackendError", "/gloo/", "NCCL", "Connection reset by peer", "Connection closed by peer")


def broken_exchange(error: str) -> bool:
    """Whether the traceback ``error`` ends in a collective that broke (a rank left)."""
    lines = error.strip().splitlines()
    return bool(lines) and any(mark in lines[-1] for mark in BROKEN_EXCHANGE)


def failure_file(summary: Path, rank: int) -> Path:
    """Where rank ``rank`` (not 0) writes its own failure, for rank 0's record."""
    return summary.with_suffix(f".rank{rank}")


class DataParallelModel(nn.parallel.DistributedDataParallel):
    """DDP's wrapper, whose missing attributes say what a workload's loss should do instead."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            raise AttributeError(
                f"'{name}' was read from the model of a data-parallel trial (nproc > 1), which is DDP's wrapper "
                f"and has no '{name}'. A workload's loss calls model(...) and reads nothing else of it "
                f"(harness.workload.Workload.loss).") from None


_TEAM: Team = Team()


def current_team() -> Team:
    """The team of this process: a single process unless it is a worker of a data-parallel trial."""
    return _TEAM


def join(team: Team) -> None:
    """Make ``team`` this process's (a rank, once its process group exists)."""
    global _TEAM
    _TEAM = team


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
