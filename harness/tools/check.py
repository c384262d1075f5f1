"""``optbench check submission=...``: the conformance checks of one submission, without pytest
and without touching the repository. It is what a submission's author runs before tuning it.

Each check is a function that raises :class:`CheckFailed` with what was wrong; the conformance
tests (tests/test_conformance.py) call the same functions for every built-in submission. The
trials run into a temporary results folder, so nothing is left behind.
"""

from __future__ import annotations

import copy
import io
import itertools
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from omegaconf import DictConfig

from harness.config.compose import compose_config, split_overrides, unquoted
from harness.config.names import workload_names
from harness.config.registry import submission_class, workload_class
from harness.config.schema import CheckConfig
from harness.config.search_space import corner_points, validate_search_space
from harness.core.checkpoint import load_failure
from harness.core.parts import trial_parts
from harness.errors import NoSuchSize, UserError
from harness.submission import Submission, TrainingHparams, input_values
from harness.workload import Workload

CPU = torch.device("cpu")


class CheckFailed(Exception):
    """A check found the submission breaking its contract: the message says how."""


def submission_of(cfg: DictConfig) -> type[Submission]:
    return submission_class(cfg.submission.name, cfg.submission.get("source"))


def defaults_build(cfg: DictConfig) -> TrainingHparams:
    """The config's hyperparameters build the submission's Hparams."""
    try:
        return submission_of(cfg).Hparams.from_mapping(cfg.submission.hparams, str(cfg.submission.name))
    except UserError as error:
        raise CheckFailed(str(error)) from None


def search_space_valid(cfg: DictConfig) -> str:
    """The search space names only hyperparameters the submission has, and every corner of it
    (and its centre), with the other defaults, is a valid setting."""
    cls, name = submission_of(cfg), str(cfg.submission.name)
    space, defaults = dict(cfg.submission.search_space), dict(cfg.submission.hparams)
    if not space:
        return "no search space: ruleset=external tuning has nothing to search (ruleset=self works)"
    try:
        validate_search_space(space, cls.Hparams, name)
        points = corner_points(space)
        for point in points:
            cls.Hparams.from_mapping({**defaults, **point}, name)
    except UserError as error:
        raise CheckFailed(str(error)) from None
    return f"{len(space)} hyperparameter(s), {len(points)} corner, centre and feasible points valid"


def smoke_config(workload: str, settings: list[str]) -> DictConfig:
    """The config of ``workload`` (a built-in's name, or an external one's module, file or entry
    point: harness/config/plugins.py) at its smoke size; ``settings``: its ``workload_config=``."""
    try:
        config = compose_config("trial", [*settings, f"workload={workload}", "workload.size=smoke"]).workload
        sizes = sorted(config.sizes)
    except NoSuchSize as error:
        sizes = error.sizes
    if "smoke" not in sizes:
        raise UserError(f"optbench check runs every workload at its size 'smoke' (trials of seconds); {workload} has "
                        f"none (its sizes: {', '.join(sizes)}). Add a smoke size to its YAML (little data, a few "
                        f"hundred steps), or check on other workloads (workloads=[...]).")
    return config


def smoke_workload(workload: str, settings: Sequence[str] = ()) -> Workload:
    """``workload`` (as :func:`smoke_config` takes it) at its smoke size, loaded, on the CPU."""
    workload_cfg = smoke_config(workload, list(settings))
    loaded = workload_class(workload_cfg.name, workload_cfg.get("source"))(workload_cfg, CPU)
    loaded.load()
    return loaded


def chosen_workloads(settings: DictConfig, rest: list[str]) -> tuple[list[str], list[str], list[str]]:
    """The workloads to check (as given), their settings (``workload_config=``) and the other trial
    overrides. ``workload=X`` alone means ``workloads=[X]``; with ``workloads=`` too it is refused
    (one of them would be dropped)."""
    picked = [o for o in rest if o.partition("=")[0].lstrip("+") == "workload"]
    sized = [o for o in rest if o.partition("=")[0].lstrip("+") == "workload.size"]
    if sized:
        raise UserError(f"optbench check: {sized[-1]} is not used: the checks run every workload at its size 'smoke' "
                        f"(trials of seconds). Leave it out; `optbench trial` runs a submission at any size.")
    files = [o for o in rest if o.partition("=")[0].lstrip("+") == "workload_config"]
    others = [o for o in rest if o not in picked and o not in files]
    if picked and settings.workloads:
        raise UserError(f"optbench check: {picked[-1]} and workloads={list(settings.workloads)} both given: name "
                        f"every workload to check in workloads=[...] (a module or .py file of your own too).")
    names = [unquoted(o.partition("=")[2]) for o in picked[-1:]] or list(settings.workloads or workload_names())
    return names, files, others


