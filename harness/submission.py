"""The Submission contract: a training algorithm = hyperparameters + optimizer + schedule.

A built-in submission is one module ``submissions/<name>.py`` exporting its class as
``SUBMISSION``, plus ``configs/submission/<name>.yaml`` holding the default hyperparameters and the
AlgoPerf-format search space; one outside this repository is a module or file of the user's
(harness/config/plugins.py). ``submissions/_template.py`` is the file to copy; docs/writing-a-submission.md
has the contract in full.

A submission is handed the model, its hyperparameters and :class:`~harness.workload.WorkloadInfo`
(step hint, budget, batch size, ...), not validation or test data, the clock or the target: the
harness calls :meth:`Submission.update` once per step with a training batch and a loss function,
and :meth:`Submission.prepare_for_eval` before each evaluation. In the harness's own process that
is a rule a submission could break (frames, the garbage collector); every trial's clock is
cross-checked and its source audited, and the leaderboard shows both (docs/writing-a-submission.md).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from harness.errors import UserError
from harness.hparam_types import coerce, field_types
from harness.workload import Batch, WorkloadInfo

DECAYS = ("constant", "cosine", "linear")
H = TypeVar("H", bound="TrainingHparams")


@dataclasses.dataclass(kw_only=True)
class TrainingHparams:
    """Hyperparameters every submission has: batch size and the learning-rate schedule.

    The schedule multiplies the base learning rate (:func:`lr_multiplier`): with
    W = ``round(warmup_fraction * step_hint)`` warmup steps, step k (counting from 0) of the
    warmup uses (k + 1) / W of it, so the first step already moves at lr / W (AlgoPerf's
    warmup starts at ~0 instead); then ``decay`` (constant, cosine or linear) from 1 down to
    ``final_lr_fraction`` by step ``round(decay_fraction * step_hint)``, then constant.
    Subclasses add their own fields (without defaults: the YAML holds the defaults) and
    validate them in ``__post_init__`` (call ``super().__post_init__()``); a field with
    ``init=False`` is computed there from the others: no setting, but recorded (``as_dict``).
    """

    batch_size: int = 128
    warmup_fraction: float = 0.0
    decay: str = "constant"
    decay_fraction: float = 1.0
    final_lr_fraction: float = 0.0

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be a positive integer")
        require(0.0 <= self.warmup_fraction <= 1.0, "warmup_fraction", self.warmup_fraction, "must be in [0, 1]")
        require(self.decay in DECAYS, "decay", self.decay, f"must be one of {', '.join(DECAYS)}")
        require(0.0 < self.decay_fraction <= 10.0, "decay_fraction", self.decay_fraction, "must be in (0, 10]")
        require(
            self.warmup_fraction < self.decay_fraction,
            "warmup_fraction",
            self.warmup_fraction,
            f"must be smaller than decay_fraction ({self.decay_fraction})",
        )
        require(0.0 <= self.final_lr_fraction <= 1.0, "final_lr_fraction", self.final_lr_fraction, "must be in [0, 1]")

    @classmethod
    def from_mapping(cls: type[H], values: Mapping[str, Any], submission: str = "", config: str | None = None) -> H:
        """Build and validate from a config mapping; unknown or missing keys, and values of fields the
        class computes itself (``init=False``), are UserErrors (``config``: where the values came
        from, for the message; default its YAML)."""
        require_declared_fields(cls, f"submission '{submission}'" if submission else "")
        who = f"submission '{submission}'" if submission else cls.__name__
        source = "its YAML" if config is None else f"its config ({config})"
        _refuse_computed(cls, values, who, source)
        _refuse_names(cls, values, who, config)
        hints = field_types(cls)
        coerced = {name: coerce(name, plain_value(value), hints[name]) for name, value in values.items()}
        return cls(**coerced)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __getattr__(self, name: str) -> Any:
        """Only reached for a name that is not a field: ``hp.lr`` in a submission whose ``Hparams``
        lacks it (most often a class that forgot ``Hparams = MyHparams`` and so got this base
        class) fails with what to do, not Python's bare AttributeError."""
        if name.startswith("__"):  # copy, pickle and friends probe for these: theirs is the plain answer
            raise AttributeError(name)
        kind = type(self).__name__
        if type(self) is TrainingHparams:
            advice = ("the submission has no Hparams of its own, so it takes only the batch size and schedule: "
                      f"declare {name} in a dataclass subclass of TrainingHparams and set it as the class's "
                      "Hparams (Hparams = MyHparams; docs/writing-a-submission.md)")
        else:
            advice = f"declare it as a field of {kind} (and give it a value in the submission's config)"
        raise AttributeError(f"'{kind}' has no hyperparameter '{name}': {advice}.")


