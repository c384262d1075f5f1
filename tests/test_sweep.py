"""Sweep planning: seeded quasirandom points in fixed (study, trial) slots, rulesets, errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.sweep_file import write_sweep
from harness.errors import UserError
from harness.orchestration.sweep import SweepSettings, plan_sweep, quasirandom_points

REPO = Path(__file__).resolve().parent.parent
SPACE = {
    "lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
    "weight_decay": {"min": 0.0, "max": 0.5, "scaling": "linear"},
    "beta2": {"feasible_points": [0.99, 0.999]},
}
PLAN_SCRIPT = """
import json, sys
from harness.orchestration.sweep import SweepSettings, plan_sweep
sweep = plan_sweep(SweepSettings(search_seed=int(sys.argv[1])),
                   ["workload=fashion_mnist", "submission=adamw", "workload.size=smoke", "results=" + sys.argv[2]])
print(json.dumps([[t["study"], t["trial"], t["seed"], t["hparams"]] for t in sweep["trials"]]))
"""


def plan(tmp_path: Path, **settings) -> dict:
    overrides = ["workload=fashion_mnist", "submission=adamw", "workload.size=smoke", f"results={tmp_path}"]
    return plan_sweep(SweepSettings(**settings), overrides)


def slots(sweep: dict) -> list:
    return [[t["study"], t["trial"], t["seed"], t["hparams"]] for t in sweep["trials"]]


def test_same_seed_same_points_in_another_process(tmp_path: Path) -> None:
    here = slots(plan(tmp_path))
    out = subprocess.run([sys.executable, "-c", PLAN_SCRIPT, "0", str(tmp_path)], check=True, capture_output=True,
                         text=True, cwd=REPO).stdout
    assert json.loads(out.strip().splitlines()[-1]) == json.loads(json.dumps(here))
    assert [s[:2] for s in here] == [[study, trial] for study in range(3) for trial in range(5)]


def test_another_seed_gives_other_points_and_seeds(tmp_path: Path) -> None:
    a, b = plan(tmp_path), plan(tmp_path, search_seed=1)
    assert [t["hparams"] for t in a["trials"]] != [t["hparams"] for t in b["trials"]]
    assert {t["seed"] for t in a["trials"]}.isdisjoint({t["seed"] for t in b["trials"]})
    assert a["dir"] != b["dir"]


def test_points_respect_bounds_scaling_and_feasible_sets() -> None:
    points = quasirandom_points(SPACE, 64, seed=3)
    lrs = [p["lr"] for p in points]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    # log scaling: half the points in each half of the exponent range (Halton is evenly spread)
    below = sum(math.log10(lr) < -2.5 for lr in lrs)
    assert 28 <= below <= 36
    # a linear scale would put ~0.5% of the points below 10**-2.5
    wds = [p["weight_decay"] for p in points]
    assert all(0.0 <= w <= 0.5 for w in wds) and abs(sum(wds) / len(wds) - 0.25) < 0.03
    assert {p["beta2"] for p in points} == {0.99, 0.999}


def test_the_points_of_a_study_differ(tmp_path: Path) -> None:
    sweep = plan(tmp_path)
    for study in range(3):
        points = [json.dumps(t["hparams"], sort_keys=True) for t in sweep["trials"] if t["study"] == study]
        assert len(points) == 5 and len(set(points)) == 5
    assert len({t["seed"] for t in sweep["trials"]}) == 15


def test_search_space_defaults_fill_the_rest(tmp_path: Path) -> None:
    sweep = plan(tmp_path, studies=1, trials=2)
    config = sweep["trials"][0]["config"]
    assert config["submission"]["hparams"]["batch_size"] == 128  # not searched: the default
    assert config["submission"]["hparams"]["lr"] == sweep["trials"][0]["hparams"]["lr"]
    assert config["study"] == 0 and config["trial"] == 0 and config["ruleset"] == "external"
    assert config["record_dir"].endswith("study0/trial0")


def test_self_tuning_runs_defaults_with_a_longer_budget(tmp_path: Path) -> None:
    sweep = plan(tmp_path, ruleset="self", studies=2, self_tuning_factor=3.0)
    assert sweep["trials_per_study"] == 1 and len(sweep["trials"]) == 2
    assert all(t["hparams"] == {} for t in sweep["trials"])
    assert sweep["budget_s"] == 3 * 20  # the smoke budget is 20 s
    assert all(t["config"]["max_runtime_s"] == 60 for t in sweep["trials"])


def test_bad_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Valid rulesets: external, self"):
        plan(tmp_path, ruleset="random")
    with pytest.raises(UserError, match="at least 1"):
        plan(tmp_path, studies=0)
    with pytest.raises(UserError, match="Unknown workload 'nope'"):
        plan_sweep(SweepSettings(), ["workload=nope"])


def test_the_sweep_file_is_written_once(tmp_path: Path) -> None:
    sweep = plan(tmp_path, studies=1, trials=2)
    path = write_sweep(sweep)
    created = json.loads(path.read_text())["created_at"]
    write_sweep(plan(tmp_path, studies=1, trials=2))
    assert json.loads(path.read_text())["created_at"] == created
