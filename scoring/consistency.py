"""Which records can be ranked together: the checks that refuse one leaderboard of incomparable
records (other targets, budgets, code, hardware, settings, copies, precisions, pruning) with a
message saying what differs and what to do. docs/scoring.md lists them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from harness.errors import UserError
from harness.identity import differences


def workload_key(frame: pd.DataFrame) -> pd.Series:
    return frame["workload"].astype(str) + "-" + frame["size"].astype(str)


HINTS = {  # what to do about records of one workload that differ in a column (check_consistent)
    "max_runtime_s": " A trial given another budget (max_runtime_s=) ran another benchmark: a longer one "
                     "reaches targets a shorter one cannot. Score them in separate results folders.",
    "max_steps": " A trial capped at fewer steps (max_steps=) could not reach what an uncapped one did. Score "
                 "them in separate results folders.",
    "device_type": " Times on a CPU and on a GPU are not one race: score each device's records in a results "
                   "folder of its own.",
    "nproc": " A data-parallel trial (nproc=N) trains on N GPUs, or on the CPU's cores split N ways: score each "
             "count's records in a results folder of its own.",
    "isolation": " A submission in a trainer process (isolation=process) is charged its state's transfers, "
                 "one in the harness's process is not: run them again with one isolation= setting, or score them "
                 "in separate results folders.",
    "hardware": " Times on two kinds of processor or GPU are not one race: run a workload's trials on one kind "
                "(on SLURM, a partition or --constraint of one model), or score each kind's records in a results "
                "folder of its own.",
    "data_sha256": " The manifests' data_sha256 (the sha256 of the examples) differ: another copy or version of "
                   "the dataset (such as one re-encoded as JPEG) is another problem. Score each copy's records in a "
                   "results folder of its own, or run the old ones again on this data.",
    "cpu_threads": " A CPU trial's time depends on the cores it trains on: run them again with one threads= "
                   "setting (on machines of one kind), or score them in separate results folders.",
}


def check_consistent(trials: pd.DataFrame) -> None:
    """Refuse to score records of one workload made under different targets, metrics or rules."""
    if trials.empty:
        raise UserError("No finished trials to score.")
    keys = workload_key(trials)
    unmet = pd.to_numeric(trials["target"], errors="coerce").isna() if "target" in trials else pd.Series(False)
    if unmet.any():
        raise UserError(f"Records of {keys[unmet].iloc[0]} have no validation target (null: an unreachable target, "
                        f"such as workload.sizes.<size>.target=inf, or calibrate's runs to the end of the schedule), "
                        f"so no time to reach it: refusing to score them. Score records made with a target.")
    check_one_ruleset(trials, keys)
    for column, what in (("target", "validation target"), ("metric", "metric"),
                         ("higher_is_better", "metric direction"),
                         ("schema_version", "record schema version"), ("max_runtime_s", "budget"),
                         ("max_steps", "step cap"), ("device_type", "device type"), ("nproc", "process count"),
                         ("isolation", "isolation"),
                         ("cpu_threads", "CPU thread count"), ("hardware", "processor or GPU model"),
                         ("data_sha256", "data digest")):
        if column not in trials:
            continue
        present = trials[column].notna().to_numpy()
        values = trials[column][present]
        # As the records spell them: 1 and 1.0 differ. Only a column of mixed Python objects can hold both.
        spelled = (values.astype(str) if values.dtype == object else values).to_numpy()
        where = keys[present].to_numpy()
        counts = pd.Series(spelled).groupby(where).nunique()  # one pass; the list only where they differ
        if (counts > 1).any():
            workload = counts.index[counts > 1][0]
            folders = (trials["record_dir"][present].to_numpy()[where == workload] if "record_dir" in trials
                       else [None] * int((where == workload).sum()))
            example: dict[str, str | None] = {}  # each value and a record made with it
            for value, folder in zip(spelled[where == workload], folders):
                example.setdefault(str(value), folder)
            found = [f"{value} (e.g. {folder})" if folder else value for value, folder in sorted(example.items())]
            hint = HINTS.get(column, " Recalibrated targets make old records incomparable: score them in separate "
                                     "results folders.")
            raise UserError(f"Records of {workload} were made with different {what}s ({', '.join(found)}); "
                            f"refusing to compare them.{hint}")
    check_one_code(trials, keys)
    check_one_tuning(trials, keys)
    check_same_setup(trials, keys)
    check_one_sweep(trials, keys)  # first: two sweeps sharing a planned trial (trials= changed) are not copies
    check_no_copies(trials)


def check_one_ruleset(trials: pd.DataFrame, keys: pd.Series) -> None:
    """Refuse records of two rulesets on one leaderboard, on one workload or across workloads: a
    submission's score sums its workloads, so a lone untuned trial (ruleset single) of one workload
    beside tuned sweeps of another would rank submissions by which of them happened to run it."""
    if "ruleset" not in trials or trials["ruleset"].nunique() < 2:
        return
    found = []
    for ruleset, group in trials.groupby(trials["ruleset"].astype(str)):
        example = f" e.g. {group['record_dir'].iloc[0]}" if "record_dir" in group else ""
        found.append(f"{ruleset} on {', '.join(sorted(set(keys[group.index])))} ({len(group)} trials,{example})")
    raise UserError(f"Records of {len(found)} rulesets ({'; '.join(found)}); refusing to rank them on one "
                    f"leaderboard: a submission's score sums its workloads, and each workload's times must come "
                    f"from the same tuning. Score one ruleset at a time (ruleset=external, ruleset=self or "
                    f"ruleset=single: lone trials), or keep lone trials in a results folder of their own.")


def check_one_code(trials: pd.DataFrame, keys: pd.Series) -> None:
    """Refuse one submission's records (over every workload: its row of the table is one algorithm)
    from two revisions or two versions of its code, and one workload's from two versions of its code
    (the class's file; the map of its package's modules it imports, harness/config/code_files.py)."""
    if "submission_revision" in trials:
        counts = trials.groupby(trials["submission"])["submission_revision"].nunique()
        if (counts > 1).any():
            submission = counts.index[counts > 1][0]
            mine = trials["submission"] == submission
            found = sorted(set(trials.loc[mine, "submission_revision"].dropna()))
            raise UserError(
                f"Records of {submission} on {', '.join(sorted(set(keys[mine])))} come from different revisions "
                f"of its algorithm ({', '.join(map(str, found))}): the name meant another computation in the older "
                f"ones (docs/optimizers.md). Refusing to score them together; move the old records out of the "
                f"results folder (their manifests say submission_revision, absent = 1).")
    for column, by_submission, what in (("submission_source_sha256", True, "its source"),
                                        ("submission_code_sha256", True, "its code"),
                                        ("submission_packages", True, "the installed packages its code imports"),
                                        ("workload_source_sha256", False, "the workload's source"),
                                        ("workload_code_sha256", False, "the workload's code")):
        if column not in trials:
            continue
        group = trials["submission"] if by_submission else keys
        versions = trials.groupby(group)[column].nunique()  # a record that does not tell: not counted
        if (versions > 1).any():
            first = versions.index[versions > 1][0]
            whose = (f"{first} on {', '.join(sorted(set(keys[trials['submission'] == first])))}" if by_submission
                     else first)
            found = (f": {'; '.join(sorted(map(str, trials.loc[group == first, column].dropna().unique())))}"
                     if column == "submission_packages" else "")
            raise UserError(
                f"Records of {whose} were made with {versions[first]} versions of {what} (the manifests' "
                f"{column} differ{found}): the code changed between them, and one name would stand for several "
                f"computations. Refusing to score them together; score each version's records from a results "
                f"folder of its own, or run the old ones again with this code.")


def check_one_tuning(trials: pd.DataFrame, keys: pd.Series) -> None:
    """Refuse one submission's tuned records (over every workload) made with two search spaces or two
    values of a hyperparameter outside it (``tuning_setup``): external tuning samples one search space
    for every workload, and a value set for one workload alone (``submission.hparams.eps=`` on one
    tune command; the submission's YAML edited between two) is tuning by hand, unmarked."""
    if "tuning_setup" not in trials:
        return
    told = trials["tuning_setup"].notna().to_numpy()
    for (submission, ruleset), group in trials[told].groupby(["submission", "ruleset"]):
        setups = group.groupby("tuning_setup", sort=False)
        if len(setups) < 2:
            continue
        (first, a), (other, b) = list(setups)[:2]
        where = [", ".join(sorted(set(keys[x.index]))) for x in (a, b)]
        folders = [f" ({sweep_folder(x)})" if "record_dir" in x else "" for x in (a, b)]
        how = "per workload" if where[0] != where[1] else "sweep by sweep on one workload"
        raise UserError(f"Records of {submission} ({ruleset} ruleset) were tuned in {len(setups)} ways (on "
                        f"{where[0]}{folders[0]}, then on {where[1]}{folders[1]}: "
                        f"{differences(json.loads(first), json.loads(other))}): its row of the table would stand "
                        f"for a submission tuned by hand {how}. Tune every workload with the same search space "
                        f"and hyperparameters (one suite command does), or score each setting's records in a "
                        f"results folder of its own (move one of these sweep folders out).")


def sweep_folder(records: pd.DataFrame) -> str:
    """The folder of the first of ``records`` that holds its sweep (a tuned trial's record sits in
    ``<sweep>/study<k>/trial<j>``), or the record's own folder where it is not laid out so."""
    folder = Path(str(records["record_dir"].iloc[0]))
    return str(folder.parent.parent) if folder.parent.name.startswith("study") else str(folder)


def check_same_setup(trials: pd.DataFrame, keys: pd.Series) -> None:
    """Refuse one workload's records made with other workload settings (the model, its options, the
    size's settings: ``workload.model_options.*=``, ``workload.sizes.<size>.*=`` overrides), which a
    record's label (workload and size) does not show: one name would stand for two problems."""
    if "workload_setup" not in trials:
        return
    told = trials["workload_setup"].notna().to_numpy()
    setups = trials["workload_setup"][told].groupby(keys[told])
    for workload, values in setups:
        found = values.unique()
        if len(found) > 1:
            first, other = (json.loads(value) for value in found[:2])
            raise UserError(f"Records of {workload} were made with different workload settings ({len(found)} "
                            f"versions; e.g. {differences(first, other)}): the same name for different problems. "
                            f"Score them in separate results folders; overrides of a workload's settings are for "
                            f"experiments, and belong in a results folder of their own.")


def check_no_copies(trials: pd.DataFrame) -> None:
    """Refuse a trial found twice (the same identity and seed in two folders: a copied record), which
    would count as two studies, or as two trials of one."""
    if "config_hash" not in trials or "record_dir" not in trials:
        return
    told = trials[trials["config_hash"].notna()]
    same = ["submission", "workload", "size", "config_hash", "seed"]  # the hash alone would do, for real records
    copies = told[told.duplicated(same, keep=False)]
    if not copies.empty:
        first = copies.iloc[0]
        folders = copies.loc[(copies[same] == first[same]).all(axis=1), "record_dir"]
        raise UserError(f"The same trial (config hash {first['config_hash']}, seed {first['seed']}) is in "
                        f"{len(folders)} folders: {', '.join(map(str, folders))}. A copied record would count "
                        f"twice; remove the copies from the results folder.")


def check_one_sweep(trials: pd.DataFrame, keys: pd.Series) -> None:
    """Refuse one submission's trials of one workload from two sweeps (another search_seed, trials=,
    search space): studies are matched by number, so study 0 would be the best of both sweeps' trials,
    a bigger tuning budget than the other submissions had."""
    if "study" not in trials or "record_dir" not in trials:
        return
    swept = trials["study"].notna().to_numpy()
    if not swept.any():
        return
    # a sweep trial's folder is <sweep>/study<k>/trial<j>
    sweeps = trials["record_dir"][swept].map(lambda folder: str(Path(str(folder)).parent.parent))
    counts = sweeps.groupby([keys[swept], trials["submission"][swept]]).nunique()
    if (counts > 1).any():
        workload, submission = counts.index[counts > 1][0]
        found = sorted(set(sweeps[(keys[swept] == workload) & (trials["submission"][swept] == submission)]))
        raise UserError(f"Records of {submission} on {workload} come from {len(found)} sweeps ({', '.join(found)}): "
                        f"their studies would be merged by number, tuning it with more trials than the others. "
                        f"Score one sweep per submission and workload: move the others out of the results folder.")


def check_tuning_budgets(trials: pd.DataFrame, per_study: Mapping[Path, int]) -> None:
    """Refuse one workload's submissions tuned with different numbers of trials per study (their
    sweeps' plans, ``per_study``: sweep folder -> planned trials per study, ended or not): a study's
    time is the best of its trials, and the best of more draws from a search space is a bigger
    tuning budget, not a better algorithm (AlgoPerf's external ruleset gives every submission the
    same number). Lone trials and records whose sweep plan was not read are not counted."""
    if not per_study or "study" not in trials or "record_dir" not in trials:
        return
    swept = trials[trials["study"].notna()]
    folders = swept["record_dir"].map(lambda folder: Path(str(folder)).parent.parent)  # <sweep>/study<k>/trial<j>
    table = pd.DataFrame({"workload": workload_key(swept), "submission": swept["submission"],
                          "budget": folders.map(lambda folder: per_study.get(folder)), "sweep": folders.astype(str)})
    table = table[table["budget"].notna()].astype({"budget": int})
    for workload, group in table.groupby("workload", sort=True):
        if group["budget"].nunique() < 2:
            continue
        each = group.drop_duplicates("submission").sort_values("submission")
        found = ", ".join(f"{row.submission}: {row.budget}" for row in each.itertuples())
        most = each.loc[each["budget"].idxmax()]
        raise UserError(f"Submissions on {workload} were tuned with different numbers of trials per study ({found}; "
                        f"e.g. {most['sweep']}): a study's time is the best of its trials, so more trials is a "
                        f"bigger tuning budget, not a better algorithm. Tune every submission of a workload with "
                        f"the same trials= (a tune or suite command with trials={int(each['budget'].max())} makes "
                        f"new sweeps for the others: move their old ones out of the results folder), or score them "
                        f"in separate results folders.")


def check_precisions(trials: pd.DataFrame, mix_precisions: bool = False) -> None:
    """Refuse to rank records of one workload trained in different precisions (fp32, bf16) unless
    ``mix_precisions``: bfloat16 changes both the speed and the trajectory, so such times are not
    of the same benchmark. Records without a precision (made before it existed) are fp32."""
    mixed = mixed_precisions(trials)
    if mix_precisions or not mixed:
        return
    workload, found = next(iter(mixed.items()))
    raise UserError(f"Records of {workload} were trained in different precisions ({', '.join(found)}); "
                    f"refusing to rank them together. Score each precision from its own results folder, "
                    f"or add mix_precisions=true to rank them together anyway.")


def record_precisions(trials: pd.DataFrame) -> pd.Series:
    """Each record's precision; fp32 where it says none (made before precisions existed)."""
    return column_of(trials, "precision").fillna("fp32").astype(str)


def mixed_precisions(trials: pd.DataFrame) -> dict[str, list[str]]:
    """The workloads whose records were trained in more than one precision, with those precisions."""
    precisions = record_precisions(trials).groupby(workload_key(trials)).unique()
    return {workload: sorted(found) for workload, found in precisions.items() if len(found) > 1}


def check_pruning(trials: pd.DataFrame, tau_max: float) -> None:
    """Refuse a tau_max above the one that trials were pruned for (their pruning would not be exact)."""
    if "pruned_tau_max" not in trials:
        return
    used = pd.to_numeric(trials["pruned_tau_max"], errors="coerce").dropna()
    if not used.empty and tau_max > used.min() + 1e-12:
        raise UserError(f"Some trials were pruned as unable to change a leaderboard with tau_max={used.min():g}; "
                        f"with tau_max={tau_max:g} they might have. Score with tau_max <= {used.min():g}, or rerun "
                        f"those trials with prune=false.")


def column_of(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]``, or an empty column where there is none."""
    return frame[name] if name in frame else pd.Series(None, index=frame.index, dtype=object)
