"""The trainer process of ``isolation=process``: the model, the submission and the training batches.

Started by the harness (:mod:`harness.core.isolation`) from a fresh interpreter that has torch
imported and nothing else of the harness's: it imports the submission's module first, while no
workload is in the process (:func:`import_alone`), then receives its own copy of a training-only
workload (built from a config with every target and calibration note removed, holding the
training data alone: :meth:`harness.workload.Workload.load_training_data`), and builds the model,
the submission and the batch stream exactly as in-process (:mod:`harness.core.parts`), so the
trajectory is the same. It is a child subreaper (:func:`become_subreaper`): whatever the
submission starts stays below it, for the harness to stop and kill.
It has no clock of the harness's. It runs steps (:class:`harness.core.steps.StepRunner`) when
told to, until the step it was told or until the harness sets the stop flag in shared memory,
then copies the weights into the harness's shared tensors and says where it stopped.

Messages to the harness are JSON, and state (a checkpoint's) goes as ``torch.save`` bytes that
the harness reads with ``weights_only=True``: nothing this process sends can run code in the
harness. Messages from the harness are trusted (it started this process).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import math
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from harness.config.registry import submission_class, workload_class
from harness.core.checkpoint import capture_rng
from harness.core.interrupts import UserInterrupts
from harness.core.memory import MemoryMeter
from harness.core.parts import build_submission, model_and_info, training_stream
from harness.core.sandbox import confine
from harness.core.steps import StepRunner, Stop
from harness.exits import end_with
from harness.routing import routing_report
from harness.specs import WorkloadConfig
from harness.submission import Submission
from harness.untraceable import give_up_tracing
from harness.workload import Workload

PAGE = 4096  # bytes of a memory page (at most: reading one byte every PAGE touches each one)

#: indices of the shared control array: the harness sets STOP; the trainer counts steps in STEP
STOP, STEP = 0, 1


def redacted(workload: dict[str, Any]) -> dict[str, Any]:
    """A workload config (plain) without what the trainer must not know: every size's and
    variant's target and test target (NaN / None) and calibration notes (which quote them)."""
    out = json.loads(json.dumps(workload))
    for size in out.get("sizes", {}).values():
        size.update(target=math.nan, test_target=None, calibration={})
    for variant in out.get("variants", {}).values():
        for size in variant.get("sizes", {}).values():
            for key in ("target", "test_target", "calibration"):
                size.pop(key, None)
            size["target"] = math.nan  # a variant declares its own target; NaN here
    return out


def touch(value: Any, depth: int = 3) -> None:
    """Read every CPU tensor in ``value`` (nested in dicts, lists, tuples) once.

    The training data arrives as shared memory that this process has not mapped yet: the first
    read of each page is a page fault. Taken here, at set-up, they are not charged; else the
    first epoch's steps would pay for them (~4 % of a short fashion_mnist trial).
    """
    if isinstance(value, torch.Tensor):
        if value.device.type == "cpu" and value.numel():
            everything = torch.empty(0, dtype=torch.uint8).set_(value.untyped_storage())  # its bytes
            everything[::PAGE].sum()  # one byte of each page: a sum of the whole took 3.6 s for CIFAR-10
    elif depth and isinstance(value, dict):
        for item in value.values():
            touch(item, depth - 1)
    elif depth and isinstance(value, (list, tuple)):
        for item in value:
            touch(item, depth - 1)


def send(conn: Connection, message: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(message).encode())


PR_SET_CHILD_SUBREAPER = 36  # prctl(2): orphaned descendants are re-parented to this process, not to init


def become_subreaper() -> None:
    """Keep every process the submission starts below this one (Linux; elsewhere nothing): one whose
    parent exits (a double fork, with or without a session of its own) is re-parented here instead
    of to init, so the harness finds it to stop while it evaluates and to kill at the trial's end."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def threads_and_children() -> tuple[set[int], set[int]]:
    """The ids of this process's threads and of its child processes (Linux /proc; empty elsewhere)."""
    threads, children = set(), set()
    with contextlib.suppress(OSError):
        for task in Path("/proc/self/task").iterdir():
            threads.add(int(task.name))
            with contextlib.suppress(OSError):
                children.update(int(pid) for pid in (task / "children").read_text().split())
    return threads, children


