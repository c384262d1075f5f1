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
    keys; values compared as :func:`digest` sees them, JSON text, so 1 and 1.0 differ): those both
    hold first (the likely cause), then those only one holds; at most ``limit``, then how many more."""
    def flat(value: Any, prefix: str = "") -> dict[str, str]:
        if not isinstance(value, dict) or (not value and prefix):  # an empty mapping inside is a value
            return {prefix.rstrip("."): json.dumps(value, sort_keys=True)}
        return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}

    def shown(text: str | None) -> str:
        return "(absent)" if text is None else text if len(text) <= 60 else text[:57] + "..."

    before, after = flat(recorded), flat(ours)
    keys = sorted((k for k in before.keys() | after.keys() if before.get(k) != after.get(k)),
                  key=lambda k: (k not in before or k not in after, k))
    lines = [f"{k}: {shown(before.get(k))} -> {shown(after.get(k))}" for k in keys[:limit]]
    return "; ".join(lines) + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


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
