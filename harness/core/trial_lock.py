"""One process per trial: a lock file in the record folder, held for as long as the trial runs.

Two runs of the same trial (the same command typed twice, a SLURM requeue while the old job is
still alive, two sweeps over one results folder) would both append to ``evals.jsonl`` and
overwrite each other's checkpoint and manifest. The runner therefore takes ``<record>/.lock``
before it reads the checkpoint or writes anything, and a second run refuses with the holder's
identity (host, pid, SLURM job, start time).

The lock is the operating system's (``fcntl.flock`` on the open file): it disappears with the
process however the process ends (kill -9, node reboot), so a stale file left behind never
blocks a rerun — the file's *content* is only the holder's description. It holds on local
disks, NFSv4 and Lustre/GPFS mounted with flock support; on a filesystem without working
locks (some NFSv3 setups with ``nolock``) two runs are not prevented, which the README
states.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.identity import utc_timestamp

LOCK_NAME = ".lock"


class TrialBusy(UserError):
    """Another process is running this trial (exit 1: nothing is wrong with the input)."""

    exit_code = 1


def holder_identity() -> dict[str, Any]:
    """Who is taking the lock: host, pid, SLURM job (when under SLURM) and the time."""
    slurm = {k: os.environ[v] for k, v in (("job", "SLURM_JOB_ID"), ("array_job", "SLURM_ARRAY_JOB_ID"),
                                          ("array_task", "SLURM_ARRAY_TASK_ID")) if os.environ.get(v)}
    return {"host": socket.gethostname(), "pid": os.getpid(), **({"slurm": slurm} if slurm else {}),
            "since": utc_timestamp()}


class TrialLock:
    """``with TrialLock(record_dir):`` — hold the trial's lock or raise :class:`TrialBusy`."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> TrialLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise TrialBusy(self._busy_message()) from None
            # The holder before us may have unlinked the file between our open and our lock:
            # then we hold a lock on a file nobody else can see. Start again on the current one.
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(holder_identity()) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked: a waiting opener retries on a new file
        os.close(self._fd)
        self._fd = None

    def _busy_message(self) -> str:
        return (f"this trial is already running ({_holder(self.path)}); its record folder {self.path.parent} is left "
                f"alone. Wait for it to end (or stop it), then run the same command again.")


def _holder(path: Path) -> str:
    """The lock file's holder in words: host, pid, SLURM job, since when."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    slurm = holder.get("slurm") or {}
    job = (f", SLURM job {slurm.get('array_job')}_{slurm.get('array_task')}" if slurm.get("array_job")
           else f", SLURM job {slurm['job']}" if slurm.get("job") else "")
    return (f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}{job}, since {holder.get('since', '?')}"
            if holder else "a process that has not written its identity yet")


def lock_holder(folder: Path) -> str | None:
    """Who runs the trial of ``folder`` now (its lock's holder, in words), or None when nobody does.

    A probe: it takes a shared lock without waiting and drops it at once (a run starting in that
    instant would refuse as busy; callers probe trials that are not expected to start)."""
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None  # no lock file: nobody has held it since its last holder ended
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(Path(folder) / LOCK_NAME)
    finally:
        os.close(fd)  # closing drops the probe's lock
    return None
