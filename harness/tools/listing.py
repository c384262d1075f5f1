"""``optbench list``: the registered workloads (sizes, targets, budgets) and submissions (default
hyperparameters), the built-in ones and those installed packages declare (harness/config/plugins.py)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from harness.errors import OptbenchWarning, UserError
from harness.identity import relation as meets_as


def run_list(overrides: list[str]) -> None:
    """``optbench list``: the registered workloads (sizes, targets, budgets) and submissions (defaults).

    An installed plugin that cannot be loaded (its module fails to import, its config is wrong), or
    that is named as a built-in one (which wins: it cannot be used), is listed as such and the rest
    still are; the command then fails naming each of them."""
    from harness.config.names import submission_names, workload_names

    if overrides:
        raise UserError("optbench list takes no settings.")
    broken: list[str] = []
    with warnings.catch_warnings():  # a clash a built-in's name would warn of is listed, and named below
        warnings.simplefilter("ignore", OptbenchWarning)
        for kind, builtin, describe in (("workload", workload_names(), _workload_lines),
                                        ("submission", submission_names(), _submission_lines)):
            print(f"{kind}s:")
            broken += _list_kind(kind, builtin, describe)
    if broken:
        raise UserError(f"{len(broken)} of them cannot be loaded (the rest are listed above):\n  "
                        + "\n  ".join(broken))


def _list_kind(kind: str, builtin: list[str], describe: Callable[[str, str], list[str]]) -> list[str]:
    """Print ``optbench list``'s lines of one kind: the built-ins, the usable entry points, then those
    named as a built-in or declared by several packages; what cannot be loaded or used, as
    ``"<kind> <name>: why"``."""
    from harness.config.plugins import ambiguous_entry_points, clashing_entry_points, entry_points

    broken: list[str] = []
    installed = entry_points(kind)
    for name in [*builtin, *sorted(installed)]:
        where = f" (installed: {installed[name].text()})" if name in installed else ""
        try:
            lines = describe(name, where)
        except UserError as error:
            print(f"  {name:<16} cannot be loaded{where}")
            broken.append(f"{kind} {name}: {error}")
            continue
        print("\n".join(lines))
    for name, (source, clash) in sorted(clashing_entry_points(kind).items()):
        print(f"  {name:<16} cannot be loaded (installed: {source.text()}): a built-in {kind}'s name")
        broken.append(f"{kind} {name}: {clash}")
    for name, ambiguity in sorted(ambiguous_entry_points(kind).items()):
        print(f"  {name:<16} cannot be loaded: declared by several installed packages")
        broken.append(f"{kind} {name}: {ambiguity}")
    return broken


def _workload_lines(name: str, where: str) -> list[str]:
    """``optbench list``'s lines for one workload: a line per size, then one per variant."""
    from harness.config.compose import compose_config

    cfg = compose_config("trial", [f"workload={name}"]).workload
    relation = meets_as(_higher(name))
    lines = [f"  {name:<16} size {size:<6} model {cfg.model:<6} target {relation} {spec.target:<8g} "
             f"budget {spec.max_runtime_s:g}s  step_hint {spec.step_hint}{_provisional(spec)}{where}"
             for size, spec in cfg.sizes.items()]
    for variant, vspec in cfg.variants.items():
        targets = ", ".join(f"{size} {relation} {v['target']:g}{_provisional(v)}" for size, v in vspec.sizes.items())
        lines.append(f"  {name + '.' + variant:<16} (workload.variant={variant}) {vspec.description}; "
                     f"targets {targets}")
    return lines


def _provisional(spec: Any) -> str:
    """`` (provisional)`` for a size whose numbers its config calls provisional (not measured for it:
    copied from another size or a reference), so a listing does not present them as calibrated."""
    note = str((spec.get("calibration") or {}).get("note", ""))
    return " (provisional)" if "provisional" in note.lower() else ""


def _submission_lines(name: str, where: str) -> list[str]:
    """``optbench list``'s line for one submission: its batch size and default hyperparameters (for an
    installed one, its class's defaults of those its YAML does not set: a trial runs with them too)."""
    from harness.config.compose import compose_config
    from harness.config.described import described_submission
    from harness.config.plugins import declared_defaults

    config = compose_config("trial", [f"submission={name}"]).submission
    hparams = dict(config.hparams)
    if config.get("source"):
        defaults = declared_defaults(described_submission(config.name, config.source))
        hparams.update({key: value for key, value in defaults.items() if key not in hparams})
    shown = ", ".join(f"{k}={v}" for k, v in hparams.items() if k != "batch_size")
    return [f"  {name:<16} batch {hparams.get('batch_size')}: {shown}{where}"]


def _higher(workload: str) -> bool:
    from harness.config.plugins import entry_points
    from harness.config.registry import workload_class

    installed = entry_points("workload")
    return workload_class(workload, installed[workload].text() if workload in installed else None).higher_is_better
