"""AlgoPerf-format search spaces: ``{min, max, scaling: log|linear}`` or ``{feasible_points: [...]}``.

This module validates a space against a submission's hyperparameters and maps points of the
unit cube onto it (the quasirandom sweep draws those points).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import UserError
from harness.hparam_types import field_types
from harness.submission import TrainingHparams, computed_fields, input_fields

SCALINGS = ("log", "linear")


def validate_search_space(space: Mapping[str, Any], hparams_cls: type[TrainingHparams], who: str) -> None:
    """Raise UserError unless every entry names a hyperparameter and is well formed."""
    names, computed = set(input_fields(hparams_cls)), computed_fields(hparams_cls)
    types = field_types(hparams_cls)
    for name, entry in space.items():
        where = f"search space of {who}, '{name}'"
        if name in computed:
            raise UserError(f"{where}: {hparams_cls.__name__} computes it from its other fields (init=False, in its "
                            f"__post_init__), so it cannot be searched. Search the fields it is computed from instead.")
        if name not in names:
            raise UserError(f"{where}: not a hyperparameter. Valid: {', '.join(sorted(names))}.")
        if not isinstance(entry, Mapping):
            raise UserError(f"{where}: give either {{min, max, scaling}} or {{feasible_points}}, got {entry!r}.")
        keys = set(entry)
        if keys == {"feasible_points"}:
            points = entry["feasible_points"]
            if isinstance(points, (str, bytes)) or not isinstance(points, Sequence) or not points:
                raise UserError(f"{where}: feasible_points must be a non-empty list.")
            continue
        if keys != {"min", "max", "scaling"}:
            raise UserError(f"{where}: give either {{min, max, scaling}} or {{feasible_points}}, got {sorted(keys)}.")
        if types.get(name) in (int, "int"):
            raise UserError(f"{where}: an integer hyperparameter, and a {{min, max}} range draws real numbers: list "
                            f"the values to try instead, as {{feasible_points: [...]}} (e.g. [16, 32, 64, 128]).")
        try:
            lo, hi = float(entry["min"]), float(entry["max"])
        except (TypeError, ValueError):
            bounds = f"{entry['min']!r} and {entry['max']!r}"
            raise UserError(f"{where}: min and max must be numbers, got {bounds}.") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise UserError(f"{where}: min and max must be finite, got {lo} and {hi}.")
        scaling = entry["scaling"]
        if scaling not in SCALINGS:
            raise UserError(f"{where}: scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}.")
        if not lo < hi:
            raise UserError(f"{where}: min ({lo}) must be smaller than max ({hi}).")
        if scaling == "log" and lo <= 0:
            raise UserError(f"{where}: a log-scaled range needs min > 0, got {lo}.")


def corner_points(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every corner of the space, its centre, and each feasible point with the rest at the centre:
    where a range's ends meet the other ranges' ends, the points most likely to be invalid settings
    (``optbench check`` and a sweep's plan test them; the sweep draws any other point)."""
    units = [*itertools.product((0.0, 0.999), repeat=len(space)), [0.5] * len(space)]
    points = [point_from_unit(space, unit) for unit in units]
    centre = points[-1]
    for name, entry in space.items():
        points += [{**centre, name: value} for value in entry.get("feasible_points", ())]
    return points


def point_from_unit(space: Mapping[str, Any], unit: Sequence[float]) -> dict[str, Any]:
    """Map a point of [0, 1)^d (one coordinate per entry, in the space's order) onto the space."""
    if len(unit) != len(space):
        raise ValueError(f"need {len(space)} coordinates, got {len(unit)}")
    point: dict[str, Any] = {}
    for (name, entry), u in zip(space.items(), unit):
        if "feasible_points" in entry:
            options = list(entry["feasible_points"])
            point[name] = options[min(int(u * len(options)), len(options) - 1)]
        elif entry["scaling"] == "log":
            lo, hi = math.log(float(entry["min"])), math.log(float(entry["max"]))
            point[name] = math.exp(lo + float(u) * (hi - lo))
        else:
            lo, hi = float(entry["min"]), float(entry["max"])
            point[name] = lo + float(u) * (hi - lo)
    return point
