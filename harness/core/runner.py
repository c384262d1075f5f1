"""One trial: build, train until the target or the budget, record everything.

Read top to bottom: :func:`run_here` validates the config and finds the record folder;
:func:`_train` is the loop. A trainer runs the charged steps between evaluations, in this process
or, with ``isolation=process``, in a trainer process timed from here (:mod:`harness.core.inprocess`,
:mod:`harness.core.isolation`); evaluating, deciding and recording are this module's, the same in both.
Timing rules (docs/decisions.md): construction and evaluation are
not charged; data production, forward, backward, update and ``prepare_for_eval`` are; the
budget is checked after every step; a non-finite loss ends the trial as ``diverged``; an
exception in submission code ends it as ``failed`` with the traceback in the record (an error of
the harness too, as ``error_in: harness``, which a rerun retries). One process runs a trial at a
time (:mod:`harness.core.trial_lock`); a checkpoint is loaded without unpickling code. Every
evaluation measures the validation split (it decides the outcome); the test split is measured
at the last evaluation only (reached, out of budget, out of steps, pruned). A sweep trial stops
as ``pruned`` once it can change no score or rank (:mod:`harness.core.pruning`). The record's
``timing`` audits the wall time: charged + evaluation + checkpoint + other = loop wall time.
"""

from __future__ import annotations

import contextlib
import json
import math
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from time import monotonic  # bound here: a submission that replaces time.monotonic does not reach it (core/clock.py)
from typing import Any

import torch
from omegaconf import DictConfig

from harness.config.code_files import code_files, code_packages, code_paths
from harness.config.compose import to_plain, validate_trial_config
from harness.config.described import described_submission
from harness.config.plugins import module_file, source_hash
from harness.config.registry import effective_spec, submission_class, workload_class
from harness.core.checkpoint import UnloadableState, load_checkpoint, remove_checkpoint, save_checkpoint
from harness.core.compile import compile_identity, compile_setting, trial_compile_setting
from harness.core.environment import attempt_context, describe_device, git_revision, package_versions
from harness.core.evaluation import EvaluationFailed, evaluate
from harness.core.inprocess import InProcessTrainer
from harness.core.interrupts import SignalHandlerError, UserInterrupts, user_interrupts
from harness.core.isolation import ProcessTrainer, check_isolation
from harness.core.parts import check_model_builds, probe_training
from harness.core.precision import precision_identity, precision_setting, size_precision
from harness.core.progress import Progress
from harness.core.pruning import Pruner
from harness.core.records import SCHEMA_VERSION, TrialRecord, failed_part, harness_failed, made_otherwise
from harness.core.sandbox import check_setting as check_sandbox
from harness.core.sandbox import data_reads
from harness.core.sandbox import record_entry as sandbox_entry
from harness.core.source_audit import audit_file
from harness.core.steps import Stop, SubmissionFault, Trainer, next_stop_step
from harness.core.submission_names import refuse_another_submission
from harness.core.sweep_file import RUN_AGAIN, SWEEP_FILE
from harness.core.team import current_team, process_identity, processes
from harness.core.trial_lock import TrialLock
from harness.errors import NOT_THE_SUBMISSIONS, UserError, WorkloadFailed
from harness.identity import better, differences, digest, utc_timestamp
from harness.paths import cache_write_error, ensure_writable_folder, remove_if_empty
from harness.submission import Submission, TrainingHparams
from harness.workload import (
    Workload,
    check_targets,
    target_data_digest,
    target_out_of_range,
    workload_identity,
)


class RecordWriteError(UserError):
    """The record could not be written (full disk, quota, permissions): exit 1, the trial stays resumable."""

    exit_code = 1


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name} was asked for, but PyTorch sees no CUDA device here. Use device=cpu.")
    return device


#: torch's thread count when this process started: what a trial with ``threads`` unset runs with, even
#: after a trial (or ``optbench info``) of the same process (an inline sweep, calibrate's runs) set another
DEFAULT_THREADS = torch.get_num_threads()


def use_threads(threads: int | None) -> None:
    """Set torch's CPU threads to ``threads``, or when unset (0/None) back to this process's default."""
    torch.set_num_threads(int(threads) if threads else DEFAULT_THREADS)


_LOADED: OrderedDict[str, Workload] = OrderedDict()  # this process's loaded workloads, newest last
_KEEP_LOADED = 2


