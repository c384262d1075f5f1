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

import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import UserError
from harness.records import FINAL_STATUSES, DamagedRecord, numbered_jsonl, read_manifest
from harness.sweep_file import SWEEP_FILE, load_sweep

MANIFEST_FILE = "manifest.json"
EVALS_FILE = "evals.jsonl"

# Problem kinds. Not scored: MISSING, RUNNING, DAMAGED. Scored from the manifest: EVALS.
MISSING = "missing"  # a planned sweep trial without manifest.json (not run yet, or its record was lost)
RUNNING = "running"  # manifest.json says running: interrupted, or still running
DAMAGED = "damaged"  # manifest.json exists but cannot be used
EVALS = "evals"  # a finished trial whose evals.jsonl is missing, lacks its end line or contradicts the manifest
SWEEP = "sweep"  # sweep.json cannot be read: which trials it planned is unknown


@dataclass(frozen=True)
class Problem:
    """One trial (or sweep file) that is missing, unfinished or damaged."""

    kind: str
    record_dir: Path  # the trial's folder (for SWEEP: the sweep's folder)
    file: Path  # the file that is missing or damaged
    detail: str  # what was found, against what was expected
    submission: str | None = None
    workload: str | None = None  # "<workload>-<size>"
    ruleset: str | None = None
    sweep: Path | None = None  # the sweep folder of a sweep trial
    study: int | None = None  # its study in the sweep's plan

    @property
    def scored(self) -> bool:
        """Whether the trial still counts in the scores (its outcome is in its manifest)."""
        return self.kind in (EVALS, SWEEP)


@dataclass
class Records:
    """What :func:`read_records` found: the scorable trials and everything that is not right."""

    trials: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    planned: dict[Path, int] = field(default_factory=dict)  # sweep folder (as found) -> its number of trials


def find_trials(root: Path) -> list[Path]:
    """Every trial folder (one holding a manifest.json) under ``root``."""
    return sorted(p.parent for p in Path(root).rglob(MANIFEST_FILE))


def read_records(root: Path) -> Records:
    """Every trial under ``root``: one row per finished, readable trial, and the problems.

    A sweep's trials are looked up from its plan, so a trial whose whole folder is gone is still
    listed (``missing``). Folders holding an ``evals.jsonl`` but no manifest are listed too.
    """
    root = Path(root)
    problems: list[Problem] = []
    planned: dict[Path, tuple[dict[str, Any], dict[str, Any], Path]] = {}  # resolved dir -> (sweep, entry, found)
    counts: dict[Path, int] = {}
    for path in sorted(root.rglob(SWEEP_FILE)):
        try:
            sweep = load_sweep(path.parent)
        except UserError as error:
            problem = error.problem if isinstance(error, DamagedRecord) else str(error)
            problems.append(Problem(SWEEP, path.parent, path, problem))
            continue
        counts[path.parent] = len(sweep["trials"])
        for entry in sweep["trials"]:
            found = path.parent / Path(entry["record_dir"]).relative_to(sweep["dir"])
            planned[found.resolve()] = (sweep, entry, found)

    folders = {p.parent for p in root.rglob(MANIFEST_FILE)} | {p.parent for p in root.rglob(EVALS_FILE)}
    rows, seen = [], set()
    for folder in sorted(folders):
        resolved = folder.resolve()
        seen.add(resolved)
        sweep, entry, _ = planned.get(resolved, (None, None, None))
        row, problem = _read_trial(folder, sweep, entry)
        if problem is not None:
            problems.append(problem)
        if row is not None:
            rows.append(row)
    for resolved, (sweep, entry, found) in sorted(planned.items(), key=lambda item: str(item[0])):
        if resolved not in seen:
            problems.append(_problem(MISSING, found, found / MANIFEST_FILE, "no manifest.json (not run yet, or its "
                                     "record was lost)", sweep, entry))
    return Records(pd.DataFrame(rows), problems, counts)


def load_trials(root: Path) -> pd.DataFrame:
    """One row per finished trial: identity, hyperparameters (``hp.*``) and outcome.

    Trials that should be there but cannot be scored are reported with one warning per
    (submission, workload) (see :func:`read_records` for the problems themselves).
    """
    records = read_records(root)
    for message in problem_messages(records.problems, records.planned):
        warnings.warn(message, stacklevel=2)
    return records.trials


def _problem(kind: str, folder: Path, file: Path, detail: str, sweep: dict[str, Any] | None,
             entry: dict[str, Any] | None, manifest: dict[str, Any] | None = None) -> Problem:
    if sweep is not None and entry is not None:
        return Problem(kind, folder, file, detail, sweep["submission"], f"{sweep['workload']}-{sweep['size']}",
                       sweep["ruleset"], folder.parent.parent, entry["study"])
    if manifest is not None:
        return Problem(kind, folder, file, detail, manifest["submission"],
                       f"{manifest['workload']}-{manifest['size']}", str(manifest.get("ruleset") or "single"))
    return Problem(kind, folder, file, detail, ruleset=None)


