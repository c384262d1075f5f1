"""``isolation=process``: the submission trains in a trainer process; the harness keeps the clock,
the target, the validation and test data and the records (docs/decisions.md, "Process isolation").

The trainer (:mod:`harness.core.trainer`) is forked from a forkserver: a fresh interpreter with
torch and the trainer's module imported and no data, so nothing of this process (its loaded
workloads, the target, the clock) is in its memory. Per run of steps the harness sends one
``run`` message and receives one ``stopped``; in between it sleeps until the charged time at
which an evaluation or the end of the budget is due and then sets a stop flag in shared memory,
which the trainer reads after every step. The charged time is what the harness measures between
the two messages: the trainer has no clock to reset. At a stop the trainer copies its weights
into the harness's model (shared memory on the CPU; CUDA IPC handles of the harness's tensors
on a GPU, a device-to-device copy), and the harness stops the trainer's whole process group
(SIGSTOP) while it evaluates, checkpoints and records, so that no thread of the submission
trains off the clock; SIGCONT comes right before the next ``run``.

What the trainer sends is never unpickled: control messages are JSON and a checkpoint's state is
read with ``torch.load(weights_only=True)``. A trainer that dies (killed, a segfault) ends the
trial as ``failed`` with its signal named; none of the waits here is unbounded while the trainer
can hang (a step that does not end long after the stop flag is given up on).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import shutil
import signal
import time
from collections import OrderedDict
from contextlib import AbstractContextManager
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from harness.config.child_process import bare_start, context, server_pid
from harness.config.compose import to_plain
from harness.config.registry import workload_class
from harness.core.checkpoint import check_loadable
from harness.core.clock import SubmissionClock
from harness.core.evaluation import build_model
from harness.core.interrupts import UserInterrupts
from harness.core.progress import Progress
from harness.core.sandbox import data_reads, plan
from harness.core.steps import STATUSES, Stop, SubmissionFault
from harness.core.trainer import STEP, STOP, redacted, serve
from harness.errors import UserError
from harness.scratch import scratch_folder
from harness.specs import WorkloadConfig
from harness.submission import Submission, TrainingHparams
from harness.workload import Workload

#: a step still running this long after the stop flag was set (or after the budget ran out, when
#: that is longer) is a hung trainer: it is killed and the trial fails
STOP_GRACE_S = 60.0
#: the longest wait for a reply that involves no submission code (weights, reports)
REPLY_TIMEOUT_S = 120.0
#: the longest a message from the trainer may be (a traceback, the reports), in bytes
MAX_MESSAGE = 16 * 2**20
#: where a trainer's stop may say a failure happened
SUBMISSION_PARTS = ("submission.__init__", "submission.update", "submission.prepare_for_eval")
#: the longest the harness waits for the trainer's processes to stop; those still running are killed
FREEZE_TIMEOUT_S = 5.0
#: how often the harness wakes while the trainer runs, to report progress
PROGRESS_POLL_S = 1.0

_TRAINING: OrderedDict[str, Workload] = OrderedDict()  # training-only workloads of this process, newest last


def training_workload(cfg: DictConfig, device: torch.device) -> tuple[dict[str, Any], Workload]:
    """The trial's workload config with its targets removed, and a workload built from it with
    its training data alone loaded, or an identical one built for an earlier trial.

    Kept so that a trial does not read and decode the data again: like
    :func:`harness.core.runner.loaded`, for the trainer's side. Two are kept. A trainer gets a copy
    of it (:func:`own_copy`), never these tensors themselves.
    """
    config = redacted(to_plain(cfg.workload))
    key = json.dumps([config, str(device), cfg.data_dir], sort_keys=True)
    if key not in _TRAINING:
        structured = OmegaConf.merge(OmegaConf.structured(WorkloadConfig), config)
        workload = workload_class(structured.name, structured.get("source"))(structured, device, cfg.data_dir)
        with data_reads():  # the files it reads: no trainer may (harness/core/sandbox.py)
            workload.load_training_data()
        _TRAINING[key] = workload
        while len(_TRAINING) > 2:
            _TRAINING.popitem(last=False)
    _TRAINING.move_to_end(key)
    return config, _TRAINING[key]


def own_copy(workload: Workload) -> Workload:
    """A copy of a training-only workload whose tensors are the trainer's own.

    What a trainer receives is shared memory that it can write to; were it the cached workload's
    own tensors, a submission could rewrite (shuffle, poison) the training data of every later
    trial of this process, other submissions' included. A copy per trial costs one pass over the
    data (0.15 s more start-up for fashion_mnist's 157 MB: docs/decisions.md) and confines such a
    write to the trial that made it."""
    return copy.deepcopy(workload)


def check_isolation(workload: Workload | None, nproc: int = 1, compiling: dict[str, Any] | None = None) -> None:
    """Refuse ``isolation=process`` for a workload that cannot load its training data alone,
    saying what to implement, and with what it does not run with yet: data-parallel trials and
    torch.compile (before the trial's record is started)."""
    if nproc > 1:
        raise UserError(f"isolation=process does not run data-parallel trials yet (nproc={nproc}): use "
                        f"isolation=inprocess with nproc, or nproc=1 with isolation=process.")
    if compiling:
        raise UserError("isolation=process does not compile the model yet: set compile=false (or "
                        "isolation=inprocess to compile).")
    if workload is not None and not workload.loads_training_data_alone():
        workload.load_training_data()  # the base class's: raises the UserError that says what to implement


class TrainerDied(Exception):
    """The trainer process ended without a reply."""


class Unfrozen(SubmissionFault):
    """The trainer's processes could not all be stopped for the harness's work, or ran again while
    stopped: they were killed, and the trial fails as the submission's wherever this is found."""


class ProcessTrainer:
    """The harness's side of a trainer process (:class:`harness.core.steps.Trainer`)."""

    def __init__(self, cfg: DictConfig, workload: Workload, submission_cls: type[Submission],
                 hparams: TrainingHparams, device: torch.device, check_every: int, progress: Progress,
                 interrupts: UserInterrupts):
        self.progress, self.interrupts = progress, interrupts
        self.clock = SubmissionClock(device)
        self.compile_s = 0.0  # the trainer process does not compile (check_isolation)
        self.model = build_model(workload, int(cfg.seed))  # overwritten by the trainer's weights at every stop
        self.model.train()
        #: the seed's fresh weights, which the trainer's model must still have after construction
        self.initial = {name: value.detach().clone() for name, value in self.model.state_dict().items()}
        if device.type == "cpu":
            self.model.share_memory()
        config, cached = training_workload(cfg, device)
        self.training: Workload | None = own_copy(cached)  # held until the trainer is gone
        #: the trainer's private folder for temporary files, the one it may write to (removed with it)
        self.scratch: str | None = scratch_folder("trainer")
        setup = {
            "workload": config, "device": str(device),
            "seed": int(cfg.seed), "threads": torch.get_num_threads(), "check_every": check_every,
            "harness_pid": os.getpid(),  # the trainer ends with this process (harness/exits.py: end_with)
            "submission": cfg.submission.name, "submission_source": cfg.submission.get("source"),
            "hparams": to_plain(cfg.submission.hparams), "config_from": cfg.submission.get("config_from"),
            "sandbox": plan(cfg, self.scratch),  # what it may read and write (harness/core/sandbox.py)
        }
        ctx = context()
        self.control = ctx.RawArray("q", 2)
        self.conn, child = ctx.Pipe()
        self.process: Any = ctx.Process(target=serve, args=(child, self.control, setup), name="optbench-trainer")
        self.phase, self.step, self.alive = "setup", 0, True
        self.frozen: set[int] = set()  # the trainer and what it started, as last stopped (:meth:`_freeze`)
        started = time.monotonic()
        with bare_start("optbench-trainer"):
            self.process.start()
        child.close()
        try:
            self.conn.send(self.training)  # its tensors go as shared memory: the data is not read again
            self.conn.send(self.model.state_dict())  # the tensors the trainer copies its weights into
            self._expect("ready")  # the data loaded, the model built: not charged
            self._freeze()
        except BaseException:
            self.close()
            raise
        #: seconds from starting the trainer to its being ready (its data loaded, its model built)
        self.startup_s = time.monotonic() - started

    # ------------------------------------------------------------------ the Trainer protocol
    def construct(self) -> Stop | None:
        try:
            return self._construct()
        except Unfrozen as error:
            return Stop(0, "failed", error=str(error), error_in="submission.__init__")

    def _construct(self) -> Stop | None:
        self.phase = "submission.__init__"
        self._thaw()
        self.clock.resume()
        try:
            self._send(("construct", None))
            message = self._read()
        except TrainerDied as error:
            return Stop(0, "failed", error=str(error), error_in="submission.__init__")
        finally:
            self.clock.pause()
            if self.alive:
                self._freeze()
        if message["event"] != "constructed":
            return self._stop(message, expected_step=0)
        return self._check_untouched()

    def _check_untouched(self) -> Stop | None:
        """After construction (uncharged): the trainer's model must still be the seed's fresh one.
        Construction builds optimizer state; the first step is the first change to the weights. A
        model that differs was trained where the harness does not look (set-up, an import that
        patched the harness, weights cached by an earlier trial) or replaced."""
        self.phase = "weights"
        self._thaw()
        try:
            self._send(("weights", None))
            self._expect("weights", REPLY_TIMEOUT_S)
        except TrainerDied as error:
            return Stop(0, "failed", error=str(error), error_in="submission.__init__")
        finally:
            if self.alive:
                self._freeze()
        changed = [name for name, value in self.model.state_dict().items()
                   if not torch.equal(value, self.initial[name])]
        self.initial = {}
        if not changed:
            return None
        return Stop(0, "failed", error_in="submission.__init__", error=(
            f"the model's weights after the submission's construction are not the seed's fresh model's ({len(changed)} "
            f"tensor(s) differ, e.g. {changed[0]}): a submission builds its state in __init__ and changes the weights "
            f"only in its steps (charged); weights made elsewhere (during set-up, by an earlier trial) would be "
            f"training the clock never saw"))

    def restore(self, resume: dict[str, Any]) -> None:
        self.phase = "restore"
        self.model.load_state_dict(resume["model"])
        self._thaw()
        self.clock.resume()  # the submission's load_state_dict is charged: timed here, from outside
        try:
            self._send(("restore", resume))
            self._expect("loaded", timeout=None)
            self.clock.pause()
            self._expect("restored", timeout=None)  # replays the stream (uncharged): as long as the steps took
        finally:
            self.clock.pause()
            self._freeze()
        self.step = int(resume["step"])

    def run(self, stop_step: float, budget: float, next_eval_s: float) -> Stop:
        """One run of steps, timed here: from the ``run`` message to the ``stopped`` reply."""
        try:
            return self._run(stop_step, budget, next_eval_s)
        except Unfrozen as error:
            return Stop(self.step, "failed", error=str(error), error_in="submission")

    def _run(self, stop_step: float, budget: float, next_eval_s: float) -> Stop:
        self.phase = "submission"
        control, clock = self.control, self.clock
        control[STOP] = 0
        self._thaw()
        clock.resume()
        try:
            self._send(("run", stop_step))
            due_at = min(budget, next_eval_s)
            flagged_at = None
            while not self.conn.poll():
                now = clock.peek()
                if flagged_at is None and (now > budget or now >= next_eval_s):
                    control[STOP] = 1  # the trainer ends its step, prepares for evaluation and reports
                    flagged_at = now
                elif flagged_at is not None and now - flagged_at > max(STOP_GRACE_S, budget):
                    self.close()
                    return Stop(int(control[STEP]), "failed", error_in="submission", error=(
                        f"the trainer's step did not end within {now - flagged_at:.0f} s after the harness asked it "
                        f"to stop (the budget is {budget:g} s): it was killed"))
                self.progress.tick(int(control[STEP]), now)
                timeout = PROGRESS_POLL_S if flagged_at is not None else min(PROGRESS_POLL_S, due_at - now)
                self._wait(max(timeout, 0.0) if math.isfinite(timeout) else PROGRESS_POLL_S)
            return self._stop(self._read(), expected_step=self.step)
        except TrainerDied as error:
            return Stop(self.step, "failed", error=str(error), error_in="submission")
        finally:
            clock.pause()
            if self.alive:
                self._freeze()

    def state(self) -> dict[str, Any]:
        """The trainer's state for a checkpoint; the trainer runs to send it, so it is charged."""
        self.phase = "checkpoint"
        self._thaw()
        self.clock.resume()
        try:
            self._send(("state", None))
            data = self._bytes(REPLY_TIMEOUT_S)
        finally:
            self.clock.pause()
            self._freeze()
        if data.startswith(b"PK"):  # a saved state (a zip archive), which may hold what cannot be loaded
            check_loadable(data)  # the submission's state_dict's: UnloadableState
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # never runs its code
        except Exception:  # the trainer's failure (a JSON message), or not a state at all
            raise TrainerDied(f"the trainer sent no checkpoint state: {data[:2000].decode(errors='replace')}") from None
        if not (isinstance(state, dict) and {"model", "submission", "rng"} <= set(state)):
            raise TrainerDied("the trainer sent a checkpoint state without model, submission and rng")
        return {key: state[key] for key in ("model", "submission", "rng")}

    def uncounted_memory(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # the trainer process measures its peak, and never evaluates

    def reports(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Memory and routing as the trainer measured them; none when it is gone."""
        if not self.alive:
            return None, None
        self.phase = "reports"
        self._thaw()
        try:
            self._send(("reports", None))
            message = self._read(REPLY_TIMEOUT_S)
        except (TrainerDied, OSError):
            return None, None
        finally:
            if self.alive:
                self._freeze()
        if message.get("event") != "reports":
            return None, None
        memory, routing = message.get("memory"), message.get("routing")
        return (memory if isinstance(memory, dict) else None), (routing if isinstance(routing, dict) else None)

    def close(self) -> None:
        """Kill the trainer and everything it started (its process group and every process below
        it, in whatever group or session), and reap it."""
        if getattr(self, "process", None) is None:
            return
        self.alive = False
        if self.process.pid is not None:
            with contextlib.suppress(Unfrozen):  # killed then
                self._freeze()  # all stopped and found before the trainer dies (its orphans would move to init)
            self._kill(self.frozen)
        self.process.join(timeout=10)
        self.conn.close()
        self.process, self.training = None, None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    # ------------------------------------------------------------------ messages
    def _send(self, command: tuple[str, Any]) -> None:
        try:
            self.conn.send(command)
        except OSError:  # a broken pipe: the trainer is gone
            raise self._died() from None

    def _wait(self, timeout: float | None) -> None:
        """Until a message is there or ``timeout`` passes; a trainer that died raises."""
        ready = wait([self.conn, self.process.sentinel], timeout)
        if self.process.sentinel in ready and not self.conn.poll():
            raise self._died()

    def _bytes(self, timeout: float | None, limit: int | None = None) -> bytes:
        if not self.conn.poll(0):
            self._wait(timeout)
            if not self.conn.poll(0):
                raise TrainerDied(f"the trainer sent no reply within {timeout:.0f} s (during {self.phase})")
        try:
            return self.conn.recv_bytes(limit) if limit else self.conn.recv_bytes()
        except (EOFError, OSError):
            raise self._died() from None

    def _read(self, timeout: float | None = None) -> dict[str, Any]:
        """The trainer's next message (JSON), waiting at most ``timeout`` (None: until it comes or dies)."""
        data = self._bytes(timeout, MAX_MESSAGE)
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not (isinstance(message, dict) and isinstance(message.get("event"), str)):
            raise TrainerDied(f"the trainer sent a message that is not one of the harness's (during {self.phase})")
        return message

    def _expect(self, event: str, timeout: float | None = None) -> None:
        """A reply ``event``, else the trainer's failure as a harness error."""
        message = self._read(timeout)
        if message["event"] != event:
            raise TrainerDied(f"the trainer failed during {self.phase}:\n{message.get('error', message)}")

    def _stop(self, message: dict[str, Any], expected_step: int) -> Stop:
        """The trainer's ``stopped`` (or ``failed``) message as a :class:`Stop`, checked."""
        if message["event"] == "failed":  # outside submission code: the harness's part of the trainer
            return Stop(expected_step, "failed", error=str(message.get("error")), error_in="harness")
        step, status = message.get("step"), message.get("status")
        if message["event"] != "stopped" or not isinstance(step, int) or step < expected_step or \
                status not in STATUSES:
            raise TrainerDied(f"the trainer sent a malformed stop message (during {self.phase})")
        self.step = step
        loss, error_in = message.get("loss"), message.get("error_in")
        if status == "failed" and error_in not in SUBMISSION_PARTS:
            error_in = "submission"  # a stop is the submission's: it cannot name the harness
        return Stop(step, status, float(loss) if isinstance(loss, (int, float)) else math.nan,
                    error=str(message.get("error")) if status == "failed" else None,
                    error_in=error_in if status == "failed" else None)

    def _died(self) -> Exception:
        """The error for a trainer that ended: an interrupt when a signal came to the harness too."""
        self.process.join(timeout=5)
        self.alive = False
        if self.interrupts.signalled is not None:
            return KeyboardInterrupt()
        code = self.process.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
        return TrainerDied(f"the trainer process ended ({how}) during {self.phase}")

    # ------------------------------------------------------------------ freezing
    def _freeze(self) -> None:
        """Stop every thread of the trainer's process group and of every process it started (those
        in other groups or sessions too), and wait until the kernel shows them all stopped, twice
        in a row with nothing new (a process not yet stopped may resume one that is: stop it again).
        Processes that cannot all be stopped within :data:`FREEZE_TIMEOUT_S` are killed, and the
        trial fails (:class:`Unfrozen`): the harness never evaluates while the submission runs."""
        pid = self.process.pid
        self.frozen = set()
        if pid is None or not _signal_group(pid, signal.SIGSTOP):
            return
        stopped, quiet = {pid}, 0
        deadline = time.monotonic() + FREEZE_TIMEOUT_S
        while quiet < 2:  # passes in a row that found every process stopped and none new
            new = (set(descendants(pid)) | set(forked_for_it(pid))) - stopped
            running = [p for p in stopped if not _stopped(p)]
            stopped |= new
            if not (new or running):
                quiet += 1
                continue
            quiet = 0
            if time.monotonic() > deadline:
                self._kill(stopped)
                raise Unfrozen(
                    f"the trainer's processes could not all be stopped within {FREEZE_TIMEOUT_S:g} s of the end of "
                    f"its steps ({len(running)} of {len(stopped)} still running: one resumed another, or a thread did "
                    f"not stop): they were killed, as nothing of a submission may run while the harness evaluates")
            if running:
                _signal_group(pid, signal.SIGSTOP)
            for child in [*running, *new]:
                _signal(child, signal.SIGSTOP)
            if not new:
                time.sleep(0.0002)
        self.frozen = stopped

    def _kill(self, processes: set[int]) -> None:
        """Kill the trainer's process group and ``processes`` (stopped ones too)."""
        self.alive = False
        for signum in (signal.SIGKILL, signal.SIGCONT):
            _signal_group(self.process.pid, signum)
            for child in processes:
                _signal(child, signum)

    def _thaw(self) -> None:
        """Resume what :meth:`_freeze` stopped. Nothing else resumes it: one found running was resumed
        by a process the harness does not see (outside the trainer's tree) while the harness
        evaluated, so all are killed and the trial fails (:class:`Unfrozen`)."""
        if running := [p for p in self.frozen if not _stopped(p)]:
            self._kill(self.frozen)
            raise Unfrozen(
                f"{len(running)} of the trainer's {len(self.frozen)} stopped process(es) ran again before the harness "
                f"resumed them: a process outside the trainer's reach resumed them while the harness evaluated or "
                f"checkpointed; they were killed, as nothing of a submission may run then")
        if self.process.pid is not None:
            _signal_group(self.process.pid, signal.SIGCONT)
            for child in self.frozen - {self.process.pid}:
                _signal(child, signal.SIGCONT)


def forked_for_it(trainer: int) -> list[int]:
    """Processes the forkserver forked besides the trainer, and every process below them. The
    trainer can ask the harness's forkserver for a child of its own (its listener is a socket file):
    that child is the forkserver's, outside the trainer's tree, and would run through evaluations
    and outlive the trial. No other child of it runs while a trial does, so all of them are frozen
    and killed with the trainer."""
    server = server_pid()
    if server is None:
        return []
    strays = [child for child in children_of(server) if child != trainer]
    return strays + [below for stray in strays for below in descendants(stray)]


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc; none elsewhere, and none once it is gone). The
    kernel answers ESRCH (ProcessLookupError) to a listing of a process that exits meanwhile: an
    honest helper process ending while the harness stopped the trainer's tree for an evaluation
    failed the trial as the harness's."""
    found = []
    try:
        listing = list(Path(f"/proc/{pid}/task").glob("*/children"))
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return []
    for children in listing:
        try:
            found += [int(child) for child in children.read_text().split()]
        except OSError:  # gone meanwhile
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux: the kernel's children lists; none elsewhere). The trainer
    is a child subreaper (harness/core/trainer.py), so a process whose parent exited (a double
    fork) is still below it, whatever session or group it moved to."""
    found, todo = [], [pid]
    while todo:
        pids = children_of(todo.pop())
        found += pids
        todo += pids
    return found


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _signal_group(pid: int, signum: int) -> bool:
    """Send ``signum`` to the trainer's process group (to the trainer alone before it made one)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


#: thread states (``/proc/PID/task/TID/stat``) that run none of the submission's code: stopped, traced,
#: ended, and uninterruptible sleep (D: a read from a slow disk, a driver call), which leaves the kernel
#: only through the pending SIGSTOP. An honest thread in D for seconds is not a thread that will not stop.
STOPPED_STATES = frozenset("TtZXD")


def _stopped(pid: int) -> bool:
    """Whether no thread of ``pid`` can run the submission's code (:data:`STOPPED_STATES`; Linux /proc,
    elsewhere assumed after the signal)."""
    return all(state in STOPPED_STATES for state in _thread_states(pid))


def _thread_states(pid: int) -> list[str]:
    """The state letter of every thread of ``pid`` (none once it is gone, or off Linux). A thread that
    ended while being looked at is skipped, not taken for the whole process."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return []  # the process is gone
    states = []
    for task in tasks:
        try:
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return states
