"""Sweep planning: seeded quasirandom points in fixed (study, trial) slots, rulesets, errors."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.config.schema import TrialConfig
from harness.core.records import DamagedRecord
from harness.core.sweep_file import load_sweep, needs_run, trial_config, trial_state, unfinished, write_sweep
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


def plan(tmp_path: Path, overrides: tuple[str, ...] | list[str] = (), **settings) -> dict:
    base = ["workload=fashion_mnist", "submission=adamw", "workload.size=smoke", f"results={tmp_path}"]
    return plan_sweep(SweepSettings(**settings), [*base, *overrides])


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


@pytest.mark.parametrize("override, message", [
    ("compile=maybe", r"compile=maybe is not valid"),
    ("workload.sizes.smoke.precision=fp16", r"precision=fp16 .* Valid precisions"),
    ("nproc=3", r"batch_size=\d+ does not split evenly over nproc=3"),
])
def test_a_setting_no_trial_can_run_with_is_refused_when_planned(tmp_path: Path, override: str, message: str) -> None:
    """One clear error before the sweep is written, not a failure per trial."""
    with pytest.raises(UserError, match=message):
        plan(tmp_path, [override, "submission.hparams.batch_size=128"])


def test_the_sweep_file_is_written_once(tmp_path: Path) -> None:
    sweep = plan(tmp_path, studies=1, trials=2)
    path = write_sweep(sweep)
    created = json.loads(path.read_text())["created_at"]
    write_sweep(plan(tmp_path, studies=1, trials=2))
    assert json.loads(path.read_text())["created_at"] == created


def test_a_kept_plan_runs_the_charged_settings_the_command_asks(tmp_path: Path) -> None:
    """A launch that failed (a wrong partition: nothing ran) left its sweep.json, planned with
    threads=2 isolation=process; the next command, asking threads=1, ran its trials with the plan's
    settings and exited 0, and the one after was refused for settings it had not chosen."""
    path = write_sweep(plan(tmp_path, ["threads=2", "isolation=process"], studies=1, trials=2))
    write_sweep(plan(tmp_path, ["threads=1"], studies=1, trials=2))  # nothing ran: planned anew
    assert {(t["config"]["threads"], t["config"]["isolation"]) for t in load_sweep(path.parent)["trials"]} == \
        {(1, "inprocess")}
    record = path.parent / "study0" / "trial0"
    record.mkdir(parents=True)
    (record / "manifest.json").write_text("{}")  # a trial has started: its plan is kept (tune refuses the command)
    write_sweep(plan(tmp_path, ["threads=2"], studies=1, trials=2))
    assert {t["config"]["threads"] for t in load_sweep(path.parent)["trials"]} == {1}


def test_the_sweep_plan_round_trip(tmp_path: Path) -> None:
    sweep = plan(tmp_path, studies=2, trials=2)
    folder = write_sweep(sweep).parent
    assert str(folder) == sweep["dir"]
    loaded = load_sweep(folder)
    assert loaded["dir"] == str(folder.resolve()) and loaded["sweep_id"] == sweep["sweep_id"]
    assert [(t["study"], t["trial"], t["seed"], t["hparams"]) for t in loaded["trials"]] == \
        [(t["study"], t["trial"], t["seed"], t["hparams"]) for t in sweep["trials"]]
    for entry in loaded["trials"]:
        where = folder.resolve() / f"study{entry['study']}" / f"trial{entry['trial']}"
        assert entry["record_dir"] == entry["config"]["record_dir"] == str(where)
        assert entry["config"]["results"] == str(tmp_path.resolve())
        cfg = trial_config(entry)  # the typed config a job runs
        assert OmegaConf.get_type(cfg) is TrialConfig
        assert (cfg.study, cfg.trial, cfg.seed, cfg.ruleset) == (entry["study"], entry["trial"], entry["seed"],
                                                                 "external")
        assert cfg.submission.hparams.lr == entry["hparams"]["lr"] and cfg.record_dir == str(where)
    stored = json.loads((folder / "sweep.json").read_text())
    assert "dir" not in stored and all(not Path(t["record_dir"]).is_absolute() for t in stored["trials"])
    assert all(not Path(t["config"]["results"]).is_absolute() for t in stored["trials"])


def test_a_moved_sweep_is_read_where_it_is_now(tmp_path: Path) -> None:
    sweep = plan(tmp_path / "a", studies=1, trials=2)
    folder = write_sweep(sweep).parent
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = load_sweep(tmp_path / "b" / folder.relative_to(tmp_path / "a"))
    assert moved["dir"].startswith(str((tmp_path / "b").resolve()))
    assert all(t["record_dir"].startswith(moved["dir"]) for t in moved["trials"])
    assert all(t["config"]["results"] == str((tmp_path / "b").resolve()) for t in moved["trials"])


def test_another_plan_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    sweep = plan(tmp_path, studies=1, trials=2)
    path = write_sweep(sweep)
    before = path.read_text()
    other = {**sweep, "trials": [{**t, "seed": t["seed"] + 1} for t in sweep["trials"]]}
    with pytest.raises(UserError, match="describes another plan than this command; it is left untouched"):
        write_sweep(other)
    assert path.read_text() == before


def test_a_missing_or_damaged_sweep_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"No sweep\.json in"):
        load_sweep(tmp_path)
    sweep = plan(tmp_path, studies=1, trials=1)
    path = write_sweep(sweep)
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "trials": ["not an entry"]}))
    with pytest.raises(DamagedRecord, match=r"trials\[0\] should be an object"):
        load_sweep(path.parent)
    path.write_text(json.dumps({**stored, "trials": [{**stored["trials"][0], "seed": "7"}]}))
    with pytest.raises(DamagedRecord, match=r"trials\[0\]\.'seed' should be int"):
        load_sweep(path.parent)
    path.write_text(json.dumps({k: v for k, v in stored.items() if k != "studies"}))
    with pytest.raises(DamagedRecord, match="'studies' should be int, found missing"):
        load_sweep(path.parent)


def _manifest(status: str, **summary) -> dict:
    manifest = {"workload": "fashion_mnist", "size": "smoke", "submission": "adamw", "seed": 1, "status": status,
                "config_hash": "abc", "metric": "accuracy", "higher_is_better": True, "target": 0.5,
                "max_runtime_s": 20.0}
    if status != "running":
        manifest["summary"] = {"status": status, "time_to_target_s": None, "steps": 3, "submission_time_s": 1.0,
                               **summary}
    return manifest


def test_trial_states_and_which_trials_are_unfinished(tmp_path: Path) -> None:
    sweep = plan(tmp_path, studies=2, trials=4)
    folder = write_sweep(sweep).parent
    loaded = load_sweep(folder)
    dirs = [Path(t["record_dir"]) for t in loaded["trials"]]
    manifests = [None, _manifest("running"), _manifest("reached"), _manifest("not_reached"), _manifest("pruned"),
                 _manifest("failed", error_in="harness"), _manifest("failed", error_in="submission.update"), "{torn"]
    for where, manifest in zip(dirs, manifests):
        if manifest is not None:
            where.mkdir(parents=True)
            (where / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    assert [trial_state(d) for d in dirs] == ["pending", "running", "reached", "not_reached", "pruned", "failed",
                                              "failed", "damaged"]
    assert [needs_run(d) for d in dirs] == [True, True, False, False, False, True, False, False]
    assert [t["index"] for t in unfinished(loaded)] == [0, 1, 5]


def test_the_device_and_the_variant_are_part_of_the_sweep(tmp_path: Path) -> None:
    cpu = plan(tmp_path, studies=1, trials=1)
    cuda = plan_sweep(SweepSettings(studies=1, trials=1),
                      ["workload=fashion_mnist", "submission=adamw", "workload.size=smoke", f"results={tmp_path}",
                       "device=cuda"])
    assert cpu["sweep_id"] != cuda["sweep_id"] and cpu["dir"] != cuda["dir"]
    gelu = plan(tmp_path, studies=1, trials=1, overrides=["workload.variant=gelu"])
    assert gelu["workload"] == "fashion_mnist.gelu" and cpu["workload"] == "fashion_mnist"
    assert Path(gelu["dir"]).parent.parent.name == "fashion_mnist.gelu-smoke"
    assert Path(cpu["dir"]).parent.parent.name == "fashion_mnist-smoke"
    assert Path(cpu["dir"]).parent.name == "adamw" and Path(cpu["dir"]).name == f"external-{cpu['sweep_id']}"


def test_an_external_sweep_keeps_the_trial_budget_it_was_given(tmp_path: Path) -> None:
    sweep = plan(tmp_path, studies=1, trials=1, overrides=["max_runtime_s=7.5"])
    assert sweep["budget_s"] == 7.5 and sweep["trials"][0]["config"]["max_runtime_s"] == 7.5
    assert plan(tmp_path, studies=1, trials=1)["budget_s"] == 20  # the smoke size's own
    assert sweep["sweep_id"] != plan(tmp_path, studies=1, trials=1)["sweep_id"]


def test_one_trial_per_study_is_a_sweep(tmp_path: Path) -> None:
    sweep = plan(tmp_path, studies=2, trials=1)
    assert sweep["trials_per_study"] == 1 and [(t["study"], t["trial"]) for t in sweep["trials"]] == [(0, 0), (1, 0)]
    assert sweep["search_space"] and sweep["self_tuning_factor"] is None


@pytest.mark.parametrize("factor", [0.0, -1.0])
def test_a_self_tuning_factor_must_be_positive(tmp_path: Path, factor: float) -> None:
    with pytest.raises(UserError, match=f"self_tuning_factor={factor} must be a positive"):
        plan(tmp_path, ruleset="self", self_tuning_factor=factor)
    with pytest.raises(UserError, match="trials=0 must both be at least 1"):
        plan(tmp_path, trials=0)


def test_the_stored_plan_is_relative_to_its_folder(tmp_path: Path) -> None:
    sweep = plan(tmp_path, studies=2, trials=2)
    stored = json.loads(write_sweep(sweep).read_text())
    assert [t["record_dir"] for t in stored["trials"]] == ["study0/trial0", "study0/trial1", "study1/trial0",
                                                           "study1/trial1"]
    assert {t["config"]["results"] for t in stored["trials"]} == {"../../.."}
    assert [t["config"]["record_dir"] for t in stored["trials"]] == [t["record_dir"] for t in stored["trials"]]


def test_an_unwritable_results_folder_is_named_with_its_setting(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    results = tmp_path / "file" / "results"  # below a file: no folder can be made there, not even by root
    sweep = plan(results, studies=1, trials=1)
    with pytest.raises(UserError, match=rf"^Cannot write to .*\. Set results= \(now '{results}'\) to a folder you"):
        write_sweep(sweep)


def test_the_points_are_a_function_of_the_seed() -> None:
    assert quasirandom_points(SPACE, 8, seed=3) == quasirandom_points(SPACE, 8, seed=3)
    assert quasirandom_points(SPACE, 8, seed=3) != quasirandom_points(SPACE, 8, seed=4)
    assert quasirandom_points({}, 3, seed=0) == [{}, {}, {}]  # nothing to search: the defaults, three times


def test_the_search_draws_the_same_points_as_every_earlier_sweep() -> None:
    """The points of a search seed are pinned: sweeps planned before and after an upgrade of SciPy
    (whose ``qmc.Halton(seed=...)`` is being replaced by ``rng=``, which scrambles otherwise) or a
    change here must share them, so that submissions tuned at different times get the same points.
    A new SciPy that draws others fails here, not silently in users' new sweeps."""
    space = {"a": {"min": 0.0, "max": 1.0, "scaling": "linear"}, "b": {"min": 0.0, "max": 1.0, "scaling": "linear"},
             "c": {"min": 0.0, "max": 1.0, "scaling": "linear"}}
    drawn = [point[name] for point in quasirandom_points(space, 4, seed=0) for name in "abc"]
    assert drawn == pytest.approx([0.099121779884, 0.053913761854, 0.300776229097,
                                   0.599121779884, 0.72058042852, 0.700776229097,
                                   0.349121779884, 0.387247095187, 0.100776229097,
                                   0.849121779884, 0.165024872965, 0.500776229097], abs=1e-10)