def _read_trial(folder: Path, sweep: dict[str, Any] | None,
                entry: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Problem | None]:
    """(row or None, problem or None) of one trial folder."""
    path = folder / MANIFEST_FILE
    try:
        manifest = read_manifest(path)
        if manifest is not None:
            _check_for_scoring(manifest, path)
    except DamagedRecord as error:
        return None, _problem(DAMAGED, folder, path, f"damaged: {error.problem}", sweep, entry)
    if manifest is None:
        return None, _problem(MISSING, folder, path, "no manifest.json, only an evals.jsonl (its record was lost)",
                              sweep, entry)
    if manifest["status"] not in FINAL_STATUSES:
        return None, _problem(RUNNING, folder, path, "status running (interrupted, or still running)", sweep, entry,
                              manifest)
    evals = folder / EVALS_FILE
    end, present = _end_line(evals)
    problem = None
    if not present:
        problem = "missing"
    elif end is None:
        problem = "has no end line"
    elif end.get("status") != manifest["status"]:
        problem = f"ends with status {end.get('status')!r} where manifest.json says {manifest['status']!r}"
    if problem is not None:
        problem = _problem(EVALS, folder, evals, problem, sweep, entry, manifest)
    return _row(manifest, folder, evals_file=present), problem


def _end_line(path: Path) -> tuple[dict[str, Any] | None, bool]:
    """(the last ``end`` event of an evals.jsonl or None, whether the file exists). A torn line
    is reported here, once, with the same warning as when the evaluations are read."""
    if not path.is_file():
        return None, False
    end = None
    for _, row in _numbered_rows(path):
        if row.get("event") == "end":
            end = row
    return end, True


_OPTIONAL = {"study": (int, type(None)), "trial": (int, type(None)), "ruleset": (str,),
             "submission_revision": (int,), "hparams": (dict,), "schema_version": (int, type(None))}
_OPTIONAL_SUMMARY = {"steps_to_target": (int, float, type(None)), "best_validation": (int, float, type(None)),
                     "memory": (dict, type(None)), "pruned": (dict, type(None)), "routing": (dict, type(None))}


def _check_for_scoring(manifest: dict[str, Any], path: Path) -> None:
    """What scoring relies on beyond :func:`harness.records.read_manifest`'s checks: the optional
    keys' types, and an outcome that agrees with itself (a finite time exactly when reached)."""
    for fields, data, where in ((_OPTIONAL, manifest, ""), (_OPTIONAL_SUMMARY, manifest.get("summary") or {},
                                                             "summary.")):
        for key, types in fields.items():
            value = data.get(key)
            if key in data and (not isinstance(value, types) or isinstance(value, bool)):
                expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise DamagedRecord(path, f"{where}'{key}' should be {expected}, found "
                                          f"{type(value).__name__} {value!r}"[:200])
    if manifest["status"] not in FINAL_STATUSES:
        return
    summary = manifest["summary"]
    if summary["status"] != manifest["status"]:
        raise DamagedRecord(path, f"status is {manifest['status']!r} but summary.status is {summary['status']!r}")
    time, steps = summary["time_to_target_s"], summary.get("steps_to_target")
    if manifest["status"] == "reached":
        if time is None or not math.isfinite(time) or time < 0:
            raise DamagedRecord(path, f"status is 'reached' but summary.time_to_target_s is {time!r} (expected a "
                                      f"finite number of seconds >= 0)")
        if steps is None or not math.isfinite(steps):
            raise DamagedRecord(path, f"status is 'reached' but summary.steps_to_target is {steps!r} (expected a "
                                      f"number of steps)")
    elif time is not None or steps is not None:
        raise DamagedRecord(path, f"status is {manifest['status']!r} but summary.time_to_target_s / "
                                  f"steps_to_target are {time!r} / {steps!r} (expected null: never reached)")