def loaded(workload: Workload, cfg: DictConfig) -> Workload:
    """``workload`` with its data loaded, or an identical one this process loaded for an earlier trial.

    Sweeps run many trials of one workload in one process (``launcher=inline``, the main job):
    reading and decoding the same data for each (CIFAR-10's cache alone takes ~1 s) would cost
    more than short trials train. A trial only reads a workload's data and builds fresh models
    and batch streams from it, so sharing is safe; the two most recent are kept.
    """
    key = json.dumps([to_plain(cfg.workload), str(workload.device), cfg.data_dir], sort_keys=True)
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    load_data(workload)
    _LOADED[key] = workload
    while len(_LOADED) > _KEEP_LOADED:
        _LOADED.popitem(last=False)
    return workload


def built_workload(cfg: DictConfig, device: torch.device) -> Workload:
    """The trial's workload object (its data not loaded yet); what its constructor raises, said as
    the workload's (:class:`WorkloadFailed`), not as a traceback of the harness's."""
    cls = workload_class(cfg.workload.name, cfg.workload.get("source"))
    try:
        return cls(cfg.workload, device, cfg.get("data_dir"))
    except UserError:
        raise
    except Exception as error:
        raise WorkloadFailed.raised_in(f"{cls.__name__}.__init__()", error) from None


def load_data(workload: Workload) -> None:
    """``workload.load()``; what it raises (a missing file, a bug), said as the workload's."""
    try:
        with data_reads():  # the files it reads: no trainer process may (harness/core/sandbox.py)
            workload.load()
    except UserError:
        raise
    except Exception as error:
        if isinstance(error, OSError) and (said := cache_write_error(error)):  # a read-only or full cache
            raise UserError(said) from None
        raise WorkloadFailed.raised_in(f"{type(workload).__name__}.load()", error) from None


def data_digest_now(cfg: DictConfig) -> str | None:
    """The :meth:`~harness.workload.Workload.data_digest` of the examples a trial of ``cfg`` would read
    here now, read on the CPU (a digest does not depend on the device, and a SLURM login node has
    none). The data are not kept: a tune process that launches jobs elsewhere holds no dataset while
    it waits for them."""
    workload = built_workload(cfg, torch.device("cpu"))
    load_data(workload)
    return workload.data_digest()


def trial_identity(
    cfg: DictConfig, workload: Workload, hparams: TrainingHparams, device: torch.device, revision: int = 1
) -> dict[str, Any]:
    """Everything that determines a trial's outcome; its hash names the record folder.

    A submission's ``revision`` joins it only once bumped past 1, so the hashes of records made
    before revisions existed stay valid for submissions that never changed.
    """
    return {
        **({"submission_revision": revision} if revision != 1 else {}),
        **precision_identity(workload),  # mixed precision: only when not fp32, so old hashes hold
        **compile_identity(trial_compile_setting(cfg), cfg.charge_compile, workload, device),  # compile: when on
        **process_identity(cfg, hparams.batch_size),  # data parallel: only for nproc > 1
        **workload_identity(workload),  # the trial's size alone: its spec, without calibration notes
        "submission": cfg.submission.name,
        **({"submission_source": cfg.submission.source} if cfg.submission.get("source") else {}),
        **({"workload_source": cfg.workload.source} if cfg.workload.get("source") else {}),
        "hparams": hparams.as_dict(),
        "seed": int(cfg.seed),
        "max_runtime_s": cfg.max_runtime_s,
        "max_steps": cfg.max_steps,
        "device_type": device.type,
    }


def check_trial_settings(cfg: DictConfig, batch_size: int) -> None:
    """The settings a trial's identity checks (``compile``, the size's ``precision``, ``nproc`` against
    the batch size) and ``sandbox``, checked without loading data or starting a process.

    A sweep checks every trial with it when it is planned, and a data-parallel trial before its
    ranks start: a bad setting is one clear error before anything is written, not a failure per
    trial (or per rank) that a rerun repeats."""
    compile_setting(cfg.compile)
    spec = effective_spec(cfg)
    check_targets(spec, str(cfg.workload.name), str(cfg.workload.size))
    precision_setting(spec.precision, str(cfg.workload.name), str(cfg.workload.size))
    process_identity(cfg, batch_size)
    if cfg.isolation == "process":
        check_sandbox(cfg.sandbox)


def config_hash(identity: dict[str, Any]) -> str:
    return digest(identity)


