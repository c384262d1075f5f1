"""Small facts stated once: how configurations are hashed into names, how times are written in
records, and how a metric's direction reads. Used by every layer (a contract module: no imports
of ours)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any


def digest(value: Any, length: int = 12) -> str:
    """The first ``length`` hex digits of the sha256 of ``value`` as canonical JSON (keys sorted):
    the same configuration always gives the same name, whatever order its keys came in."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]


def differences(recorded: dict[str, Any], ours: dict[str, Any], limit: int = 5) -> str:
    """The settings in which two nested configurations differ, as ``key: recorded -> ours`` (dotted
    keys, at most ``limit`` of them, then how many more): what makes their digests differ."""
    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(value, dict):
            return {prefix: value}
        return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()} or {prefix: {}}

    before, after = flat(recorded), flat(ours)
    absent = object()
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k, absent) != after.get(k, absent))
    shown = [f"{k.rstrip('.')}: {json.dumps(before.get(k, '(absent)'))} -> {json.dumps(after.get(k, '(absent)'))}"
             for k in keys[:limit]]
    return "; ".join(shown) + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


def utc_timestamp(date_only: bool = False) -> str:
    """Now, in UTC, as records write it: ``2026-11-30T21:48:28Z`` (or ``2026-11-30``)."""
    return time.strftime("%Y-%m-%d" if date_only else "%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def workload_label(name: str, variant: str) -> str:
    """A workload's name in records and tables: ``<name>``, or ``<name>.<variant>`` for a variant."""
    return name if variant == "base" else f"{name}.{variant}"


def relation(higher_is_better: bool) -> str:
    """How a value meets a target: ``>=`` for a metric where higher is better, else ``<=``."""
    return ">=" if higher_is_better else "<="


def meets(value: float, target: float, higher_is_better: bool) -> bool:
    """Whether ``value`` meets ``target`` in the metric's direction (a nan never does)."""
    return value >= target if higher_is_better else value <= target


def better(value: float, than: float, higher_is_better: bool) -> bool:
    """Whether ``value`` is strictly better than ``than`` in the metric's direction."""
    return value > than if higher_is_better else value < than
