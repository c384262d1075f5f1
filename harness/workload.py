"""The Workload contract: what a workload family must declare and implement.

A workload owns its data, its model, its loss and its evaluation, and declares the numbers
that make a benchmark fair: the validation target, the budget, the step hint, the metric and
its direction. The harness owns the loop and the clock; a workload never times anything.

To add a workload family to this repository, write ``workloads/<name>.py`` with a subclass of
:class:`Workload` exported as ``WORKLOAD``, and ``configs/workload/<name>.yaml`` with its sizes. The
conformance tests (``tests/test_conformance.py``) then check it without a new test being written.
A workload kept in a package or file of one's own is named by ``workload=`` as a module, a ``.py``
file or an entry point, with its YAML beside it (:mod:`harness.config.plugins` says how).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from harness.errors import UserError
from harness.identity import meets, workload_label
from harness.routing import output_layer_names
from harness.specs import SizeSpec, WorkloadConfig

Batch = Any  # whatever the workload's train_batches yields and its loss accepts


@dataclass(frozen=True)
class WorkloadInfo:
    """What a submission may know about the workload: never the target, data or clock."""

    name: str
    size: str
    step_hint: int
    max_runtime_s: float
    num_train_examples: int
    batch_size: int
    min_batch_size: int
    max_batch_size: int
    device: torch.device
    #: names (as in ``model.named_parameters()``) of the output layer's parameters: the layer whose
    #: output feeds the loss (see :meth:`Workload.output_parameters`); empty when none is a matrix
    output_parameters: tuple[str, ...]


class Workload(ABC):
    """Base class of every workload family.

    Subclasses set the class attributes and implement the five abstract methods. Construction
    (``__init__`` + :meth:`load`) and :meth:`evaluate` are never charged to the submission;
    :meth:`train_batches` and :meth:`loss` run inside the timed loop, so keep them lean:
    data already on the device, no host synchronisation.
    """

    #: registry name (the module name under ``workloads/`` and the config name)
    name: ClassVar[str]
    #: name of the validation metric that the target applies to, e.g. ``"accuracy"``
    metric: ClassVar[str]
    #: direction of the metric: True when larger is better (accuracy), False for losses
    higher_is_better: ClassVar[bool]
    #: the values the metric can take (accuracy: (0, 1)); a trial whose target lies outside them says
    #: so (no trial can meet it, or every one does at its first evaluation). None: not said.
    metric_range: ClassVar[tuple[float, float] | None] = None
    #: model names this family can build (``workload.model=...``)
    models: ClassVar[tuple[str, ...]]
    #: the options a size may set (``sizes.<size>.options``), with their types; a key not here is
    #: refused when the workload is built. None: the workload checks its options itself.
    options: ClassVar[dict[str, tuple[type, ...]] | None] = None

    def __init__(self, config: WorkloadConfig, device: torch.device, data_dir: str | None = None):
        if config.size not in config.sizes:
            raise UserError(
                f"Workload '{config.name}' has no size '{config.size}'. "
                f"Valid sizes: {', '.join(sorted(config.sizes))} (workload.size= picks one; a workload's "
                f"YAML names its default in size:)."
            )
        variant = config.variants.get(config.variant) if config.variant != "base" else None
        if config.variant != "base" and variant is None:
            raise UserError(
                f"Workload '{config.name}' has no variant '{config.variant}'. "
                f"Valid variants: base, {', '.join(sorted(config.variants)) or '(none)'}."
            )
        self.model_name = (variant.model if variant is not None and variant.model else None) or config.model
        if self.model_name not in self.models:
            raise UserError(
                f"Workload '{config.name}' has no model '{self.model_name}'. "
                f"Valid models: {', '.join(self.models)}."
            )
        self.config = config
        self.size = config.size
        self.variant = config.variant
        #: model settings of the base config with the variant's merged over them
        self.model_options: dict[str, Any] = {
            **_plain(config.model_options), **(_plain(variant.model_options) if variant else {})
        }
        self.spec: SizeSpec = _spec_with_variant(config, variant)
        check_spec(self.spec, f"workload '{config.name}'" + (f" (variant {config.variant})" if variant else ""),
                   str(config.size))
        if self.options is not None:
            check_options(f"workload '{config.name}' (size {config.size})", _plain(self.spec.options), self.options)
        self.device = device
        self.data_dir = Path(data_dir).expanduser() if data_dir else None
        if self.data_dir is not None and not self.data_dir.is_dir():
            raise UserError(
                f"data_dir '{data_dir}' does not exist or is not a folder. Point data_dir at the folder "
                f"that holds the {config.name} files, or leave it unset to use the default locations."
            )

    @property
    def label(self) -> str:
        """The workload's name in records and tables: ``<name>`` or ``<name>.<variant>``."""
        return workload_label(self.name, self.variant)

    # ----------------------------------------------------------------- declared numbers
    @property
    def target(self) -> float:
        return float(self.spec.target)

    @property
    def max_runtime_s(self) -> float:
        return float(self.spec.max_runtime_s)

    @property
    def step_hint(self) -> int:
        return int(self.spec.step_hint)

    def reached(self, value: float) -> bool:
        """Whether a validation metric value meets the target (>= or <= by direction)."""
        if not math.isfinite(value):
            return False
        return meets(value, self.target, self.higher_is_better)

    def check_batch_size(self, batch_size: int, fix: str = "Set submission.hparams.batch_size.") -> None:
        """Refuse a batch size outside the workload's allowed range, naming the range and ``fix``."""
        lo, hi = self.spec.min_batch_size, self.spec.max_batch_size
        if not lo <= batch_size <= hi:
            raise UserError(
                f"batch_size={batch_size} is outside the range that workload '{self.name}' "
                f"(size {self.size}) allows: {lo} to {hi}. {fix}"
            )

    def public_info(self, batch_size: int, model: nn.Module) -> WorkloadInfo:
        """The workload facts a submission may use to build its optimizer and schedule for ``model``."""
        return WorkloadInfo(
            name=self.name,
            size=self.size,
            step_hint=self.step_hint,
            max_runtime_s=self.max_runtime_s,
            num_train_examples=self.num_train_examples,
            batch_size=batch_size,
            min_batch_size=self.spec.min_batch_size,
            max_batch_size=self.spec.max_batch_size,
            device=self.device,
            output_parameters=self.output_parameters(model),
        )

    def output_parameters(self, model: nn.Module) -> tuple[str, ...]:
        """Names of the parameters of ``model``'s output layer (the layer whose output feeds the loss).

        Submissions that treat the output layer differently (Muon leaves it to AdamW) read it
        from :class:`WorkloadInfo`. The default finds it by what feeds the loss: one forward pass
        of a throwaway copy of the model on one training batch (from a separate stream, with the
        global RNG saved and restored, so the trial's model, data order and randomness are
        untouched), then a walk back through the autograd graph
        (:func:`harness.routing.output_layer_names`). Needs :meth:`load` first. Override it to
        name the layer explicitly when the walk cannot tell (e.g. a loss fed by two matrices).
        """
        probe = copy.deepcopy(model)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            batch = next(iter(self.train_batches(self.spec.min_batch_size, 0)))
            loss = self.loss(probe, batch)
        return output_layer_names(loss, probe)

    def describe_data(self) -> str:
        """One line saying where the data came from (recorded in the manifest)."""
        return "unknown"

    def data_digest(self) -> str | None:
        """The sha256 of the examples :meth:`load` read (every split, as read: before any
        normalisation), or None where the workload does not tell (the default). Needs :meth:`load` first.

        Recorded in the manifest as ``data_sha256``. The description names a path, which differs
        between machines; this says whether the examples did: another copy of a dataset (e.g.
        CIFAR-10 re-encoded as JPEG, whose pixels differ) is another problem. score refuses one
        workload's records made on two digests, and a trial neither resumes nor returns a record
        made on other data. :func:`data_sha256` computes one from arrays and text.
        """
        return None

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def load(self) -> None:
        """Find, read and move the data to the device. Raise UserError when it is missing."""

    def load_training_data(self) -> None:
        """Load only what :meth:`train_batches`, :meth:`loss` and :meth:`build_model` need: no
        validation or test split is kept (read them if they share a file, then drop them).

        The trainer process of ``isolation=process`` calls this instead of :meth:`load`, on a
        workload whose targets were removed from its config, so that nothing a submission can
        reach there holds held-out data (docs/decisions.md). Optional: a workload without it
        runs in-process only. After it, :meth:`evaluate` is not available.
        """
        raise UserError(
            f"Workload '{self.name}' ({type(self).__module__}.{type(self).__qualname__}) does not implement "
            f"load_training_data(), which isolation=process needs: the trainer process loads only the "
            f"training data. Implement it (like load(), keeping no validation or test split; see "
            f"harness/workload.py), or run with isolation=inprocess."
        )

    @classmethod
    def loads_training_data_alone(cls) -> bool:
        """Whether this workload implements :meth:`load_training_data` (isolation=process needs it)."""
        return cls.load_training_data is not Workload.load_training_data

    @property
    @abstractmethod
    def num_train_examples(self) -> int:
        """Number of training examples (after carving out the validation split)."""

    @abstractmethod
    def build_model(self, seed: int) -> nn.Module:
        """A freshly initialised model on the device; same seed, same weights."""

    @abstractmethod
    def train_batches(self, batch_size: int, seed: int) -> Iterator[Batch]:
        """An endless stream of training batches on the device.

        The order depends only on ``seed`` (a generator the workload owns), so every
        submission sees the same examples in the same order. Yield a new batch object each
        time (never refill one buffer in place): a submission may keep recent batches
        (schedule-free AdamW re-estimates BatchNorm statistics from them).
        """

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean training loss of ``model`` on ``batch`` (a scalar tensor with grad).

        Compute it by calling ``model(...)``, not from its attributes or submodules: in a
        data-parallel trial (``nproc=N``) ``model`` is DDP's wrapper, which averages over the
        ranks the gradients of what its forward computed, and has none of the model's attributes.
        """

    @abstractmethod
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Metrics on ``split`` ("validation" or "test"); must include :attr:`metric` (a trial without it
        is refused as the workload's), and by convention "loss", which every built-in workload reports.

        Called with the model in eval mode under ``torch.no_grad``; never charged.
        """