# Workloads whose smoke size the default hyperparameters of some submissions diverge on (Rosenbrock's
# valley, for SGD): a non-finite loss there is the problem's, not a broken submission's.
MAY_DIVERGE = ("rosenbrock",)


def _steps(submission: Submission, workload: Workload, model: torch.nn.Module, batches: Any, n: int) -> None:
    for _ in range(n):
        loss = submission.update(next(batches), lambda b: workload.loss(model, b))
        if not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
            raise CheckFailed(f"update returned {type(loss).__name__}; it must return the step's loss as a "
                              f"one-element tensor (e.g. `return loss.detach()`)")
        if loss.requires_grad:
            raise CheckFailed("update returned a loss that still requires grad; return loss.detach()")
        if not torch.isfinite(loss) and workload.name not in MAY_DIVERGE:
            raise CheckFailed(f"update returned a non-finite loss ({loss.item()}) with the default hyperparameters")


def updates_parameters(cfg: DictConfig, workload: Workload) -> str:
    """Three updates change the model's parameters and return finite, detached losses."""
    cls, hparams = submission_of(cfg), defaults_build(cfg)
    hparams = type(hparams).from_mapping({**input_values(hparams), "batch_size": 32}, str(cfg.submission.name))
    parts = trial_parts(workload, cls, hparams, seed=0)
    model, submission = parts.model, parts.submission
    before = [p.detach().clone() for p in model.parameters()]
    _steps(submission, workload, model, parts.batches, 3)
    submission.prepare_for_eval()
    if all(torch.equal(a, p) for a, p in zip(before, model.parameters())):
        raise CheckFailed("three updates left every parameter unchanged")
    return "3 updates: parameters changed, losses finite and detached"


def resumes_exactly(cfg: DictConfig, workload: Workload) -> str:
    """Resuming from ``state_dict`` (saved as checkpoints save it: torch.save, loaded with
    weights_only=True) continues exactly as the uninterrupted run."""
    cls, hparams = submission_of(cfg), defaults_build(cfg)
    hparams = type(hparams).from_mapping({**input_values(hparams), "batch_size": 32}, str(cfg.submission.name))
    torch.manual_seed(0)
    model = workload.build_model(0)
    going = cls(model, hparams, workload.public_info(32, model))
    batches = list(itertools.islice(workload.train_batches(32, 0), 4))
    _steps(going, workload, model, iter(batches[:2]), 2)
    buffer = io.BytesIO()
    try:
        torch.save({"model": model.state_dict(), "submission": going.state_dict()}, buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
    except Exception as error:  # what checkpoints would hit
        raise CheckFailed(f"state_dict() cannot be saved and loaded as a checkpoint (torch.save, then torch.load "
                          f"with weights_only=True): {type(error).__name__}: {load_failure(error)}") from None
    resumed_model = copy.deepcopy(model)
    resumed_model.load_state_dict(saved["model"])
    resumed = cls(resumed_model, hparams, workload.public_info(32, resumed_model))
    resumed.load_state_dict(saved["submission"])
    _steps(going, workload, model, iter(batches[2:]), 2)
    _steps(resumed, workload, resumed_model, iter(batches[2:]), 2)
    differ = [name for (name, a), b in zip(model.named_parameters(), resumed_model.parameters())
              if not torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)]  # exactly equal (a diverged nan too)
    if differ:
        cause = ("update() does not clear the gradients before its backward: each step adds to those the last "
                 "one left (a resumed run starts without them). Call optimizer.zero_grad() (or set p.grad = None) "
                 "before loss.backward()" if _adds_to_old_gradients(cls, hparams, workload, batches[0]) else
                 "state_dict() misses some state (step counters, buffers kept outside a torch optimizer): override "
                 "state_dict/load_state_dict")
        raise CheckFailed(f"after load_state_dict, two more steps differ from the uninterrupted run in {differ[0]} "
                          f"(and {len(differ) - 1} more): {cause}")
    return "2 steps, save, load, 2 more: the same parameters as without the interruption"