def input_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields a config sets: all but those with ``init=False``, which the class computes from the
    others (in ``__post_init__``); those are recorded (``as_dict``) but are no input."""
    return {field.name: field for field in dataclasses.fields(cls) if field.init}


def computed_fields(cls: type) -> list[str]:
    """The names of the fields the class computes itself (``init=False``)."""
    return [field.name for field in dataclasses.fields(cls) if not field.init]


def input_values(hparams: TrainingHparams) -> dict[str, Any]:
    """The values of ``hparams`` that built it (what ``from_mapping`` takes back), without the computed ones."""
    return {name: getattr(hparams, name) for name in input_fields(type(hparams))}


def _refuse_computed(cls: type, values: Mapping[str, Any], who: str, source: str) -> None:
    """Refuse values for fields ``cls`` computes itself (``init=False``): its ``__init__`` takes none."""
    named = [name for name in computed_fields(cls) if name in values]
    if named:
        names, one = ", ".join(named), len(named) == 1
        raise UserError(f"Hyperparameter(s) {names} of {who} cannot be set: {cls.__name__} computes "
                        f"{'it' if one else 'them'} from its other fields (init=False, in its __post_init__), and "
                        f"the trial records the computed value. Remove {names} from {source} or the command line, "
                        f"and set the fields {'it is' if one else 'they are'} computed from instead.")


def _refuse_names(cls: type, values: Mapping[str, Any], who: str, config: str | None) -> None:
    """Refuse names of ``values`` that are no input of ``cls``, and inputs without a default that
    ``values`` lacks: each a UserError saying where to fix it."""
    inputs = input_fields(cls)
    unknown = sorted(set(values) - set(inputs))
    if unknown:
        raise UserError(
            f"Unknown hyperparameter(s) {', '.join(unknown)} for {who} (set in "
            f"{'its YAML' if config is None else f'its config, {config},'} or on the command line). "
            f"Valid hyperparameters: {', '.join(sorted(inputs))}."
        )
    required = dataclasses.MISSING
    missing = sorted(n for n, f in inputs.items()
                     if n not in values and f.default is required and f.default_factory is required)
    if missing:
        source = "its YAML" if config is None else f"its config ({config})"
        raise UserError(f"{who} needs hyperparameter(s) {', '.join(missing)}: set them in {source} or on the "
                        f"command line ({' '.join(f'submission.hparams.{n}=...' for n in missing)}).")


def require_declared_fields(cls: type, of: str = "") -> None:
    """Refuse an Hparams class that annotates fields without being a dataclass (or that has such a
    base): ``TrainingHparams`` is one, so the class still builds, but its annotated names are plain
    class attributes that the submission silently reads, no config can set and no record holds.
    ``of``: whose Hparams it is, for the message (``submission 'x'``, a class's name)."""
    declared = set(getattr(cls, "__dataclass_fields__", {}))  # a decorated class's ClassVars too
    for klass in cls.__mro__:
        if not issubclass(klass, TrainingHparams):
            continue
        names = [name for name, hint in vars(klass).get("__annotations__", {}).items()
                 if name not in declared and not _is_class_variable(hint)]
        if names:
            raise UserError(_undeclared_message(cls, klass, names, of))


def _undeclared_message(cls: type, klass: type, names: list[str], of: str) -> str:
    """What :func:`require_declared_fields` says of ``names``, annotated by ``klass`` (``cls`` or a base)."""
    whose = f" (the Hparams of {of})" if of else ""
    what = f"{klass.__name__}{whose}" if klass is cls else f"{klass.__name__}, a base of {cls.__name__}{whose},"
    field, attribute = (("is not a dataclass field", "it is a plain class attribute") if len(names) == 1 else
                        ("are not dataclass fields", "they are plain class attributes"))
    return (f"{what} annotates {', '.join(names)}, which {field}: {klass.__name__} lacks the dataclass decorator, "
            f"so {attribute} that no config can set and no record holds. Decorate {klass.__name__} with "
            f"@dataclasses.dataclass(kw_only=True) (docs/writing-a-submission.md).")


def _is_class_variable(hint: Any) -> bool:
    """Whether an annotation declares a class variable (``ClassVar[...]``, or its text): no field."""
    if isinstance(hint, str):
        return re.match(r"\s*(typing\.)?ClassVar\b", hint) is not None
    return hint is ClassVar or typing.get_origin(hint) is ClassVar


def require(condition: bool, name: str, value: Any, rule: str) -> None:
    """Raise a UserError naming the hyperparameter, its value and the rule it breaks."""
    if not condition:
        raise UserError(f"Invalid hyperparameter {name}={value!r}: {rule}.")


def plain_value(value: Any) -> Any:
    """A config's list or mapping as Python's own (a hyperparameter's value joins the trial's hash)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value




def lr_multiplier(hp: TrainingHparams, step_hint: int) -> Callable[[int], float]:
    """The schedule as a function of the step count (0 for the first step): warmup, decay, constant.

    Warmup is linear from lr / W at the first step to lr at step W - 1 (never 0: a zero first
    step would waste a step); see :class:`TrainingHparams`.
    """
    warmup = max(0, round(hp.warmup_fraction * step_hint))
    end = max(warmup + 1, round(hp.decay_fraction * step_hint))
    final = hp.final_lr_fraction

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if hp.decay == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / (end - warmup))
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if hp.decay == "cosine" else 1.0 - progress
        return final + (1.0 - final) * shape

    return multiplier


_STATEFUL = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)


class Submission(ABC):
    """Base class of every submission.

    ``Hparams`` names the hyperparameter dataclass. ``__init__`` builds the optimizer(s) and
    schedule; it is charged (optimizer-state set-up is part of the algorithm). :meth:`update`
    does one training step and returns the (detached) loss; it is charged. Override
    :meth:`prepare_for_eval` when evaluation must see different weights (schedule-free, weight
    averaging); it is charged too.
    """

    Hparams: ClassVar[type[TrainingHparams]] = TrainingHparams
    #: the inner optimizer that makes the method what it is, as named by :meth:`routing`
    #: (e.g. ``"muon"``); None when one optimizer updates every parameter
    special_component: ClassVar[str | None] = None
    #: the algorithm's revision under this name: bump it when a change makes the submission compute
    #: something else, so records of the old algorithm are never reused or scored as the new one
    #: (it joins the trial's config hash and the sweep's; the leaderboard refuses to mix revisions)
    revision: ClassVar[int] = 1

    def __init__(self, model: nn.Module, hparams: TrainingHparams, info: WorkloadInfo):
        self.model = model
        self.hparams = hparams
        self.info = info

    @abstractmethod
    def update(self, batch: Batch, compute_loss: Callable[[Batch], torch.Tensor]) -> torch.Tensor:
        """One training step on ``batch``; ``compute_loss(batch)`` is the workload's loss."""

    def prepare_for_eval(self) -> None:
        """Called before every evaluation; the default does nothing."""

    def routing(self) -> dict[str, list[nn.Parameter]] | None:
        """Which parameters each inner optimizer updates: ``{component: [parameters]}``.

        For submissions that route parameters (Muon for hidden matrices, AdamW for the rest;
        Shampoo's preconditioned matrices vs. its Adam fallback): ``optbench info`` prints it and
        every trial records it, and the leaderboard marks a submission whose
        :attr:`special_component` got no parameter of a workload. None (the default) means one
        optimizer updates every trainable parameter.
        """
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything besides the model needed to resume training exactly (for checkpoints).

        The default saves every attribute that is a torch optimizer or LR scheduler (or a list
        or tuple of them). Override it, with :meth:`load_state_dict`, when the submission keeps
        other state (step counters, averaged weights held outside an optimizer, ...).
        """
        state: dict[str, Any] = {}
        for name, value in vars(self).items():
            if isinstance(value, _STATEFUL):
                state[name] = value.state_dict()
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, _STATEFUL) for v in value):
                state[name] = [v.state_dict() for v in value]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, into the freshly built submission."""
        for name, saved in state.items():
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                for item, item_state in zip(value, saved, strict=True):
                    item.load_state_dict(item_state)
            else:
                value.load_state_dict(saved)


class TorchOptimSubmission(Submission):
    """A submission made of one ``torch.optim`` optimizer and the shared schedule.

    Subclasses implement :meth:`build_optimizer` only; a plain optimizer is a few lines.
    """

    def __init__(self, model: nn.Module, hparams: TrainingHparams, info: WorkloadInfo):
        super().__init__(model, hparams, info)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = self.build_optimizer(params, hparams)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_multiplier(hparams, info.step_hint)
        )

    @abstractmethod
    def build_optimizer(self, params: Iterable[nn.Parameter], hparams: Any) -> torch.optim.Optimizer:
        """The torch.optim optimizer over ``params`` with the base learning rate."""

    def update(self, batch: Batch, compute_loss: Callable[[Batch], torch.Tensor]) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = compute_loss(batch)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()