def target_data_digest(workload: Workload) -> str | None:
    """The ``data_sha256`` of the examples the size's target and budget were calibrated on (its
    calibration's ``data_sha256``, written by ``optbench calibrate``), or None where it does not say.

    A trial on other examples (another corpus through gpt's ``text_file``, another copy of a dataset)
    measures the time to a target nobody reached on them: the manifest keeps both digests, the trial
    says so, and the leaderboard notes it."""
    digest = (workload.spec.calibration or {}).get("data_sha256")
    return str(digest) if digest else None


def workload_identity(workload: Workload) -> dict[str, Any]:
    """What of ``workload`` determines a trial's outcome: its label, size, model and model options,
    and the spec in force for its size (the variant's overrides applied).

    The spec leaves out ``calibration`` (notes on how the numbers were measured) and ``precision``
    (which joins an identity on its own, only when not fp32, so older hashes hold). The other sizes
    and variants are not in it: calibrating the gpu size moves no trial or sweep of the cpu size.
    """
    spec = {k: v for k, v in dataclasses.asdict(workload.spec).items() if k not in ("calibration", "precision")}
    return {"workload": workload.label, "size": workload.size, "model": workload.model_name,
            "model_options": workload.model_options, "spec": spec}


def _spec_with_variant(config: WorkloadConfig, variant: Any) -> SizeSpec:
    """The size's spec as a plain SizeSpec, with the variant's overrides for that size applied."""
    base = config.sizes[config.size]
    spec: SizeSpec = OmegaConf.to_object(base) if OmegaConf.is_config(base) else base
    if variant is None:
        return spec
    overrides = dict(variant.sizes.get(config.size, {}))
    if "target" not in overrides:
        raise UserError(
            f"Variant '{config.variant}' of workload '{config.name}' declares no target for size "
            f"'{config.size}'; a variant needs its own target."
        )
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(SizeSpec)})
    if unknown:
        raise UserError(f"Variant '{config.variant}' overrides unknown size field(s): {', '.join(unknown)}.")
    return dataclasses.replace(spec, **overrides)