def _adds_to_old_gradients(cls: type[Submission], hparams: TrainingHparams, workload: Workload, batch: Any) -> bool:
    """Whether one update moves the parameters otherwise when gradients are left on them from before
    (as a previous update that does not clear them leaves them) than when they are not."""
    moved = []
    for left in (False, True):
        torch.manual_seed(0)
        model = workload.build_model(0)
        submission = cls(model, hparams, workload.public_info(32, model))
        for parameter in model.parameters():
            parameter.grad = torch.full_like(parameter, 1e3) if left else None
        _steps(submission, workload, model, iter([batch]), 1)
        moved.append([p.detach().clone() for p in model.parameters()])
    return any(not torch.equal(a, b) for a, b in zip(*moved))


def smoke_trial(cfg: DictConfig, workload: str, results: str, seconds: float, overrides: list[str]) -> str:
    """A whole trial of the smoke size ends normally (reached or not; diverged only on Rosenbrock)."""
    from harness.core.trial import run_trial

    trial = compose_config("trial", [*overrides, f"workload={workload}", "workload.size=smoke",
                                     f"results={results}", f"max_runtime_s={seconds}", "progress=false",
                                     "checkpoint_every_s=null", "device=cpu"])
    summary = run_trial(trial)
    status = summary["status"]
    if status == "failed":
        raise CheckFailed(f"the trial failed in {summary.get('error_in')}: "
                          f"{(summary.get('error') or '').strip().splitlines()[-1:]}")
    if status == "diverged" and workload not in MAY_DIVERGE:
        raise CheckFailed("the loss diverged with the default hyperparameters")
    return f"{status} after {summary['steps']} steps"


def run_check(overrides: list[str], out: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every check for the submission the overrides choose; prints one line per check."""
    out = out or (lambda text: print(text, file=sys.stderr, flush=True))
    own, rest = split_overrides(overrides, CheckConfig)
    settings = compose_config("check", own)
    given, workload_settings, rest = chosen_workloads(settings, rest)
    cfg = compose_config("trial", rest)
    if not settings.trial_seconds > 0:
        raise UserError(f"trial_seconds={settings.trial_seconds}: each smoke trial needs a budget above 0 s "
                        f"(e.g. trial_seconds=20).")
    workloads = {text: smoke_config(text, workload_settings) for text in given}  # an unknown one: before any check
    name = str(cfg.submission.name)
    out(f"[check] {name}" + (f" from {cfg.submission.source}" if cfg.submission.get("source") else "")
        + (f"; config: {cfg.submission.config_from}" if cfg.submission.get("config_from") else ""))
    results: list[dict[str, Any]] = []

    def check(title: str, function: Callable[..., str | Any], *args: Any) -> None:
        started = time.perf_counter()
        try:
            detail, passed = function(*args), True
            detail = detail if isinstance(detail, str) else "ok"
        except CheckFailed as error:
            detail, passed = str(error), False
        except Exception as error:  # the submission's code raised: that is a failed check too
            detail, passed = f"raised {type(error).__name__}: {error}", False
        results.append({"check": title, "passed": passed, "detail": detail})
        out(f"  {'PASS' if passed else 'FAIL'}  {title} ({time.perf_counter() - started:.1f} s): {detail}")

    check("default hyperparameters build", lambda: f"{len(defaults_build(cfg).as_dict())} hyperparameters")
    check("search space", search_space_valid, cfg)
    if results[0]["passed"]:
        first = smoke_workload(given[0], workload_settings)
        check(f"updates parameters ({first.name} smoke)", updates_parameters, cfg, first)
        check(f"resumes exactly from state_dict ({first.name} smoke)", resumes_exactly, cfg, first)
        with tempfile.TemporaryDirectory(prefix="optbench-check-") as folder:
            for text, workload_cfg in workloads.items():
                check(f"smoke trial on {workload_cfg.name}", smoke_trial, cfg, text, folder, settings.trial_seconds,
                      [*rest, *workload_settings])
    else:  # each of them would fail the same way, once per workload
        out("  (not run: the checks that train, as they train with the default hyperparameters)")
    failed = [r["check"] for r in results if not r["passed"]]
    out(f"[check] {name}: {len(results) - len(failed)} of {len(results)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else ""))
    return {"submission": name, "passed": not failed, "checks": results}