def import_alone(name: str, source: str | None) -> tuple[type[Submission], str | None]:
    """The submission's class, imported before the workload is in this process, and what its import
    left running, if anything (a refusal: the trial fails in ``submission.__init__``).

    Importing a module runs its top level, and the harness does not time it: work done there is
    free. It finds no workload here (the data arrives after), and a thread or process it started
    could wait for one and train while the harness sets up, so those are refused.
    """
    threads, children = threads_and_children()
    cls = submission_class(name, source)
    new_threads, new_children = (now - before for now, before in zip(threads_and_children(), (threads, children)))
    if not (new_threads or new_children):
        return cls, None
    names = []
    for tid in sorted(new_threads):
        with contextlib.suppress(OSError):
            names.append(Path(f"/proc/self/task/{tid}/comm").read_text().strip())
    left = ", ".join(filter(None, [f"{len(new_threads)} thread(s) ({', '.join(names)})" if new_threads else "",
                                   f"{len(new_children)} process(es)" if new_children else ""]))
    return cls, (f"importing the submission's module ({source or name}) left {left} running. A module's top level "
                 f"runs before the harness times anything, so what it starts would run off the clock: start threads "
                 f"and processes in __init__ (charged) instead.")


def warm_up_runtime(device: torch.device) -> None:
    """Start the threads torch starts on its first use (its CPU thread pool; on a GPU, the CUDA
    context's), so that a count of this process's threads before and after the submission's import
    sees only what the import started."""
    torch.ones(1 << 20).sum()
    if device.type == "cuda":
        torch.empty(1, device=device)


def serve(conn: Connection, control: Any, setup: dict[str, Any]) -> None:
    """The trainer process's main function: set up, say ``ready``, then answer commands."""
    give_up_tracing()  # the submission's code runs here: it may not reach into the harness's memory
    os.setpgid(0, 0)  # its own process group: the harness stops and kills it with everything it starts
    become_subreaper()
    try:  # before any thread starts (Landlock confines the calling thread) and the submission is imported
        confine(setup["sandbox"])
    except BaseException:
        send(conn, {"event": "failed", "error": traceback.format_exc(), "error_in": "harness"})
        return
    end_with(int(setup["harness_pid"]), group=True)  # a harness killed (kill -9) takes its trainer along
    sys.argv[:] = ["optbench-trainer"]  # multiprocessing copied the harness's command line, overrides and all
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the harness's to handle
    torch.set_num_threads(int(setup["threads"]))
    warm_up_runtime(torch.device(setup["device"]))
    try:
        session = Session(conn, control, setup)
    except BaseException:
        send(conn, {"event": "failed", "error": traceback.format_exc(), "error_in": "harness"})
        return
    send(conn, {"event": "ready"})
    session.serve()