#: how the harness calls a submission's methods (positional arguments after ``self``)
CALLED_AS: dict[str, tuple[str, ...]] = {
    "__init__": ("model", "hparams", "info"), "update": ("batch", "compute_loss"), "prepare_for_eval": (),
    "routing": (), "state_dict": (), "load_state_dict": ("state",),
}
#: and how :class:`TorchOptimSubmission` calls the method its subclasses implement
TORCH_OPTIM_CALLED_AS: dict[str, tuple[str, ...]] = {"build_optimizer": ("params", "hparams")}


def contract_mismatches(cls: type[Submission]) -> list[str]:
    """The methods of ``cls`` whose signatures cannot take the arguments the harness calls them with
    (``__init__(self, model, hparams)`` without ``info``), each said with its signature. Found before a
    sweep launches; otherwise they fail every trial of it at its first call. (Methods left abstract
    are refused when the class is loaded: harness/config/plugins.py.)"""
    found = []
    calls = {**CALLED_AS, **(TORCH_OPTIM_CALLED_AS if issubclass(cls, TorchOptimSubmission) else {})}
    for name, arguments in calls.items():
        if name in getattr(cls, "__abstractmethods__", ()):
            continue
        method = getattr(cls, name, None)
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):  # not a Python function (a builtin, a callable object): not checked
            continue
        bound = not isinstance(inspect.getattr_static(cls, name, None), staticmethod | classmethod)
        try:
            signature.bind(*([None] if bound else []), *arguments)
        except TypeError as error:
            found.append(f"{name}{signature} cannot be called as the harness calls it, "
                         f"{name}({', '.join(['self', *arguments])}): {error}")
    return found