def record_for(cfg: DictConfig, identity: dict[str, Any]) -> TrialRecord:
    """The trial's record folder: ``record_dir`` when a sweep assigned one, else named by the hash."""
    if cfg.record_dir:
        record = TrialRecord(Path(cfg.record_dir))
        sweep = record.dir.parent.parent / SWEEP_FILE
        if cfg.ruleset == "single" and sweep.exists():  # a user's command, not the sweep's job (its plan sets these)
            raise UserError(f"record_dir={cfg.record_dir} is a trial of the sweep in {sweep.parent}: a record written "
                            f"there by optbench trial would not be the sweep's (ruleset single, no study), and status "
                            f"and score would refuse it. {RUN_AGAIN}")
        existing = record.manifest()
        if existing and existing.get("config_hash") != config_hash(identity):
            # what differs: the recorded identity where the manifest has it, else the whole config
            recorded, ours = ((existing["identity"], identity) if isinstance(existing.get("identity"), dict)
                              else (existing.get("config") or {}, to_plain(cfg)))
            raise UserError(
                f"{record.dir} holds a trial of another configuration (config hash "
                f"{existing.get('config_hash')}, this one {config_hash(identity)}; recorded -> this one: "
                f"{differences(recorded, ours) or 'unknown'}); it is left untouched. "
                f"Use another record_dir or results folder.")
        return record
    folder = Path(cfg.results) / f"{identity['workload']}-{identity['size']}" / cfg.submission.name
    return TrialRecord(folder / f"seed{cfg.seed}-{config_hash(identity)}")


def check_before_ranks(cfg: DictConfig, as_a_rank: bool) -> None:
    """Before the ranks of a data-parallel trial start: what every rank would refuse (isolation, a
    device this machine lacks, a bad setting), refused once here. ``as_a_rank``: this process becomes
    a rank, and runs the submission (its real class); a launcher of the ranks does not (described)."""
    if cfg.isolation == "process":  # (core/ranks.py, core/distributed.py)
        check_isolation(None, processes(cfg))  # refused before any worker starts
    resolve_device(str(cfg.device))
    check_trial_settings(cfg, _hparams(cfg, as_a_rank).batch_size)


def run_here(cfg: DictConfig) -> dict[str, Any]:
    """Run (or, when already finished, look up) the trial described by ``cfg`` in this process (one
    process, or rank 0 of a data-parallel trial: harness.core.trial starts the ranks); its summary."""
    validate_trial_config(cfg)
    use_threads(cfg.threads)  # recorded in the manifest's device block
    device = resolve_device(str(cfg.device))
    submission_cls = described_submission(cfg.submission.name, cfg.submission.get("source"))  # not imported here
    hparams = _hparams(cfg)
    workload = built_workload(cfg, device)
    workload.check_batch_size(hparams.batch_size)
    check_targets(workload.spec, workload.name, workload.size)
    if cfg.isolation == "process":
        check_isolation(workload, processes(cfg),
                        compile_identity(trial_compile_setting(cfg), cfg.charge_compile, workload, device))
        check_sandbox(cfg.sandbox)
    budget = float(cfg.max_runtime_s or workload.max_runtime_s)

    identity = trial_identity(cfg, workload, hparams, device, submission_cls.revision)
    record = record_for(cfg, identity)
    if not cfg.record_dir:  # a lone trial; a sweep's trials were checked when it was planned
        refuse_another_submission(record.dir.parent, to_plain(cfg))
    label = f"{workload.label}/{workload.size} {cfg.submission.name} seed {cfg.seed}"
    progress = Progress(
        label, workload.metric, workload.target, workload.higher_is_better, budget,
        interval_s=cfg.progress_interval_s, enabled=cfg.progress,
    )
    if record.finished() and cfg.rerun:
        kept = record.set_aside()
        progress.say(f"rerun=true: the finished record is kept beside as {', '.join(kept)}; running it again")
    elif record.finished():
        manifest = record.manifest()  # made on the examples there now? (read once per process: loaded())
        data = loaded(workload, cfg).data_digest() if manifest.get("data_sha256") else None
        if changed := made_otherwise(manifest, cfg, submission_cls, type(workload), data=data):
            raise UserError(f"{record.dir} finished with {changed}. Its result is not returned as this command's. "
                            f"Run it again as asked now by adding rerun=true (the old record is kept beside it), or "
                            f"restore the code, settings and data it was made with.")
        progress.say("already finished, not run again (rerun=true runs it again)")
        return {**record.manifest()["summary"], "cached": True}
    if harness_failed(record.manifest()):
        progress.say(f"the last attempt ended by a failure of the {failed_part(record.manifest())}, not of the "
                     f"submission: running it again")

    where = ("record_dir", cfg.record_dir) if cfg.record_dir else ("results", cfg.results)  # the setting to fix
    made = ensure_writable_folder(record.dir, *where)  # before any data is loaded
    try:
        with TrialLock(record.dir):
            return _run_locked(cfg, identity, record, workload, submission_cls, hparams, device, budget, progress)
    except UserError:  # refused before the record began (the workload's data): no empty folder left
        remove_if_empty(made)
        raise