class Session:
    """One trial's side of the trainer: what the commands act on."""

    def __init__(self, conn: Connection, control: Any, setup: dict[str, Any]):
        self.conn, self.control, self.setup = conn, control, setup
        self.device = torch.device(setup["device"])
        self.seed = int(setup["seed"])
        config = OmegaConf.merge(OmegaConf.structured(WorkloadConfig), setup["workload"])
        workload_class(config.name, config.get("source"))  # imported before the workload is unpickled
        #: a refusal of what the submission's import started (:func:`import_alone`), reported at construct
        self.refused: str | None
        self.submission_cls, self.refused = import_alone(setup["submission"], setup["submission_source"])
        # before the workload is here: Hparams.__post_init__ is the submission's code, and run after the
        # data arrived it could train a model of its own off the clock (a red team's 4.4x "speed-up")
        self.hparams = self.submission_cls.Hparams.from_mapping(
            setup["hparams"], submission=setup["submission"], config=setup["config_from"])
        #: a copy of the harness's training-only workload (built from ``config``), its tensors in shared memory
        self.workload: Workload = conn.recv()
        touch(vars(self.workload))
        self.meter = MemoryMeter(self.device)
        with self.meter.excluded():  # the model counts in the peak, its warm-up's temporaries do not
            self.model, self.info = model_and_info(self.workload, self.hparams.batch_size, self.seed)
        self.shared: dict[str, torch.Tensor] = conn.recv()  # the harness's model's tensors, in shared memory
        self.submission: Submission | None = None
        self.steps: StepRunner | None = None
        self.interrupts = UserInterrupts()  # no signal reaches here: every exit of submission code is a failure

    def serve(self) -> None:
        commands = {"construct": self.construct, "weights": self.weights, "restore": self.restore, "run": self.run,
                    "state": self.state, "reports": self.reports}
        while True:
            try:
                command, argument = self.conn.recv()
            except EOFError:  # the harness is gone
                return
            if command == "close":
                return
            try:
                commands[command](argument)
            except BaseException:  # not submission code's (that is caught where it runs): the harness's
                send(self.conn, {"event": "failed", "error": traceback.format_exc(), "error_in": "harness"})

    def construct(self, _: Any) -> None:
        if self.refused is not None:
            send(self.conn, {"event": "stopped", **Stop(0, "failed", error=self.refused,
                                                         error_in="submission.__init__").as_dict()})
            return
        try:
            self.submission = build_submission(self.submission_cls, self.model, self.hparams, self.info, self.seed)
            if self.device.type == "cuda":  # what __init__ queued there is construction's (the harness's clock runs
                torch.cuda.synchronize(self.device)  # until this reply), and so is an error its kernels raise here
        except BaseException:
            send(self.conn, {"event": "stopped", **Stop(0, "failed", error=traceback.format_exc(),
                                                         error_in="submission.__init__").as_dict()})
            return
        batches, compute_loss = training_stream(self.workload, self.model, self.hparams.batch_size, self.seed)
        self.steps = StepRunner(self.submission, batches, compute_loss, self.device, int(self.setup["check_every"]),
                                self.interrupts)
        send(self.conn, {"event": "constructed"})

    def weights(self, _: Any) -> None:
        """The model's weights into the harness's tensors (after construction: the harness checks them)."""
        self._share_weights()
        send(self.conn, {"event": "weights"})

    def _share_weights(self) -> None:
        with torch.no_grad():
            for name, tensor in self.model.state_dict().items():
                self.shared[name].copy_(tensor)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def restore(self, resume: dict[str, Any]) -> None:
        assert self.steps is not None
        self.steps.restore(self.model, resume, loaded=lambda: send(self.conn, {"event": "loaded"}))
        send(self.conn, {"event": "restored"})

    def run(self, stop_step: float) -> None:
        """Steps until ``stop_step`` or the stop flag, then the weights into the harness's tensors."""
        assert self.steps is not None
        control = self.control

        def due(step: int) -> bool:
            control[STEP] = step
            return control[STOP] != 0

        stop = self.steps.run(stop_step, due)
        if stop.status == "due":
            self._share_weights()
        send(self.conn, {"event": "stopped", **stop.as_dict()})

    def state(self, _: Any) -> None:
        assert self.submission is not None
        buffer = io.BytesIO()
        torch.save({"model": self.model.state_dict(), "submission": self.submission.state_dict(),
                    "rng": capture_rng(self.device)}, buffer)
        self.conn.send_bytes(buffer.getvalue())

    def reports(self, _: Any) -> None:
        routing = routing_report(self.model, self.submission) if self.submission is not None else None
        send(self.conn, {"event": "reports", "memory": self.meter.report(self.model, self.submission),
                         "routing": routing})