def _row(manifest: dict[str, Any], folder: Path, evals_file: bool) -> dict[str, Any]:
    summary = manifest["summary"]
    ttt = summary["time_to_target_s"]
    memory, pruned, routing = (summary.get(k) or {} for k in ("memory", "pruned", "routing"))
    return {
        "workload": manifest["workload"],
        "size": manifest["size"],
        "submission": manifest["submission"],
        "submission_revision": manifest.get("submission_revision", 1),
        "seed": manifest["seed"],
        "study": manifest.get("study"),
        "trial": manifest.get("trial"),
        "ruleset": manifest.get("ruleset", "single"),
        "schema_version": manifest.get("schema_version"),
        "status": manifest["status"],
        "time_to_target_s": math.inf if ttt is None else float(ttt),
        "steps_to_target": summary.get("steps_to_target"),
        "best_validation": summary.get("best_validation"),
        "target": manifest["target"],
        "metric": manifest["metric"],
        "higher_is_better": manifest["higher_is_better"],
        "max_runtime_s": manifest["max_runtime_s"],
        "steps": summary.get("steps"),
        "record_dir": str(folder),
        "evals_file": evals_file,
        "state_bytes_per_param": memory.get("optimizer_state_bytes_per_parameter"),
        "peak_memory_bytes": memory.get("peak_memory_bytes"),
        "pruned_rule": pruned.get("rule"),
        "pruned_tau_max": pruned.get("tau_max"),
        "special_component": routing.get("special"),
        "special_parameters": routing.get("special_parameters"),
        **{f"hp.{k}": v for k, v in manifest.get("hparams", {}).items()},
    }


# ------------------------------------------------------------------------------------ messages
_WHAT_TO_DO = {
    MISSING: "rerun the same `optbench tune` or `optbench suite` command: it finds the sweep by its settings and "
             "runs only the trials that have not ended (or restore the lost files from a copy)",
    RUNNING: "if nothing is running them any more, rerun the same `optbench tune` or `optbench suite` command "
             "(`optbench trial` for a lone trial) to resume them",
    DAMAGED: "restore the file from a copy, or delete the trial's folder and rerun the same command to run it again",
    EVALS: "restore evals.jsonl from a copy",
    SWEEP: "restore sweep.json from a copy; until then the trials found under it are scored as they are and its "
           "missing ones cannot be listed",
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
        lost = [p for p in group if not p.scored]
        head = f"{submission} on {workload}" if submission else (
            "sweep" if group[0].kind == SWEEP else "lone trial")
        counts = []
        if lost:
            sweeps = {p.sweep for p in lost}
            total = sum((planned or {}).get(sweep, 0) for sweep in sweeps) if None not in sweeps else 0
            of = f" of {total} planned" if total else ""
            counts.append(f"{len(lost)}{of} trial{'s' if len(lost) > 1 or of else ''} not scored")
        incomplete = [p for p in group if p.kind == EVALS]
        if incomplete:
            counts.append(f"{len(incomplete)} trial{'s' if len(incomplete) > 1 else ''} scored from incomplete "
                          f"records")
        if group[0].kind == SWEEP:
            counts.append("its plan cannot be read")
        listed = "; ".join(f"{p.file}: {p.detail}" for p in group)
        consequence = ""
        if lost and submission:
            consequence += (" Until they end, they count as not reaching the target (docs/scoring.md, incomplete "
                            "studies).")
        if incomplete:
            consequence += (" A finished trial whose evals.jsonl is missing or incomplete is scored from its "
                            "manifest.json (a missing file also leaves its curve out of the plots).")
        todo = "; ".join(dict.fromkeys(f"for {_KIND_NAMES[p.kind]}, {_WHAT_TO_DO[p.kind]}" for p in group))
        messages.append(f"{head}: {', '.join(counts)}. {listed}.{consequence} To fix: {todo}.")
    return messages


_KIND_NAMES = {MISSING: "no manifest", RUNNING: "running", DAMAGED: "a damaged manifest",
               EVALS: "evals.jsonl", SWEEP: "sweep.json"}


# ------------------------------------------------------------------------------------ evaluations
def load_evals(record_dir: Path) -> pd.DataFrame:
    """The evaluations of one trial: step, submission time and every metric as columns.

    A missing file, a torn line or an evaluation line without its fields is skipped with a
    warning naming the file (and line) and what was expected.
    """
    path = Path(record_dir) / EVALS_FILE
    rows = []
    for number, row in _numbered_rows(path):
        if row.get("event") != "eval":
            continue
        step, seconds, metrics = row.get("step"), row.get("submission_time_s"), row.get("metrics")
        if not (_is_number(step) and _is_number(seconds) and isinstance(metrics, dict)):
            warnings.warn(f"{path}:{number}: skipped an evaluation line; expected step and submission_time_s "
                          f"(numbers) and metrics (an object)", stacklevel=2)
            continue
        rows.append({"step": step, "submission_time_s": seconds, **metrics})
    return pd.DataFrame(rows)


def _numbered_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every well-formed line; torn lines skipped with a warning."""
    try:
        rows = numbered_jsonl(path)
    except FileNotFoundError:
        warnings.warn(f"{path}: no such file; expected the trial's evaluations (one JSON object per line), its "
                      f"curve is left out", stacklevel=3)
        return
    except OSError as error:
        warnings.warn(f"{path}: cannot be read ({error}); expected the trial's evaluations (one JSON object per "
                      f"line), its curve is left out", stacklevel=3)
        return
    yield from rows


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