def _hparams(cfg: DictConfig, real: bool = False) -> TrainingHparams:
    """The trial's hyperparameters, checked by its submission's ``Hparams``: the class's own (``real``:
    where the submission runs, this process imports it), else as described (harness/config/described.py)."""
    which = submission_class if real else described_submission
    hparams_cls = which(cfg.submission.name, cfg.submission.get("source")).Hparams
    return hparams_cls.from_mapping(cfg.submission.hparams, submission=cfg.submission.name,
                                    config=cfg.submission.get("config_from"))


@contextlib.contextmanager
def _writing(record: TrialRecord, what: str) -> Iterator[None]:
    """A failed write of the record's beginning (a full disk, permissions, an immutable file) said as
    one paragraph naming the folder: what was there is kept (every write is atomic), and the same
    command retries it once the folder can be written."""
    try:
        yield
    except OSError as error:
        raise RecordWriteError(f"Could not {what} the trial's record in {record.dir} ({error.strerror or error}"
                               f"{': ' + str(error.filename) if error.filename else ''}). What it held is kept: fix "
                               f"the folder (space, permissions), then run the same command again.") from None


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of writes that a killed process never finished (only ever ours: we hold the lock)."""
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def _run_locked(cfg: DictConfig, identity: dict[str, Any], record: TrialRecord, workload: Workload,
                submission_cls: type[Submission], hparams: TrainingHparams, device: torch.device, budget: float,
                progress: Progress) -> dict[str, Any]:
    """:func:`run_here` once this process holds the trial's lock."""
    if record.finished():  # another process finished it between our first look and the lock
        return {**record.manifest()["summary"], "cached": True}
    _remove_stale_temporaries(record.dir)
    setup_started = monotonic()
    workload = loaded(workload, cfg)  # not charged: data reading and the move to the device
    resume = load_checkpoint(record.dir, config_hash(identity), say=progress.say)
    if resume is not None and (changed := made_otherwise(record.manifest() or {}, cfg, submission_cls,
                                                         type(workload), data=workload.data_digest(),
                                                         device=describe_device(device))):
        if not cfg.rerun:  # the checkpoint's steps were the old code's: one trial would run two algorithms
            raise UserError(f"{record.dir} was started with {changed}. Resuming its checkpoint (step "
                            f"{resume['step']}) would make one trial of both. Restore the code, settings and data "
                            f"it was started with, or run it on the hardware it was started on (on SLURM: a "
                            f"partition or --constraint of one model), to resume it; or add rerun=true to start it "
                            f"over here (its events so far are kept beside).")
        remove_checkpoint(record.dir)
        resume = None
        progress.say(f"rerun=true: started with {changed}; starting it over from step 0")
    if resume is None:
        if cfg.workload.get("source"):  # a workload of the user's own: its stream and loss tried first
            probe_training(workload, hparams.batch_size, int(cfg.seed), progress.say)
        else:  # a built-in one: its model, as the command's model options ask
            check_model_builds(workload, int(cfg.seed))
        manifest = _manifest(cfg, identity, workload, submission_cls, hparams, device, budget, record)
        with _writing(record, "start"):
            record.start({**manifest, "attempts": [attempt_context()]})
        progress.start(f"{workload.num_train_examples} training examples from {workload.describe_data()}")
    else:
        with _writing(record, "resume"):
            record.resume(resume["step"], attempt_context())
        progress.start(f"resuming from the checkpoint at step {resume['step']} "
                       f"({resume['submission_s']:.1f}s of submission time already charged)")
    if note := target_out_of_range(workload):
        progress.say(note)
    device_class = "gpu" if device.type == "cuda" else device.type
    if workload.spec.device_class != device_class:
        progress.say(f"note: the budget of size '{workload.size}' was measured on {workload.spec.device_class}, "
                     f"this trial runs on {device_class}; compare times only within one device class")
    if (calibrated := target_data_digest(workload)) and (data := workload.data_digest()) and calibrated != data:
        progress.say(f"note: the target {workload.target:g} of size '{workload.size}' was calibrated on other "
                     f"examples (data_sha256 {calibrated[:12]}) than this trial reads ({data[:12]}, "
                     f"{workload.describe_data()}): a time to it is not a calibrated one; `optbench calibrate` on "
                     f"these data sets a target for them")
    with user_interrupts() as interrupts:
        try:
            summary = _train(cfg, workload, submission_cls, hparams, device, budget, record, progress, resume,
                             setup_started, interrupts)
        except (KeyboardInterrupt, SignalHandlerError):
            progress.say(f"interrupted; the record so far is kept in {record.dir} (run the same command to resume)")
            raise
        except SubmissionFault as fault:  # before the loop (the trainer's start, a resume): the submission's
            summary = _summary(record, workload, budget, status="failed", steps=0, submission_s=0.0, best=None,
                               error=str(fault), error_in=fault.error_in)
        except Exception:  # a bug outside submission code before the loop: still end the record honestly
            summary = _summary(record, workload, budget, status="failed", steps=0, submission_s=0.0,
                               best=None, error=traceback.format_exc(), error_in="harness")
    try:
        record.finish(summary)
    except OSError as error:
        raise RecordWriteError(f"Could not write the end of the trial's record in {record.dir} "
                               f"({error.strerror or error}). The trial stays unfinished: free the space or "
                               f"fix the folder, then run the same command again to resume it.") from None
    if summary.get("error_in") not in NOT_THE_SUBMISSIONS:  # such a failure is retried from its last checkpoint
        remove_checkpoint(record.dir)
    progress.end(summary)
    return summary