def check_targets(spec: SizeSpec, name: str, size: str) -> None:
    """Refuse a validation target that is not a number (nan is never met, and recorded as null) or
    a test target that is not finite. Apart from :func:`check_spec`: a trainer process's workload
    has its targets removed (NaN, harness/core/trainer.py), which only the trial's own may not."""
    if not isinstance(spec.target, (int, float)) or math.isnan(spec.target):
        raise UserError(f"workload.sizes.{size}.target={spec.target} of workload '{name}' is not a number: "
                        f"it must be one (inf: never met, as calibrate's runs to the end of the schedule). Fix the "
                        f"override or the workload's config.")
    if spec.test_target is not None and not math.isfinite(spec.test_target):
        raise UserError(f"workload.sizes.{size}.test_target={spec.test_target} of workload '{name}' must "
                        f"be a finite number or null.")


def target_out_of_range(workload: Workload) -> str:
    """A note where ``workload``'s target lies outside the values its metric takes (its
    :attr:`Workload.metric_range`: an accuracy target of 2, a typo or "never met"), else ""."""
    low, high = workload.metric_range or (-math.inf, math.inf)
    target = workload.target
    if not math.isfinite(target) or low <= target <= high:
        return ""
    never = target > high if workload.higher_is_better else target < low
    return (f"note: the target {target:g} lies outside the values validation {workload.metric} takes ({low:g} to "
            f"{high:g}): " + ("no trial can meet it, so this one runs to its budget (inf says so on purpose)" if never
                              else "every trial meets it at its first evaluation"))


