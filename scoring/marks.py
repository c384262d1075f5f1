"""What the leaderboard says beside the scores, read from the trials: the marks after a name
(failed, no-op, clock suspect, source audit, precision) and the notes below the table (failed
trials, workloads ranked at several sizes, compiled beside eager, trials made in the harness's
process, targets met at the first evaluation, pruning against an absent competitor, targets
calibrated on other data).
scoring/leaderboard.py puts them on the board; docs/scoring.md says what each means."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoring.consistency import column_of, record_precisions, workload_key


def mixed_compile(trials: pd.DataFrame) -> list[str]:
    """The workloads whose records include both compiled and eager trials (``compile=auto`` compiles
    the gpu sizes' CUDA trials, not those of ``isolation=process`` or ``compile=false``)."""
    if "compile" not in trials:
        return []
    settings = trials["compile"].fillna(False).astype(bool).groupby(workload_key(trials)).nunique()
    return sorted(settings.index[settings > 1])


def mixed_batch_sizes(trials: pd.DataFrame) -> dict[str, str]:
    """The workloads whose submissions trained with different batch sizes (a submission may choose its
    own, or tune it), with each submission's: there a step is not the same amount of data, so the steps
    score is no common measure (the time score is)."""
    if "hp.batch_size" not in trials:
        return {}
    sizes = pd.to_numeric(trials["hp.batch_size"], errors="coerce")
    found = {}
    for workload, group in sizes.groupby(workload_key(trials)):
        if group.dropna().nunique() > 1:
            per = group.dropna().groupby(trials.loc[group.index, "submission"]).unique()
            found[str(workload)] = "; ".join(f"{s}: {', '.join(str(int(b)) for b in sorted(values))}"
                                            for s, values in per.items())
    return found


def changed_limits(trials: pd.DataFrame) -> dict[str, str]:
    """The workloads whose records ran with limits other than their size's: a budget set by
    ``max_runtime_s=`` unlike the one the size registers, or a step cap (``max_steps=``), with what they
    were. Such a board ranks another benchmark than the size's (a target its budget was measured for),
    which the Workloads table's budget column shows but does not call out. Trials of the self-tuning
    ruleset are left out: their budget is the size's times the sweep's factor, which records do not carry."""
    if "max_runtime_s" not in trials or trials.empty:
        return {}
    tuned_alone = (column_of(trials, "ruleset").astype(str) != "self").to_numpy()
    budget = pd.to_numeric(trials["max_runtime_s"], errors="coerce").to_numpy(float)
    registered = pd.to_numeric(column_of(trials, "size_budget_s"), errors="coerce").to_numpy(float)
    overridden = tuned_alone & ~np.isnan(registered) & ~np.isclose(budget, registered)
    caps = pd.to_numeric(column_of(trials, "max_steps"), errors="coerce").to_numpy(float)  # "none": NaN
    keys = workload_key(trials).to_numpy()
    found: dict[str, str] = {}
    for workload in sorted(set(keys)):
        mine = keys == workload
        said = []
        if (changed := mine & overridden).any():
            said.append(f"a budget of {_listed(budget[changed])} s (max_runtime_s=) where the size registers "
                        f"{_listed(registered[changed])} s")
        if (capped := mine & ~np.isnan(caps)).any():
            said.append(f"at most {_listed(caps[capped])} steps (max_steps=)")
        if said:
            found[str(workload)] = " and ".join(said)
    return found


def _listed(values: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in sorted(set(values.tolist())))


#: a trial's step rate counts from this many steps on (the first steps, with their allocations, run slower)
RATE_MIN_STEPS = 100
#: one setting's trials whose step rates differ by more than this factor were slowed by something else
RATE_SPREAD = 1.5


def uneven_step_rates(trials: pd.DataFrame) -> dict[str, str]:
    """The workloads where trials of one submission and one setting ran at step rates more than
    ``RATE_SPREAD`` apart, with the widest such spread: a machine shared with other work, throttled or
    swapping. Trials that differ only in real-valued hyperparameters (learning rates, betas, decays) do
    the same work per step; integer, boolean and text ones (a batch size, a preconditioning interval) may
    not, so they separate settings. Times there measure the machine as much as the submission."""
    needed = {"steps", "submission_time_s", "submission", "workload", "size"}
    if not needed <= set(trials.columns) or trials.empty:
        return {}
    steps = pd.to_numeric(trials["steps"], errors="coerce")
    seconds = pd.to_numeric(trials["submission_time_s"], errors="coerce")
    usable = (steps >= RATE_MIN_STEPS) & (seconds > 0)
    if not usable.any():
        return {}
    rate = (steps / seconds)[usable]
    rows = trials.loc[usable]
    discrete = [c for c in rows.columns if c.startswith("hp.") and not _real_valued(rows[c])]
    keys = [workload_key(rows), rows["submission"].astype(str), *(rows[c].astype(str) for c in discrete)]
    found: dict[str, tuple[float, str]] = {}
    for key, group in rate.groupby(keys, dropna=False):  # an absent hyperparameter (NaN) is a value too
        if len(group) < 2 or group.min() <= 0:
            continue
        spread = float(group.max() / group.min())
        if spread > RATE_SPREAD and spread > found.get(key[0], (0.0, ""))[0]:
            found[key[0]] = (spread, f"{key[1]}'s ran at {group.min():.0f} to {group.max():.0f} steps/s "
                                     f"(x{spread:.1f})")
    return {workload: text for workload, (_, text) in sorted(found.items())}


def _real_valued(values: pd.Series) -> bool:
    """Whether a hyperparameter column holds floats that are not whole numbers (a learning rate, not a
    batch size or an interval)."""
    given = values.dropna()
    try:
        numbers = pd.to_numeric(given, errors="coerce")
    except (TypeError, ValueError):  # lists or mappings (a pair of betas): not one real number
        return False
    return bool(numbers.notna().all() and (numbers % 1 != 0).any())


@dataclass(frozen=True)
class Failures:
    """One submission's failed trials on one workload: how many of how many, where the error was
    raised (``error_in``: submission.update, workload.evaluate, harness, ...), its types, and one
    trial's folder."""

    count: int
    total: int
    parts: tuple[str, ...]
    types: tuple[str, ...]
    example: str

    def note(self, submission: str, workload: str) -> str:
        raised = ", ".join(self.types) if self.types else "an error"
        return (f"{submission} on {workload}: {self.count} of {self.total} trials failed ({raised} in "
                f"{', '.join(self.parts) or 'an unknown part'}; e.g. {self.example}): they count as not reaching the "
                f"target, so its time there is that of a method that crashed, not a slow one. The records hold the "
                f"tracebacks; a failure of the harness or the workload is retried by running the same command again")


def generated_beside_real(trials: pd.DataFrame) -> list[str]:
    """The workloads trained on generated data (a size's ``options.synthetic``: the smoke sizes, a
    check of the pipeline) where records of real data are on the board too; none otherwise."""
    if "synthetic_data" not in trials:
        return []
    told = trials["synthetic_data"].notna()
    kinds = trials["synthetic_data"][told].astype(bool)
    if kinds.nunique() < 2:
        return []
    return sorted(set(workload_key(trials)[told][kinds]))


def targets_of_other_data(trials: pd.DataFrame) -> list[str]:
    """The workloads with records made on other examples than those their target was calibrated on
    (both digests told and different: another corpus, another copy of a dataset)."""
    if "target_data_sha256" not in trials or "data_sha256" not in trials:
        return []
    told = trials["target_data_sha256"].notna() & trials["data_sha256"].notna()
    other = told & (trials["target_data_sha256"] != trials["data_sha256"])
    return sorted(set(workload_key(trials)[other]))


def sizes_per_workload(trials: pd.DataFrame) -> dict[str, list[str]]:
    """The workloads whose records are of more than one size, with those sizes."""
    sizes = trials.groupby(trials["workload"].astype(str))["size"].unique()
    return {name: sorted(map(str, found)) for name, found in sizes.items() if len(found) > 1}


def failed_trials(trials: pd.DataFrame) -> dict[tuple[str, str], Failures]:
    """Per (submission, workload), its trials that ended ``failed`` (the submission's code, the
    workload's or the harness's raised): the table reads them as not reached, which hides a crash."""
    if "status" not in trials:
        return {}
    keys = workload_key(trials)
    failed = (trials["status"] == "failed").to_numpy()
    found = {}
    totals = trials.groupby([trials["submission"], keys]).size()
    for (submission, workload), group in trials[failed].groupby([trials["submission"][failed], keys[failed]]):
        parts = tuple(sorted(set(column_of(group, "error_in").dropna().astype(str))))
        types = tuple(sorted(set(column_of(group, "error_type").dropna().astype(str))))
        example = str(group["record_dir"].iloc[0]) if "record_dir" in group else "-"
        found[(submission, workload)] = Failures(len(group), int(totals[(submission, workload)]), parts, types,
                                                 example)
    return found


def precision_marks(trials: pd.DataFrame, mixed: dict[str, list[str]]) -> dict[str, str]:
    """Per submission, where it was ranked among records of another precision in a precision not fp32:
    "bf16 on gpt-gpu" (a name needs no mark where its records are all fp32, the default)."""
    if not mixed:
        return {}
    keys = workload_key(trials)
    chosen = keys.isin(list(mixed))
    precision = record_precisions(trials)[chosen]
    marks: dict[str, dict[str, list[str]]] = {}
    for (submission, workload), found in precision.groupby([trials["submission"][chosen], keys[chosen]]):
        label = "/".join(sorted(set(found)))
        if label != "fp32":
            marks.setdefault(submission, {}).setdefault(label, []).append(workload)
    return {submission: "; ".join(f"{label} on {', '.join(sorted(where))}" for label, where in sorted(by.items()))
            for submission, by in marks.items()}


def inert_components(trials: pd.DataFrame) -> dict[str, dict[str, str]]:
    """``{submission: {workload: component}}`` where a submission's own component (Muon's step,
    Shampoo's preconditioners, recorded in each trial's routing report) covered 0 parameters."""
    if "special_parameters" not in trials:
        return {}
    counts = pd.to_numeric(trials["special_parameters"], errors="coerce")
    zero = trials[counts == 0]
    out: dict[str, dict[str, str]] = {}
    for submission, workload, component in zip(zero["submission"], workload_key(zero), zero["special_component"]):
        out.setdefault(submission, {})[workload] = str(component)
    return out


def made_in_process(trials: pd.DataFrame) -> list[str]:
    """The workloads whose records were made with the submission in the harness's process
    (``isolation=inprocess``; a record without the key predates isolation, and was too)."""
    if "isolation" not in trials:
        return []
    inside = trials["isolation"].fillna("inprocess") == "inprocess"
    return sorted({str(key) for key in workload_key(trials)[inside]})


def unconfined(trials: pd.DataFrame) -> dict[str, str]:
    """``{workload: why}`` for the workloads with records made in a trainer process that was not
    confined (harness/core/sandbox.py): its submission could read the data's files and write files
    a later trial read."""
    if "sandbox" not in trials:
        return {}
    open_ = trials[trials["sandbox"].notna() & (trials["sandbox"] != "confined")]
    return {str(workload): "; ".join(sorted(set(map(str, group["sandbox"]))))
            for workload, group in open_.groupby(workload_key(open_))}


def reached_at_once(trials: pd.DataFrame) -> list[str]:
    """The workloads where at least two submissions reached the target and every trial that did
    reached it at its first evaluation: their ranks there compare the cost of a few steps."""
    if "reached_at_first_eval" not in trials or "status" not in trials:
        return []
    reached = trials[trials["status"] == "reached"]
    keys = workload_key(reached)
    found = []
    for workload, group in reached.groupby(keys):
        if group["submission"].nunique() >= 2 and group["reached_at_first_eval"].astype(bool).all():
            found.append(str(workload))
    return sorted(found)


def pruned_without_competitor(trials: pd.DataFrame) -> dict[tuple[str, str], dict[str, int]]:
    """(submission, workload) -> {competitor: trials}: trials pruned by rule (b), against a
    competitor that has no record of that workload here. Their pruning was exact for a leaderboard
    with that competitor (harness/core/pruning.py); without it, the fastest time may be slower, and
    they might have come within tau_max of it: their submission's time there is provisional."""
    if "pruned_competitor" not in trials:
        return {}
    keys = workload_key(trials)
    present = set(zip(keys, trials["submission"]))
    unmatched: dict[tuple[str, str], dict[str, int]] = {}
    for workload, submission, competitor in zip(keys, trials["submission"], trials["pruned_competitor"]):
        if isinstance(competitor, str) and (workload, competitor) not in present:
            against = unmatched.setdefault((submission, workload), {})
            against[competitor] = against.get(competitor, 0) + 1
    return unmatched


@dataclass
class IntegrityFlags:
    """Per submission: what its source audit found (kinds, comma-separated) and the workloads where
    a trial's clock was suspect."""

    audit: dict[str, str]
    suspect: dict[str, set[str]]


def integrity_flags(trials: pd.DataFrame) -> IntegrityFlags:
    """The source audits and clock cross-checks the records carry (harness/core/source_audit.py,
    harness/core/runner.py's clock_suspect), per submission."""
    audit: dict[str, str] = {}
    if "audit" in trials:
        for submission, texts in trials.groupby("submission")["audit"].unique().items():
            found = sorted({k.strip() for text in texts if pd.notna(text) for k in str(text).split(",") if k.strip()})
            if found:
                audit[submission] = ", ".join(found)
    suspect: dict[str, set[str]] = {}
    if "clock_suspect" in trials:
        flagged = trials[trials["clock_suspect"].fillna(False).astype(bool)]
        for submission, keys in workload_key(flagged).groupby(flagged["submission"]):
            suspect[submission] = set(keys)
    return IntegrityFlags(audit, suspect)