def _train(
    cfg: DictConfig,
    workload: Workload,
    submission_cls: type[Submission],
    hparams: TrainingHparams,
    device: torch.device,
    budget: float,
    record: TrialRecord,
    progress: Progress,
    resume: dict[str, Any] | None = None,
    setup_started: float | None = None,
    interrupts: UserInterrupts | None = None,
) -> dict[str, Any]:
    """The training loop. Returns the summary; every evaluation is already in the record.

    The trainer (:func:`_trainer`: in this process, or a trainer process with ``isolation=process``)
    runs the charged steps up to each evaluation; this loop evaluates, decides and records, the
    same in both modes. With ``resume`` (a checkpoint), the model, submission, RNGs, counters and
    clock are put back and the batch stream is replayed up to the checkpoint's step, so the run
    continues exactly where the checkpoint was taken; the time lost after it is never charged.

    Anything submission code raises — ``SystemExit`` and a ``KeyboardInterrupt`` it raises
    itself included — ends the trial as ``failed`` in that part of the submission; only a real
    interrupt (a signal, see :func:`user_interrupts`) goes up. An exception of the harness inside
    the loop (a record or checkpoint write on a full disk, a workload bug) ends it as ``failed``
    with ``error_in: harness``, keeping the steps, time and best value reached so far.
    """
    interrupts = interrupts or UserInterrupts()
    wall_start = monotonic()
    trainer = _trainer(cfg, workload, submission_cls, hparams, device, progress, interrupts, resume is not None)
    try:
        return _loop(cfg, trainer, workload, budget, record, progress, resume, setup_started, wall_start)
    finally:
        trainer.close()


def _trainer(cfg: DictConfig, workload: Workload, submission_cls: type[Submission], hparams: TrainingHparams,
             device: torch.device, progress: Progress, interrupts: UserInterrupts, resuming: bool = False) -> Trainer:
    """The trial's trainer in the mode ``isolation`` asks for (docs/decisions.md). With ``charge_compile``,
    only a trial's first attempt compiles under the clock: a resumed one's checkpoint has charged
    the compilation already, and compiles again before the clock (a preempted trial is not charged twice)."""
    # Reading the loss on CUDA syncs the device: it is checked every few steps there.
    check_every = cfg.divergence_check_every or (25 if device.type == "cuda" else 1)
    if cfg.isolation == "process":
        return ProcessTrainer(cfg, workload, submission_cls, hparams, device, check_every, progress, interrupts)
    submission_cls = submission_class(cfg.submission.name, cfg.submission.get("source"))  # run here: imported,
    hparams = _hparams(cfg, real=True)  # and handed its own Hparams (methods, properties), not a stand-in's
    return InProcessTrainer(workload, submission_cls, hparams, int(cfg.seed), device, check_every, progress,
                            interrupts, compile_setting=trial_compile_setting(cfg),
                            charge_compile=bool(cfg.charge_compile) and not resuming)


