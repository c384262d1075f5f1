"""Search spaces: every malformed space is a UserError naming the entry and what is wrong; points of
the unit cube land where the scaling says."""

from __future__ import annotations

import math
from typing import Any

import pytest

from harness.config.registry import submission_class
from harness.config.search_space import point_from_unit, validate_search_space
from harness.errors import UserError

HPARAMS = submission_class("adamw").Hparams
GOOD = {
    "lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
    "weight_decay": {"min": 0.0, "max": 0.5, "scaling": "linear"},
    "beta2": {"feasible_points": [0.99, 0.999]},
}

BAD_SPACES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown name", {"momentum": {"min": 0.1, "max": 0.9, "scaling": "linear"}},
     r"'momentum': not a hyperparameter\. Valid: batch_size, beta1, beta2, decay,"),
    ("min equals max", {"lr": {"min": 0.1, "max": 0.1, "scaling": "linear"}},
     r"'lr': min \(0\.1\) must be smaller than max \(0\.1\)"),
    ("min above max", {"lr": {"min": 0.2, "max": 0.1, "scaling": "linear"}}, r"min \(0\.2\) must be smaller than max"),
    ("log from zero", {"weight_decay": {"min": 0.0, "max": 0.5, "scaling": "log"}},
     r"'weight_decay': a log-scaled range needs min > 0, got 0\.0"),
    ("log from below zero", {"lr": {"min": -1.0, "max": 0.5, "scaling": "log"}}, r"needs min > 0, got -1\.0"),
    ("unknown scaling", {"lr": {"min": 0.1, "max": 0.5, "scaling": "exp"}},
     r"'lr': scaling must be one of log, linear, got 'exp'"),
    ("empty feasible points", {"beta2": {"feasible_points": []}}, r"'beta2': feasible_points must be a non-empty list"),
    ("feasible points not a list", {"beta2": {"feasible_points": 0.99}}, r"feasible_points must be a non-empty list"),
    ("feasible points a string", {"decay": {"feasible_points": "cosine"}}, r"feasible_points must be a non-empty list"),
    ("a bad entry after feasible points", {**GOOD, "eps": {"min": 1e-8, "max": 1e-8, "scaling": "log"}},
     r"'eps': min \(1e-08\) must be smaller than max"),
    ("missing scaling", {"lr": {"min": 0.1, "max": 0.5}},
     r"'lr': give either \{min, max, scaling\} or \{feasible_points\}, got \['max', 'min'\]"),
    ("an extra key", {"lr": {"min": 0.1, "max": 0.5, "scaling": "log", "step": 2}},
     r"give either \{min, max, scaling\} or \{feasible_points\}, got \['max', 'min', 'scaling', 'step'\]"),
    ("both forms", {"lr": {"min": 0.1, "max": 0.5, "scaling": "log", "feasible_points": [0.1]}},
     r"give either \{min, max, scaling\} or \{feasible_points\}"),
    ("an entry that is a number", {"lr": 0.1},
     r"'lr': give either \{min, max, scaling\} or \{feasible_points\}, got 0\.1"),
    ("an entry that is a list", {"lr": [0.1, 0.2]}, r"'lr': give either .* got \[0\.1, 0\.2\]"),
    ("a bound that is not a number", {"lr": {"min": "small", "max": 0.5, "scaling": "log"}},
     r"'lr': min and max must be numbers, got 'small' and 0\.5"),
    ("a missing bound", {"lr": {"min": None, "max": 0.5, "scaling": "log"}}, r"'lr': min and max must be numbers"),
    ("an infinite bound", {"lr": {"min": 0.1, "max": math.inf, "scaling": "linear"}},
     r"'lr': min and max must be finite, got 0\.1 and inf"),
]


@pytest.mark.parametrize(("space", "message"), [(s, m) for _, s, m in BAD_SPACES], ids=[n for n, _, _ in BAD_SPACES])
def test_a_bad_space_is_a_user_error_that_says_what_is_wrong(space: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message) as raised:
        validate_search_space(space, HPARAMS, "adamw")
    assert str(raised.value).startswith("search space of adamw, ")


def test_good_spaces_pass() -> None:
    validate_search_space(GOOD, HPARAMS, "adamw")
    validate_search_space({}, HPARAMS, "adamw")
    validate_search_space({"beta2": {"feasible_points": (0.9,)}, "lr": {"min": 1, "max": 2, "scaling": "log"}},
                          HPARAMS, "adamw")


def test_points_from_the_unit_cube() -> None:
    space = {**GOOD, "decay": {"feasible_points": ["constant", "cosine", "linear"]}}
    low = point_from_unit(space, [0.0, 0.0, 0.0, 0.0])
    assert low == {"lr": pytest.approx(1e-4), "weight_decay": 0.0, "beta2": 0.99, "decay": "constant"}
    middle = point_from_unit(space, [0.5, 0.5, 0.5, 0.5])
    assert middle == {"lr": pytest.approx(10 ** -2.5), "weight_decay": 0.25, "beta2": 0.999, "decay": "cosine"}
    high = point_from_unit(space, [0.999999, 0.999999, 0.999999, 0.999999])
    assert high["lr"] == pytest.approx(1e-1, rel=1e-4) and high["weight_decay"] == pytest.approx(0.5, rel=1e-4)
    assert high["beta2"] == 0.999 and high["decay"] == "linear"
    assert point_from_unit(space, [0.25, 0.1, 0.49, 0.34])["decay"] == "cosine"  # thirds: 0.34 is the second
    assert point_from_unit(space, [0.25, 0.1, 0.49, 1.0])["decay"] == "linear"  # u = 1 stays in range
    assert point_from_unit({"lr": {"min": 2, "max": 4, "scaling": "linear"}}, [0.25]) == {"lr": 2.5}


def test_a_point_needs_one_coordinate_per_entry() -> None:
    with pytest.raises(ValueError, match="need 3 coordinates, got 2"):
        point_from_unit(GOOD, [0.1, 0.2])
