"""Registries of workloads and submissions, discovered by convention.

A workload is a module ``workloads/<name>.py`` exporting ``WORKLOAD`` with a config
``configs/workload/<name>.yaml``; a submission is ``submissions/<name>.py`` exporting
``SUBMISSION`` with ``configs/submission/<name>.yaml``. Modules starting with ``_`` are helpers.
Unknown names fail loudly with the list of valid ones. Submissions from outside the repository
(a module, a file, an installed entry point) come through :mod:`harness.config.plugins`.
"""

from __future__ import annotations

import importlib

from omegaconf import DictConfig

from harness.config.names import submission_names, workload_names
from harness.errors import UserError
from harness.specs import SizeSpec
from harness.submission import Submission
from harness.workload import Workload


def _unknown(kind: str, name: str, valid: list[str]) -> UserError:
    return UserError(f"Unknown {kind} '{name}'. Valid {kind}s: {', '.join(valid)}.")


def workload_class(name: str, source: str | None = None) -> type[Workload]:
    """The Workload subclass registered as ``name``, or the external one at ``source`` (a trial
    config's ``workload.source``: :mod:`harness.config.plugins`)."""
    if source:
        from harness.config.plugins import Source, load_class

        return load_class(Source.from_text(source, "workload"), Workload)
    if name not in workload_names():
        raise _unknown("workload", name, workload_names())
    cls = importlib.import_module(f"workloads.{name}").WORKLOAD
    if not (isinstance(cls, type) and issubclass(cls, Workload)):
        raise TypeError(f"workloads.{name}.WORKLOAD must be a Workload subclass, got {cls!r}")
    return cls


def submission_class(name: str, source: str | None = None) -> type[Submission]:
    """The Submission subclass registered as ``name``, or the external one at ``source`` (a trial
    config's ``submission.source``: :mod:`harness.config.plugins`)."""
    if source:
        from harness.config.plugins import Source, load_class

        return load_class(Source.from_text(source, "submission"), Submission)
    if name not in submission_names():
        raise _unknown("submission", name, submission_names())
    cls = importlib.import_module(f"submissions.{name}").SUBMISSION
    if not (isinstance(cls, type) and issubclass(cls, Submission)):
        raise TypeError(f"submissions.{name}.SUBMISSION must be a Submission subclass, got {cls!r}")
    return cls


def planned_workload(trial: DictConfig) -> Workload:
    """A trial config's workload as constructed on the CPU, loading no data: its size's spec in force
    (the selected variant's overrides applied), model and options, for planning and identities."""
    import torch

    return workload_class(trial.workload.name, trial.workload.get("source"))(trial.workload, torch.device("cpu"))


def effective_spec(trial: DictConfig) -> SizeSpec:
    """The size spec in force for a trial config: its size's, with the selected variant's
    overrides applied (as the workload itself computes it, on the CPU, loading no data)."""
    return planned_workload(trial).spec