def _loop(cfg: DictConfig, trainer: Trainer, workload: Workload, budget: float, record: TrialRecord,
          progress: Progress, resume: dict[str, Any] | None, setup_started: float | None,
          wall_start: float) -> dict[str, Any]:
    """:func:`_train` once the trainer exists: construction, then runs of steps and evaluations."""
    spec, clock, model = workload.spec, trainer.clock, trainer.model
    audit = {"setup_s": 0.0, "evaluation_s": 0.0, "checkpoint_s": 0.0, "construction_s": 0.0, "record_s": 0.0}
    step, best = 0, None

    def done(**outcome: Any) -> dict[str, Any]:
        try:
            memory, routing = trainer.reports()
        except SubmissionFault as fault:  # found running while stopped: what ran since is not believed
            memory, routing = None, None
            outcome = {**{key: outcome[key] for key in ("steps", "submission_s", "best")}, "status": "failed",
                       "error": str(fault), "error_in": fault.error_in}
        return _summary(record, workload, budget, memory=memory, routing=routing,
                        timing=_timing(audit, clock.elapsed, monotonic() - wall_start), **outcome)

    def ended(stop: Stop) -> dict[str, Any]:
        if stop.status == "failed":
            return done(status="failed", steps=stop.step, submission_s=clock.elapsed, best=best, error=stop.error,
                        error_in=stop.error_in)
        return done(status="diverged", steps=stop.step, submission_s=clock.elapsed, best=best)

    # ---- construction: the model and the data are not charged; the submission's own is (optimizer state)
    failure = trainer.construct()
    if failure is not None:
        return ended(failure)
    audit["construction_s"] = clock.elapsed  # charged; outside the loop's wall time
    next_eval_s = spec.eval_period_s or math.inf
    wall_offset = 0.0
    if resume is not None:
        clock.restore(resume["submission_s"])  # its construction was charged in the first attempt
        trainer.restore(resume)  # charges the submission's load_state_dict
        step, best, next_eval_s = resume["step"], resume["best"], resume["next_eval_s"]
        wall_offset = resume["wall_s"]
        audit.update(resume.get("audit", {}))
    identity_hash = record.manifest()["config_hash"]
    checkpoint_every = cfg.checkpoint_every_s
    last_checkpoint = monotonic()
    saved_once = False  # this attempt's first checkpoint is read back before it is written
    eval_every, eval_period = spec.eval_every_steps, spec.eval_period_s
    max_steps = cfg.max_steps or math.inf
    pruner = Pruner(record.dir, Path(cfg.prune_peers) if cfg.prune_peers else None) \
        if cfg.prune and cfg.study is not None else None
    if setup_started is not None:
        audit["setup_s"] += monotonic() - setup_started - audit["construction_s"] * (resume is None)  # data,
        # model; the submission's construction is charged (construction_s), except in a resumed attempt
        audit["setup_s"] -= trainer.compile_s  # torch.compile: its own entry, below
    audit["compile_s"] = audit.get("compile_s", 0.0) + trainer.compile_s  # torch.compile: every attempt's, uncharged
    wall_start = monotonic() - wall_offset
    progress.loop_started(clock.elapsed)

    # ---- the loop: the trainer runs the charged steps up to each evaluation
    try:
        while True:
            stop = trainer.run(next_stop_step(step, eval_every, max_steps), budget, next_eval_s)
            step, elapsed = stop.step, clock.elapsed
            if stop.status != "due":
                return ended(stop)

            evaluation_started = monotonic()
            with trainer.uncounted_memory():
                metrics = {"train/loss": stop.loss, **evaluate(workload, model, "validation")}
            value = metrics[f"validation/{workload.metric}"]
            within_budget = elapsed <= budget
            reached = within_budget and workload.reached(value)
            cap = pruner.cap(elapsed, step) if pruner is not None and not reached else None
            final = reached or not within_budget or step >= max_steps or cap is not None
            if final:  # the test split is reported once, for the weights the trial ends with
                with trainer.uncounted_memory():
                    metrics.update(evaluate(workload, model, "test"))
            audit["evaluation_s"] += monotonic() - evaluation_started
            if math.isfinite(value) and (best is None or better(value, best, workload.higher_is_better)):
                best = value
            record_started = monotonic()
            record.log({
                "event": "eval", "step": step, "submission_time_s": elapsed,
                "wall_time_s": record_started - wall_start, "metrics": metrics,
                "within_budget": within_budget, "reached": reached,
            })
            progress.evaluated(step, elapsed, value)
            audit["record_s"] += monotonic() - record_started  # a durable write: ms each on a busy disk
            if reached:
                return done(status="reached", steps=step, submission_s=elapsed, best=best,
                            time_to_target_s=elapsed, steps_to_target=step)
            if cap is not None:
                progress.say(f"pruned: {cap.reason}")
                return done(status="pruned", steps=step, submission_s=elapsed, best=best, pruned=cap.as_record())
            if final:
                return done(status="not_reached", steps=step, submission_s=elapsed, best=best,
                            stopped_by="budget" if not within_budget else "max_steps")
            next_eval_s = elapsed + (eval_period or math.inf)
            if checkpoint_every is not None and monotonic() - last_checkpoint >= checkpoint_every:
                checkpoint_started = monotonic()
                state = trainer.state()  # in process isolation: charged, the trainer runs to send it
                save_checkpoint(record.dir, {  # the clock is paused: writing it is not charged
                    "config_hash": identity_hash, "step": step, "best": best, "next_eval_s": next_eval_s,
                    "submission_s": clock.elapsed, "wall_s": monotonic() - wall_start, "audit": dict(audit),
                    **state,
                }, verify=not saved_once)  # the first one is read back: the submission's state must load
                saved_once = True
                last_checkpoint = monotonic()
                audit["checkpoint_s"] += last_checkpoint - checkpoint_started - (clock.elapsed - elapsed)
            current_team().go_on()  # data parallel: the other ranks waited, clocks paused, for this evaluation
    except UnloadableState as error:  # the submission's state_dict: no checkpoint of it could be resumed
        clock.pause()
        return done(status="failed", steps=step, submission_s=clock.elapsed, best=best,
                    error=f"{UnloadableState.__module__}.{UnloadableState.__name__}: {error}",
                    error_in="submission.state_dict")
    except SubmissionFault as fault:  # its processes ran while stopped (a checkpoint's hand-over found them)
        clock.pause()
        return done(status="failed", steps=step, submission_s=clock.elapsed, best=best, error=str(fault),
                    error_in=fault.error_in)
    except EvaluationFailed:  # the workload's bug: keep what was reached
        clock.pause()
        return done(status="failed", steps=step, submission_s=clock.elapsed, best=best,
                    error=traceback.format_exc(), error_in="workload.evaluate")
    except Exception:  # the harness's own failure (I/O): keep what was reached
        clock.pause()
        return done(status="failed", steps=step, submission_s=clock.elapsed, best=best,
                    error=traceback.format_exc(), error_in="harness")


