"""What a trial trains with, built in one order everywhere: the model from the seed (in training
mode), the workload's public facts, the submission (built after torch is seeded with the trial's
seed, for its own randomness), the stream of training batches and the loss function.

The runner builds a trial this way, and so do ``optbench info`` (its timed steps), ``optbench
trajectories`` and ``optbench check``: each of them measures what a trial would do.
"""

from __future__ import annotations

import math
import random
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy
import torch
import torch._dynamo  # torch.optim imports it when the first optimizer is built: 1.3-2.7 s the clock would
from torch import nn  # charge to the submission's construction, imported here before the clock starts

from harness.core.checkpoint import capture_rng, restore_rng
from harness.core.evaluation import EvaluationFailed, build_model, evaluate
from harness.core.precision import with_precision
from harness.errors import UserError, WorkloadFailed
from harness.submission import Submission, TrainingHparams
from harness.workload import Batch, Workload, WorkloadInfo


def model_and_info(workload: Workload, batch_size: int, seed: int) -> tuple[nn.Module, WorkloadInfo]:
    """The model built from ``seed``, in training mode, and the facts the submission may see.

    On CUDA the model is also warmed up (:func:`warm_up`): the device's first-use costs of its
    forward and backward passes (kernels loaded on first call, cuBLAS's and cuDNN's handles and
    heuristics, at the size's precision) are not the optimizer's, and a compiled trial's warm-up
    already kept them out of its clock.
    """
    model = build_model(workload, seed)
    model.train()
    info = workload.public_info(batch_size, model)
    if workload.device.type == "cuda":  # a data-parallel rank's steps see its slice of the batch
        group = torch.distributed
        ranks = group.get_world_size() if group.is_available() and group.is_initialized() else 1
        warm_up(model, workload, max(1, batch_size // ranks), seed)
    return model, info


def warm_up(model: nn.Module, workload: Workload, batch_size: int, seed: int,
            check: Callable[[torch.Tensor], None] | None = None, backward: bool = True) -> None:
    """One training forward pass of ``model`` (and its backward) on the first batch of a separate
    stream of the trial's seed, its loss handed to ``check``; everything it could change is put back:
    parameters and buffers (BatchNorm statistics), gradients and every global RNG (dropout), so the
    trial starts as it would have without it, and its own stream is never touched."""
    state = {name: value.clone() for name, value in model.state_dict(keep_vars=False).items()}
    gradients = [parameter.grad for parameter in model.parameters()]
    rng = capture_rng(workload.device)
    try:
        with torch.enable_grad():
            batches, compute_loss = training_stream(workload, model, batch_size, seed)  # a stream of its own
            loss = compute_loss(next(batches))
            if check is not None:
                check(loss)
            if backward:
                loss.backward()
    finally:
        model.load_state_dict(state)
        for parameter, gradient in zip(model.parameters(), gradients, strict=True):
            parameter.grad = gradient
        restore_rng(rng, workload.device)
    if workload.device.type == "cuda":
        torch.cuda.synchronize(workload.device)


PROBE_PATIENCE_S = 60.0  # when a workload's first batch takes longer, say so (a stream that never yields)


def probe_training(workload: Workload, batch_size: int, seed: int, say: Callable[[str], None]) -> None:
    """Before the first trial of a workload of the user's own starts (uncharged; nothing recorded
    yet): one batch of the trial's size from a separate stream, and the untrained model's loss on it.

    Refused as the workload's (exit 2, no record): a stream that ends without a batch, code of the
    workload's that raises, a non-finite loss before any step (every trial would "diverge" at step 1,
    charged to the submission), and (once per loaded workload) an evaluation of the untrained model
    without the metric or with NaN for it (every trial would run out its budget). A stream that
    gives no batch for a minute (a generator that drops incomplete batches loops forever when the
    batch size exceeds the examples) is said, not killed.
    Everything the probe could change (global RNGs, the model's state) is put back or thrown away.
    """
    def finite(loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            raise UserError(f"The untrained model's training loss on the first batch (batch_size={batch_size}) is "
                            f"{loss.detach().float().mean().item()}: non-finite before any optimizer step, so every "
                            f"trial would diverge at its first step and the submission be blamed. Fix the workload's "
                            f"build_model() or loss(). Nothing was recorded.")

    timer = threading.Timer(PROBE_PATIENCE_S, say, [
        f"note: the workload's train_batches({batch_size}, ...) has given no batch in {PROBE_PATIENCE_S:.0f} s; it "
        f"must yield batches of every size in [min_batch_size, max_batch_size] without end (a stream that drops "
        f"incomplete batches never yields when the batch size exceeds the {workload.num_train_examples} training "
        f"examples)"])
    timer.daemon = True
    rng = capture_rng(workload.device)
    timer.start()
    try:
        model = build_model(workload, seed)
        model.train()
        warm_up(model, workload, batch_size, seed, check=finite, backward=False)
        if workload not in _EVALUATED:  # once per loaded workload (a sweep's process runs many trials of it)
            _probe_evaluation(workload, model)
            _EVALUATED.add(workload)
    except UserError:
        raise
    except StopIteration:
        raise UserError(f"The workload's train_batches({batch_size}, ...) ended without giving a batch: it must yield "
                        f"batches without end, of every size in [min_batch_size, max_batch_size] (wrapping around "
                        f"its {workload.num_train_examples} training examples). Nothing was recorded.") from None
    except Exception as error:
        raise WorkloadFailed.raised_in("train_batches(), build_model() or loss()", error) from None
    finally:
        timer.cancel()
        restore_rng(rng, workload.device)


def check_model_builds(workload: Workload, seed: int) -> None:
    """Before a trial of a built-in workload starts (uncharged; nothing recorded yet): its model built
    once and thrown away, every global RNG put back. The shipped settings build; what a command
    changed may not (``workload.model_options.hidden=abc``, a negative width, a model too large for
    the device), and was recorded as the harness's failure, which the same command retried forever:
    refused as the workload's input instead (exit 2), naming the model options."""
    rng = capture_rng(workload.device)
    try:
        build_model(workload, seed)
    except UserError:
        raise
    except Exception as error:
        options = ", ".join(f"{key}={value!r}" for key, value in sorted(workload.model_options.items()))
        raise WorkloadFailed.raised_in(f"build_model() with model options {{{options}}} (workload.model_options."
                                       f"<name>= sets one)", error) from None
    finally:
        restore_rng(rng, workload.device)


_EVALUATED: weakref.WeakSet[Workload] = weakref.WeakSet()  # workloads whose evaluation was tried


def _probe_evaluation(workload: Workload, model: nn.Module) -> None:
    """The untrained model evaluated once: an evaluate() that does not give the metric, or gives NaN
    for it (an untrained model's metric is a number: NaN there is the workload's), is refused before
    a trial runs out its budget never able to reach the target."""
    try:
        value = evaluate(workload, model, "validation")[f"validation/{workload.metric}"]
    except EvaluationFailed as error:
        raise UserError(f"The workload's evaluation of the untrained model: {error}. Fix the workload's evaluate(). "
                        f"Nothing was recorded.") from None
    except UserError:
        raise
    except Exception as error:  # no submission has touched the model yet: the workload's own
        raise WorkloadFailed.raised_in("evaluate() of the untrained model", error) from None
    if math.isnan(value):
        raise UserError(f"The workload's evaluate() gives validation {workload.metric} = nan for the untrained model: "
                        f"no trial could ever reach its target. Fix the workload's evaluate(). Nothing was recorded.")


def build_submission(submission_cls: type[Submission], model: nn.Module, hparams: TrainingHparams,
                     info: WorkloadInfo, seed: int) -> Submission:
    """The submission, constructed after seeding torch with ``seed`` (dropout, stochastic optimizers),
    and Python's and NumPy's global generators with it too: a submission may draw from them, and the
    ranks of a data-parallel trial must draw alike (a checkpoint keeps all three: core/checkpoint.py)."""
    torch.manual_seed(seed)
    random.seed(seed)
    numpy.random.seed(seed % 2**32)
    return submission_cls(model, hparams, info)


# What each LossFunction computes, kept here rather than on the function: its attributes lead nowhere.
_LOSSES: weakref.WeakKeyDictionary[LossFunction, tuple[Workload, nn.Module]] = weakref.WeakKeyDictionary()


class LossFunction:
    """``compute_loss(batch)``: the workload's training loss of the trial's model on ``batch``.

    What a submission is handed. Unlike a ``functools.partial`` of the workload's bound method
    (whose ``.func.__self__`` was the workload, with its target and evaluation data), it carries
    no attributes at all (no ``func``, ``args``, ``__self__``, ``__closure__``, ``__wrapped__``,
    ``__dict__``): the workload and model it calls are kept in a private table of this module.
    In-process that is all it can be: the interpreter (``gc``, frames, this module's globals)
    still reaches every object; the static audit and ``clock_suspect`` flag such code, and
    ``isolation=process`` is the guarantee (docs/decisions.md).
    """

    __slots__ = ("__weakref__",)

    def __init__(self, workload: Workload, model: nn.Module):
        _LOSSES[self] = (workload, model)

    def __call__(self, batch: Batch) -> torch.Tensor:
        workload, model = _LOSSES[self]
        return workload.loss(model, batch)

    def __repr__(self) -> str:
        return "<compute_loss>"

    def __reduce__(self) -> None:  # pickling would copy the workload along: refuse
        raise TypeError("compute_loss cannot be pickled or copied; call it where it was handed to you")


def training_stream(workload: Workload, model: nn.Module, batch_size: int,
                    seed: int) -> tuple[Iterator[Batch], Callable[[Batch], torch.Tensor]]:
    """The training batches (their order a function of ``seed``) and the loss on ``model``."""
    compute_loss = with_precision(LossFunction(workload, model), workload)  # mixed precision: the size's autocast
    return workload.train_batches(batch_size, seed), compute_loss


@dataclass
class TrialParts:
    model: nn.Module
    info: WorkloadInfo
    submission: Submission
    batches: Iterator[Batch]
    compute_loss: Callable[[Batch], torch.Tensor]


def trial_parts(workload: Workload, submission_cls: type[Submission], hparams: TrainingHparams,
                seed: int) -> TrialParts:
    """All of it at once, in the runner's order (for tools that do not need to tell a failing
    submission from a failing workload)."""
    model, info = model_and_info(workload, hparams.batch_size, seed)
    submission = build_submission(submission_cls, model, hparams, info, seed)
    batches, compute_loss = training_stream(workload, model, hparams.batch_size, seed)
    return TrialParts(model, info, submission, batches, compute_loss)
