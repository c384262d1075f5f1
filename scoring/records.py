"""Load trial records into tidy pandas tables (one row per trial, one row per evaluation), and
list every trial that should be there but cannot be scored.

Which trials *should* exist comes from the sweep plans (``sweep.json``, written before any trial
of a tuning sweep runs); lone trials (``optbench trial``) are found by their files. A trial that
never ran, is still (or was left) ``running``, or whose ``manifest.json`` is unusable is not
scored; a finished trial whose ``evals.jsonl`` is missing or lacks its ``end`` line is scored from
its manifest. Each of these is a :class:`Problem`, and :func:`problem_messages` turns them into one
warning per (submission, workload) saying which files and what to do. Nothing is dropped silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.records import MANIFEST_FILE
from harness.errors import OptbenchWarning
from scoring.record_walk import Reading, Table
from scoring.trial_files import (
    DAMAGED,
    EVALS,
    FOREIGN,
    MISPLACED,
    MISSING,
    RUNNING,
    STRAY,
    SWEEP,
    UNREADABLE,
    Problem,
    _evaluations,
    _is_number,
)


@dataclass
class Records:
    """What :func:`read_records` found: the scorable trials and everything that is not right."""

    trials: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    planned: dict[Path, int] = field(default_factory=dict)  # sweep folder (as found) -> its number of trials
    per_study: dict[Path, int] = field(default_factory=dict)  # sweep folder (as found) -> its trials per study
    indexed: int = 0  # trials taken from the sweeps' indexes (scoring/record_index.py) instead of their files
    unindexed: list[Path] = field(default_factory=list)  # sweep folders whose index could not be written


def find_trials(root: Path) -> list[Path]:
    """Every trial folder (one holding a manifest.json) under ``root``."""
    return sorted(p.parent for p in Path(root).rglob(MANIFEST_FILE))


def read_records(root: Path, workers: int | None = None, index: bool = False,
                 reading: Reading | None = None) -> Records:
    """Every trial under ``root``: one row per finished, readable trial, and the problems.

    A sweep's trials are looked up from its plan, so a trial whose whole folder is gone is still
    listed (``missing``). Folders holding an ``evals.jsonl`` but no manifest are listed too.

    Read for speed (scripts/bench_scoring.py times 100,000 trials): the tree is walked once; a
    sweep's plan is read when its folder is met, and its trials' two files are then opened directly
    instead of listing their folders (so a folder nested *inside* a planned trial's folder is not
    looked at); a trial's ``evals.jsonl`` is checked for its ``end`` line from the file's tail (see
    :mod:`scoring.trial_files`). On a large board the reading is shared by ``workers`` processes
    (default: one per CPU, at most 4; :class:`scoring.record_walk.Reading`), whose warnings are
    raised here, in order; the result is the same as one process's. ``reading``: one already
    started (``optbench score`` starts it before its own imports) instead of ``root`` and ``workers``.

    With ``index``, each sweep's finished trials are taken from its index where their files are
    unchanged, and the index is brought up to date (:mod:`scoring.record_index`); the result is
    the same as without.
    """
    read = (reading or Reading(str(Path(root)), index, workers)).result()
    for message, category in read.warnings:
        warnings.warn(message, category, stacklevel=2)
    return Records(_frame(read.rows), read.sweeps + read.problems + read.missing, read.counts, read.per_study,
                   read.indexed, read.unindexed)


def _frame(rows: Table) -> pd.DataFrame:
    """The DataFrame ``pd.DataFrame(list of dicts)`` makes of ``rows``: each column's type inferred
    from its values as pandas infers it."""
    if not rows.count:
        return pd.DataFrame()
    objects = {name: np.fromiter(rows.data[name], dtype=object, count=rows.count) for name in rows.columns}
    return pd.DataFrame(objects, columns=rows.columns, copy=False).infer_objects()


def load_trials(root: Path) -> pd.DataFrame:
    """One row per finished trial: identity, hyperparameters (``hp.*``) and outcome.

    Trials that should be there but cannot be scored are reported with one warning per
    (submission, workload) (see :func:`read_records` for the problems themselves).
    """
    records = read_records(root)
    for message in problem_messages(records.problems, records.planned):
        warnings.warn(message, OptbenchWarning, stacklevel=2)
    return records.trials


# ------------------------------------------------------------------------------------ messages
_WHAT_TO_DO = {
    MISSING: "rerun the same `optbench tune` or `optbench suite` command: it finds the sweep by its settings and "
             "runs only the trials that have not ended (or restore the lost files from a copy)",
    RUNNING: "if nothing is running them any more, rerun the same `optbench tune` or `optbench suite` command "
             "(`optbench trial` for a lone trial) to resume them",
    DAMAGED: "restore the file from a copy, or delete the trial's folder and rerun the same command to run it again",
    EVALS: "restore evals.jsonl from a copy",
    STRAY: "move it out of the sweep's folder (a backup or a copy belongs elsewhere); the sweep's own trials are "
           "scored without it",
    FOREIGN: "move the record out of the sweep's folder (or back to the slot its manifest names); the same "
             "command then runs the slot's own trial",
    SWEEP: "restore sweep.json from a copy; until then the trials found under it are scored as they are and its "
           "missing ones cannot be listed",
    MISPLACED: "move them out of the results folder's top (a trial's record lies in "
               "<workload>-<size>/<submission>/<its folder>/); nothing else is affected",
    UNREADABLE: "make the folder readable to this account (its permissions: ls -ld, chmod, or the account that "
                "wrote it), then score again",
}


def problem_groups(problems: Iterable[Problem]) -> dict[tuple[str, str], list[Problem]]:
    """Problems by (submission, workload) where known, else by the trial or sweep folder."""
    groups: dict[tuple[str, str], list[Problem]] = {}
    for problem in problems:
        key = ((problem.submission, problem.workload) if problem.submission and problem.workload
               else ("", str(problem.record_dir)))
        groups.setdefault(key, []).append(problem)
    return groups


def problem_messages(problems: Iterable[Problem], planned: dict[Path, int] | None = None) -> list[str]:
    """One line per affected (submission, workload): which trials, which files, what to do."""
    messages = []
    for (submission, workload), group in sorted(problem_groups(problems).items()):
        unreadable = [p for p in group if p.kind == UNREADABLE and p.record_dir == p.file]  # a whole folder
        lost = [p for p in group if p.lost and p not in unreadable]
        head = f"{submission} on {workload}" if submission else (
            {SWEEP: "sweep", UNREADABLE: "folder", MISPLACED: "results folder"}.get(group[0].kind, "lone trial"))
        counts = []
        if lost:
            sweeps = {p.sweep for p in lost}
            total = sum((planned or {}).get(sweep, 0) for sweep in sweeps) if None not in sweeps else 0
            of = f" of {total} planned" if total else ""
            counts.append(f"{len(lost)}{of} trial{'s' if len(lost) > 1 or of else ''} not scored")
        if unreadable:
            counts.append(f"{len(unreadable)} folder{'s' if len(unreadable) > 1 else ''} that cannot be listed, "
                          f"whatever is under {'them' if len(unreadable) > 1 else 'it'} not scored")
        incomplete = [p for p in group if p.kind == EVALS]
        strays = [p for p in group if p.kind == STRAY]
        if strays:
            counts.append(f"{len(strays)} record{'s' if len(strays) > 1 else ''} in its sweep's folder outside its "
                          f"plan, not scored")
        if incomplete:
            counts.append(f"{len(incomplete)} trial{'s' if len(incomplete) > 1 else ''} scored from incomplete "
                          f"records")
        if group[0].kind == SWEEP:
            counts.append("its plan cannot be read")
        if group[0].kind == MISPLACED:
            counts.append("record files at its top, not read")
        listed = "; ".join(f"{p.file}: {p.detail}" for p in group)
        consequence = ""
        if (lost or unreadable) and submission:
            consequence += (" Until they end, they count as not reaching the target (docs/scoring.md, incomplete "
                            "studies).")
        if incomplete:
            consequence += (" A finished trial whose evals.jsonl is missing or incomplete is scored from its "
                            "manifest.json (a missing file also leaves its curve out of the plots).")
        todo = "; ".join(dict.fromkeys(f"for {_KIND_NAMES[p.kind]}, {_WHAT_TO_DO[p.kind]}" for p in group))
        messages.append(f"{head}: {', '.join(counts)}. {listed}.{consequence} To fix: {todo}.")
    return messages


_KIND_NAMES = {MISSING: "no manifest", RUNNING: "running", DAMAGED: "a damaged manifest", FOREIGN: "a foreign record",
               EVALS: "evals.jsonl", SWEEP: "sweep.json",
               STRAY: "a record outside the plan", UNREADABLE: "an unreadable folder",
               MISPLACED: "record files at the top"}


# ------------------------------------------------------------------------------------ evaluations
def load_evals(record_dir: Path) -> pd.DataFrame:
    """The evaluations of one trial: step, submission time and every metric as columns.

    A missing file, a torn line or an evaluation line without its fields is skipped with a
    warning naming the file (and line) and what was expected.
    """
    return pd.DataFrame(_evaluations(record_dir))


def evaluation_curve(record_dir: Path, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(submission times, values of ``metric``) of one trial's evaluations that have it, read as
    :func:`load_evals` reads them (without building a table: the curves plot reads hundreds);
    None when none has it."""
    points = [(row["submission_time_s"], row[metric]) for row in _evaluations(record_dir)
              if _is_number(row.get(metric))]
    if not points:
        return None
    x, y = np.array(points, dtype=float).T
    return x, y