def _timing(audit: dict[str, float], charged: float, wall: float) -> dict[str, float]:
    """Where the time went: charged (the submission's construction, then every step and
    preparation for evaluation) + evaluation + checkpoint + record + other = construction + wall.

    ``record`` is writing each evaluation's line (fsynced) and progress: timed apart, since a
    workload evaluated every few ms of training spends a large share of its wall time there, and
    left in ``other`` it read as unexplained. ``other`` is everything else inside the loop (the
    clock's own reads, the batches' hand-over between runs); ``setup_s`` (data loading and the
    model's construction, of every attempt) comes before the loop and is not part of ``wall_s``; so
    does ``compile_s`` (torch.compile's warm-up, :mod:`harness.core.compile`, never charged).
    ``clock_suspect`` is the harness's cross-check of its own clock (:func:`clock_suspect`).
    """
    other = (wall - (charged - audit["construction_s"]) - audit["evaluation_s"] - audit["checkpoint_s"]
             - audit.get("record_s", 0.0))
    timing = {"wall_s": wall, "submission_s": charged, **audit, "other_s": other}
    return {**timing, "clock_suspect": clock_suspect(timing)}


# The loop's own overhead (budget and divergence checks, progress, records) is ~1-2% of its wall
# time (scripts/bench_overhead.py: 1.015x a bare loop). Unexplained time above this share of it, and
# above this many seconds, means the charged time was made to shrink.
SUSPECT_SHARE, SUSPECT_SECONDS = 0.2, 1.0


def clock_suspect(timing: dict[str, float]) -> bool:
    """Whether the charged time is implausibly below the wall time the harness measured itself:
    the loop's wall time less evaluation and checkpoints, less what was charged, leaves more than
    ``SUSPECT_SHARE`` of it and ``SUSPECT_SECONDS`` unexplained. In-process, a submission can reach
    the clock (interpreter frames, the garbage collector); this is how the harness notices."""
    return timing["other_s"] > max(SUSPECT_SECONDS, SUSPECT_SHARE * timing["wall_s"])