def check_spec(spec: SizeSpec, where: str, size: str) -> None:
    """Refuse a size's number out of its range (a ``workload.sizes.<size>.*=`` override or a config):
    each would run without a word and record a wrong outcome (an evaluation every 0 steps never
    happens; a step hint of 0 collapses every schedule). The targets: :func:`check_targets`."""
    def finite(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    def positive(value: Any) -> bool:
        return finite(value) and value > 0

    problems = [(name, value, why) for name, value, ok, why in (
        ("max_runtime_s", spec.max_runtime_s, positive(spec.max_runtime_s), "a positive number of seconds"),
        ("step_hint", spec.step_hint, positive(spec.step_hint), "a positive number of steps"),
        ("eval_every_steps", spec.eval_every_steps, spec.eval_every_steps is None or positive(spec.eval_every_steps),
         "a positive number of steps or null"),
        ("eval_period_s", spec.eval_period_s, spec.eval_period_s is None or positive(spec.eval_period_s),
         "a positive number of seconds or null"),
        ("min_batch_size", spec.min_batch_size, positive(spec.min_batch_size), "at least 1"),
        ("max_batch_size", spec.max_batch_size, positive(spec.max_batch_size) and
         spec.max_batch_size >= spec.min_batch_size, "at least min_batch_size"),
    ) if not ok]
    if problems:
        name, value, why = problems[0]
        raise UserError(f"workload.sizes.{size}.{name}={value} of {where} is out of range: it must be {why}. "
                        f"Fix the override or the workload's config.")
    if spec.eval_every_steps is None and spec.eval_period_s is None:  # evaluated once, after the budget: never met
        raise UserError(f"workload.sizes.{size} of {where} sets neither eval_every_steps nor eval_period_s, so the "
                        f"trial would be evaluated only at its end, after the budget, where a target met no longer "
                        f"counts: every submission would score 0. Set one of them (e.g. eval_every_steps: 100).")


def _plain(mapping: Any) -> dict[str, Any]:
    """A plain dict (OmegaConf containers converted), so options hash and serialise as JSON."""
    return OmegaConf.to_container(mapping, resolve=True) if OmegaConf.is_config(mapping) else dict(mapping)


def check_options(where: str, given: dict[str, Any], declared: dict[str, tuple[type, ...]]) -> None:
    """Refuse an option a workload does not declare (a typo would otherwise be ignored) or one of
    the wrong type (bool is not a number), naming the valid ones."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise UserError(f"Unknown option(s) {', '.join(unknown)} for {where}. Valid options: "
                        f"{', '.join(sorted(declared))} (workload.sizes.<size>.options.<name>=...).")
    for name, value in given.items():
        types = declared[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(t.__name__ for t in types)
            raise UserError(f"Option {name}={value!r} of {where} should be {expected}.")


def data_sha256(*parts: Any) -> str:
    """One sha256 of arrays (numpy arrays, tensors of any dtype: dtype, shape and bytes) and strings, in
    order: what :meth:`Workload.data_digest` returns for data read as such. Hashes ~1 GB/s (CIFAR-10:
    ~0.15 s). An array of Python objects (e.g. a pandas column of text) is hashed by its elements'
    text: its bytes would be pointers, other in every process."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            digest.update(b"str|" + part.encode())
        elif isinstance(part, torch.Tensor):
            tensor = part.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)  # any dtype, bfloat16 included
        else:
            array = np.ascontiguousarray(np.asarray(part))
            digest.update(f"{array.dtype.str}|{array.shape}|".encode())
            if array.dtype.hasobject:
                digest.update("\x00".join(map(str, array.reshape(-1))).encode())
            else:
                digest.update(array.data)
    return digest.hexdigest()