def test_a_sweep_of_rerun_true_is_refused_with_what_to_do(tmp_path: Path) -> None:
    message = ("rerun=true runs one finished trial again (optbench trial ... rerun=true); a sweep runs only the "
               "trials that have not ended. To run some of a sweep's trials again, move their folders "
               "(study<k>/trial<j>) out of the results folder (their records are kept where you put them) and rerun "
               "the same tune or suite command, which runs the trials that have not ended; after a change of code, "
               "tune into a new results folder (results=DIR).")
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        plan(tmp_path, overrides=["rerun=true"])


def test_a_self_tuning_factor_below_one_is_a_shorter_budget(tmp_path: Path) -> None:
    sweep = plan(tmp_path, ruleset="self", studies=1, self_tuning_factor=0.5)
    assert sweep["budget_s"] == 10 and sweep["self_tuning_factor"] == 0.5


def test_the_identity_leaves_out_only_empty_provenance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A built-in workload's and submission's empty ``source``/``config_from`` are not part of the sweep's
    identity (so its folder is the one it had before they existed); every other empty value is."""
    import harness.orchestration.sweep as sweep_module

    seen: list[dict] = []
    real = sweep_module.digest
    monkeypatch.setattr(sweep_module, "digest", lambda identity, size: seen.append(identity) or real(identity, size))
    plan(tmp_path, studies=1, trials=1)
    [identity] = seen
    for part in ("workload", "submission"):
        assert "source" not in identity[part] and "config_from" not in identity[part]
    assert sweep_module._without_none({"source": "x.py", "config_from": None, "note": None, "lr": 1}) == \
        {"source": "x.py", "note": None, "lr": 1}
    assert sweep_module._without_none({"source": None, "config_from": "a.yaml"}) == {"config_from": "a.yaml"}


USER_OPTIMIZER = '''
import dataclasses
import torch
from harness.submission import TorchOptimSubmission, TrainingHparams


@dataclasses.dataclass(kw_only=True)
class PlainHparams(TrainingHparams):
    lr: float


class Plain(TorchOptimSubmission):
    Hparams = PlainHparams

    def build_optimizer(self, params, hp):
        return torch.optim.SGD(params, lr=hp.lr)
'''
USER_CONFIG = "name: plain_mine\nhparams: {lr: 0.05}\nsearch_space:\n  lr: {min: 0.01, max: 0.2, scaling: log}\n"


def test_an_invalid_point_of_the_search_space_is_traced_to_it(tmp_path: Path) -> None:
    """The error said only "Invalid hyperparameter beta1=1.5: must be in [0, 1)", as if the user had set
    beta1 so: not that the sweep drew it from the search space, nor where that space is written."""
    with pytest.raises(UserError) as refused:
        plan(tmp_path, ["~submission.search_space.beta1", "+submission.search_space.beta1={feasible_points:[0.9,1.5]}"],
             studies=1, trials=8)
    message = str(refused.value)
    assert message.startswith("Invalid hyperparameter beta1=1.5: must be in [0, 1).") and "search space" in message
    assert "beta1: 1.5" in message and "configs/submission/adamw.yaml" in message, message
    with pytest.raises(UserError) as refused:  # the defaults' own fault: no search space blamed
        plan(tmp_path, ["submission.hparams.beta2=2.0", "~submission.search_space.beta2"], studies=1, trials=2)
    assert "Invalid hyperparameter beta2=2.0" in str(refused.value) and "search space" not in str(refused.value)


def test_a_sweep_of_a_users_submission_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(sys.modules)
    try:
        _plan_a_users_submission(tmp_path, monkeypatch)
    finally:  # the file's module is forgotten
        for name in set(sys.modules) - before:
            if str(getattr(sys.modules[name], "__file__", "")).startswith(str(tmp_path)):
                del sys.modules[name]


def _plan_a_users_submission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plain.py").write_text(USER_OPTIMIZER)
    (tmp_path / "plain.yaml").write_text(USER_CONFIG)
    monkeypatch.setattr(sys, "path", list(sys.path))
    sweep = plan_sweep(SweepSettings(studies=1, trials=2),
                       ["workload=fashion_mnist", "workload.size=smoke", f"results={tmp_path / 'results'}",
                        f"submission={tmp_path / 'plain.py'}:Plain"])
    assert sweep["submission"] == "plain_mine" and Path(sweep["dir"]).parent.name == "plain_mine"
    assert all(0.01 <= t["hparams"]["lr"] <= 0.2 for t in sweep["trials"])
    (tmp_path / "plain.yaml").write_text(USER_CONFIG.replace("min: 0.01", "min: 0.3"))
    with pytest.raises(UserError, match=r"^search space of plain_mine \(" + re.escape(str(tmp_path / "plain.yaml"))
                       + r", or an override of it on the command line\), 'lr': min \(0\.3\) must be smaller"):
        plan_sweep(SweepSettings(studies=1, trials=2),
                   ["workload=fashion_mnist", "workload.size=smoke", f"results={tmp_path / 'results'}",
                    f"submission={tmp_path / 'plain.py'}:Plain"])
    (tmp_path / "plain.yaml").write_text(USER_CONFIG + "  batch_size: {feasible_points: [64, 0]}\n")
    with pytest.raises(UserError, match=rf"^Invalid hyperparameter batch_size=0: .* search space .*"
                                        rf"{tmp_path}/plain\.yaml"):
        plan_sweep(SweepSettings(studies=1, trials=4),
                   ["workload=fashion_mnist", "workload.size=smoke", f"results={tmp_path / 'results'}",
                    f"submission={tmp_path / 'plain.py'}:Plain"])
    (tmp_path / "plain.yaml").write_text("name: plain_mine\nhparams: {lr: 0.05}\n")
    with pytest.raises(UserError, match=rf"^Submission 'plain_mine' declares no search space \({tmp_path}/"
                                        r"plain\.yaml\): external tuning has nothing to search\. "
                                        r"Use ruleset=self"):  # was: a file in the built-ins' config folder
        plan_sweep(SweepSettings(studies=1, trials=2),
                   ["workload=fashion_mnist", "workload.size=smoke", f"results={tmp_path / 'results'}",
                    f"submission={tmp_path / 'plain.py'}:Plain"])


def test_the_plan_describes_itself_and_its_identity_is_stable(tmp_path: Path) -> None:
    """The sweep folder is named by a hash of what determines the plan: the same command finds the same
    folder, today and after an upgrade. A change of this hash orphans every sweep already run; if one
    is meant, say so where docs/tuning.md describes the hash and update the two values here (last
    changed 2026-12-04: the workload part became the chosen size's spec alone)."""
    external = plan(tmp_path, studies=1, trials=2)
    assert external["sweep_id"] == "d1fd8d2931" and Path(external["dir"]).name == "external-d1fd8d2931"
    assert plan(tmp_path, ruleset="self", studies=1, trials=2)["sweep_id"] == "97b9a2f397"
    assert {k: external[k] for k in ("kind", "workload", "size", "submission", "ruleset", "studies",
                                     "trials_per_study", "search_seed", "self_tuning_factor")} == {
        "kind": "optbench-sweep", "workload": "fashion_mnist", "size": "smoke", "submission": "adamw",
        "ruleset": "external", "studies": 1, "trials_per_study": 2, "search_seed": 0, "self_tuning_factor": None}
    assert "lr" in external["search_space"]
    for entry in external["trials"]:
        assert entry["record_dir"] == entry["config"]["record_dir"] == \
            str(Path(external["dir"]) / f"study{entry['study']}" / f"trial{entry['trial']}")
    assert [t["hparams"] for t in plan(tmp_path, studies=1, trials=2)["trials"]] == \
        [t["hparams"] for t in external["trials"]]  # the same seed, the same points
    assert plan(tmp_path, ruleset="self", studies=1)["search_space"] == {}


def test_settings_that_change_a_trial_join_the_identity_only_when_set(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """compile, nproc and a submission's revision change what a trial computes: a sweep that sets
    them is another sweep; one that leaves them at their defaults keeps the id it had before they
    existed."""
    import harness.orchestration.sweep as sweep_module
    from submissions.adamw import AdamW

    seen: list[dict] = []
    real = sweep_module.digest
    monkeypatch.setattr(sweep_module, "digest", lambda identity, size: seen.append(identity) or real(identity, size))
    plan(tmp_path, studies=1, trials=1)
    plan(tmp_path, ["nproc=2", "compile=False"], studies=1, trials=1)
    monkeypatch.setattr(AdamW, "revision", 2)
    plan(tmp_path, studies=1, trials=1)
    default, data_parallel, revised = seen
    assert not {"compile", "charge_compile", "nproc", "submission_revision"} & default.keys()
    assert data_parallel["nproc"] == "2" and data_parallel["compile"] == "false"  # spelled as the defaults are
    assert "charge_compile" not in data_parallel
    assert revised["submission_revision"] == 2 and "nproc" not in revised


def test_a_sweep_is_named_by_its_own_size_not_by_the_other_sizes_and_variants(tmp_path: Path) -> None:
    """Calibrating gpt's gpu size (its target, budget and notes) once moved every gpt sweep, the main
    job's mini ones too, to a new folder: a rerun tuned them again and score refused the two sweeps.
    A sweep's identity holds the spec of its own size only, as a trial's does, without its notes."""
    def sweep_id(*overrides: str) -> str:
        return plan(tmp_path, ("workload=gpt", "workload.size=smoke", *overrides))["sweep_id"]

    ours = sweep_id()
    assert sweep_id("workload.sizes.gpu.target=1.2", "workload.sizes.gpu.max_runtime_s=30") == ours
    assert sweep_id("workload.variants.relu.sizes.gpu.target=1.3") == ours  # a variant this sweep does not use
    assert sweep_id("workload.sizes.smoke.calibration.note=remeasured") == ours  # notes, not numbers
    assert sweep_id("workload.sizes.smoke.target=0.9") != ours  # its own size's numbers are its identity
    assert sweep_id("workload.sizes.smoke.options.n_embd=48") != ours
    assert sweep_id("workload.model_options.activation=relu") != ours