def _summary(
    record: TrialRecord,
    workload: Workload,
    budget: float,
    *,
    status: str,
    steps: int,
    submission_s: float,
    best: float | None,
    time_to_target_s: float | None = None,
    steps_to_target: int | None = None,
    error: str | None = None,
    error_in: str | None = None,
    memory: dict[str, Any] | None = None,
    routing: dict[str, Any] | None = None,
    timing: dict[str, float] | None = None,
    pruned: dict[str, Any] | None = None,
    stopped_by: str | None = None,
) -> dict[str, Any]:
    """The outcome of a trial: the last stdout line of `optbench trial` and the record's end line.

    ``time_to_target_s``/``steps_to_target`` are null unless the target was reached (null
    stands for infinity: JSON has none).
    """
    summary: dict[str, Any] = {
        "status": status,
        "time_to_target_s": time_to_target_s,
        "steps_to_target": steps_to_target,
        "best_validation": best,
        "target": workload.target,
        "metric": workload.metric,
        "higher_is_better": workload.higher_is_better,
        "steps": steps,
        "submission_time_s": submission_s,
        "max_runtime_s": budget,
        "workload": workload.label,
        "size": workload.size,
        "record_dir": str(record.dir),
        "memory": memory,
        "routing": routing,
        "timing": timing,
    }
    if pruned is not None:
        summary["pruned"] = pruned
    if stopped_by is not None:  # why a not_reached trial stopped: "budget" or "max_steps"
        summary["stopped_by"] = stopped_by
    if error is not None:
        error, error_in = current_team().blame(error, error_in)  # data parallel: another rank's failure first
        summary["error"] = error
        summary["error_in"] = error_in
        last = error.strip().splitlines()[-1] if error.strip() else "Exception"
        summary["error_type"] = last.split(":")[0]
        summary["error_message"] = last  # e.g. "OSError: [Errno 27] File too large"
    return summary


def _manifest(
    cfg: DictConfig,
    identity: dict[str, Any],
    workload: Workload,
    submission_cls: type[Submission],
    hparams: TrainingHparams,
    device: torch.device,
    budget: float,
    record: TrialRecord,
) -> dict[str, Any]:
    """What ran, self-described: enough to score, audit and reproduce the trial."""
    spec = workload.spec
    return {
        "schema_version": SCHEMA_VERSION,
        "trial_id": record.dir.name,
        "created_at": utc_timestamp(),
        "workload": workload.label,
        "family": workload.name,
        "variant": workload.variant,
        "size": workload.size,
        "model": workload.model_name,
        "model_options": workload.model_options,
        "submission": cfg.submission.name,
        "submission_revision": submission_cls.revision,
        "hparams": hparams.as_dict(),
        "precision": size_precision(workload),  # mixed precision (core/precision.py)
        "nproc": processes(cfg),  # data parallel (core/distributed.py)
        "compile": bool(identity.get("compile", False)),  # torch.compile (core/compile.py)
        "charge_compile": bool(identity.get("charge_compile", False)),
        "seed": int(cfg.seed),
        "study": cfg.study,
        "trial": cfg.trial,
        "ruleset": cfg.ruleset,
        "isolation": cfg.isolation,  # where the submission ran: inprocess, or process (docs/decisions.md)
        "sandbox": sandbox_entry(cfg),  # its trainer process confined, or why not (harness/core/sandbox.py)
        "config_hash": config_hash(identity),
        "identity": identity,  # what the hash is of: a mismatch says which setting differs
        "metric": workload.metric,
        "higher_is_better": workload.higher_is_better,
        "target": workload.target,
        "test_target": spec.test_target,
        "max_runtime_s": budget,
        "step_hint": workload.step_hint,
        "eval_every_steps": spec.eval_every_steps,
        "eval_period_s": spec.eval_period_s,
        "num_train_examples": workload.num_train_examples,
        "data_source": workload.describe_data(),
        "data_sha256": workload.data_digest(),  # the examples themselves (None: the workload does not tell)
        "target_data_sha256": target_data_digest(workload),  # those the target was calibrated on (None: not told)
        "git": git_revision(),
        "versions": package_versions(),
        "device": describe_device(device),
        "submission_module": str(module_file(submission_cls)),
        "submission_audit": audit_file(module_file(submission_cls), code_paths(submission_cls)),  # and its helpers
        "submission_source_sha256": source_hash(submission_cls),
        "workload_source_sha256": source_hash(type(workload)),
        "submission_code": code_files(submission_cls),  # its file and its package's modules it imports
        "workload_code": code_files(type(workload)),  # (harness/config/code_files.py)
        "submission_packages": code_packages(submission_cls),  # the installed packages besides the harness's
        "config": to_plain(cfg),
    }
