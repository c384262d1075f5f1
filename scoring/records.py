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

import json
import math
import multiprocessing as mp
import os
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.core.records import (
    EVALS_FILE,
    FINAL_STATUSES,
    MANIFEST_FIELDS,
    MANIFEST_FILE,
    SUMMARY_FIELDS,
    DamagedRecord,
    check_fields,
    numbered_jsonl,
    read_json,
    read_manifest,
)
from harness.core.sweep_file import ENTRY_FIELDS, SWEEP_FIELDS, SWEEP_FILE
from harness.errors import UserError
from scoring.forked import can_fork, usable_cpus
from scoring.record_index import SweepIndex, entry_names, file_key, folder_key

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
    indexed: int = 0  # trials taken from the sweeps' indexes (scoring/record_index.py) instead of their files
    unindexed: list[Path] = field(default_factory=list)  # sweep folders whose index could not be written


def find_trials(root: Path) -> list[Path]:
    """Every trial folder (one holding a manifest.json) under ``root``."""
    return sorted(p.parent for p in Path(root).rglob(MANIFEST_FILE))


def read_records(root: Path, workers: int | None = None, index: bool = False) -> Records:
    """Every trial under ``root``: one row per finished, readable trial, and the problems.

    A sweep's trials are looked up from its plan, so a trial whose whole folder is gone is still
    listed (``missing``). Folders holding an ``evals.jsonl`` but no manifest are listed too.

    Read for speed (scripts/bench_scoring.py times 100,000 trials): the tree is walked once; a
    sweep's plan is read when its folder is met, and its trials' two files are then opened directly
    instead of listing their folders (so a folder nested *inside* a planned trial's folder is not
    looked at); a trial's ``evals.jsonl`` is checked for its ``end`` line from the file's tail (see
    :func:`_end_line`). From ``READ_PARALLEL_FROM`` sweeps and lone trials on, they are read in
    ``workers`` equal shares (default: one per CPU, at most 4): one here, the others in forked
    processes (:mod:`scoring.forked`), whose warnings are raised again here; the result is the same,
    in the same order.

    With ``index``, each sweep's finished trials are taken from its index where their files are
    unchanged, and the index is brought up to date (:mod:`scoring.record_index`); the result is
    the same as without.
    """
    units = _units(str(Path(root)))
    if workers is None:
        workers = min(4, usable_cpus()) if len(units) >= READ_PARALLEL_FROM else 1
    results = None
    if workers > 1 and len(units) >= 2 * workers and can_fork():
        size = -(-len(units) // workers)
        shares = [units[i:i + size] for i in range(0, len(units), size)]
        results = []
        try:  # the first share read here meanwhile: its rows need not be sent back
            with ProcessPoolExecutor(len(shares) - 1, mp_context=mp.get_context("fork")) as pool:
                others = [pool.submit(_read_units, share, True, index) for share in shares[1:]]
                results.append(_read_units(shares[0], record=False, index=index))
                results += [future.result() for future in others]
        except (OSError, BrokenProcessPool):  # no process to be had (limits, memory): read the rest here
            results += [_read_units(share, record=False, index=index) for share in shares[len(results):]]
    if results is None:
        results = [_read_units(units, record=False, index=index)]
    counts: dict[Path, int] = {}
    sweeps, problems, missing, unindexed = [], [], [], []
    indexed, frames = 0, []
    for part in results:
        if not part.trials.empty:
            frames.append(part.trials)
        counts.update(part.counts)
        indexed += part.indexed
        unindexed += part.unindexed
        sweeps += part.sweeps
        problems += part.problems
        missing += part.missing
        for message, category in part.warnings:
            warnings.warn(message, category, stacklevel=2)
    trials = (frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False).infer_objects()
              if frames else pd.DataFrame())
    return Records(trials, sweeps + problems + missing, counts, indexed, unindexed)


# From this many units (sweep folders and lone trial folders) on, read_records uses several processes.
READ_PARALLEL_FROM = 200


def _look(folder: str) -> tuple[list[os.DirEntry], set[str]] | None:
    """The folder's entries and which record files (``_FILES``) it holds; None if it cannot be listed."""
    entries = _listing(folder)
    if entries is None:
        return None
    return entries, {entry.name for entry in entries if entry.name in _FILES and _exists(entry)}


def _units(root: str) -> list[tuple[str, bool]]:
    """(folder, is a sweep) of every sweep folder (holding a sweep.json) and every other folder
    holding a manifest.json or an evals.jsonl under ``root``, in path order. Found as
    ``Path.rglob`` finds files (symbolic links to folders not followed, unreadable folders
    skipped); a sweep folder's inside is left to :func:`_scan`."""
    units = []
    stack = [root]
    while stack:
        folder = stack.pop()
        looked = _look(folder)
        if looked is None:
            continue
        entries, names = looked
        if SWEEP_FILE in names:
            units.append((folder, True))
            continue
        if names:
            units.append((folder, False))
        stack += _subfolders(folder, entries)
    return sorted(units, key=lambda unit: _path_key(unit[0]))


_FILES = (MANIFEST_FILE, EVALS_FILE, SWEEP_FILE)


def _listing(folder: str) -> list[os.DirEntry] | None:
    try:
        with os.scandir(folder) as found:
            return list(found)
    except OSError:  # unreadable, or gone meanwhile
        return None


def _exists(entry: os.DirEntry) -> bool:
    return not entry.is_symlink() or os.path.exists(entry.path)


def _subfolders(folder: str, entries: list[os.DirEntry]) -> list[str]:
    out = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                out.append(_child(folder, entry.name))
        except OSError:
            continue
    return out


def _child(folder: str, *names: str) -> str:
    """``str(Path(folder, *names))`` for a folder spelled as ``str(Path(...))`` spells it, quicker."""
    tail = os.sep.join(names)
    if folder == ".":
        return tail
    return folder + tail if folder.endswith(os.sep) else folder + os.sep + tail


@dataclass
class _Part:
    """What :func:`_read_units` read of some units, in their order."""

    trials: pd.DataFrame  # built here: in a worker process, in parallel
    counts: dict[Path, int]  # sweep folder -> its number of planned trials
    sweeps: list[Problem]  # unreadable sweep.json files
    problems: list[Problem]  # trials found that cannot be scored as they are
    missing: list[Problem]  # planned trials without their files
    warnings: list[tuple[str, type[Warning]]]  # raised while reading (to be raised again in the parent)
    indexed: int = 0  # trials taken from sweep indexes
    unindexed: list[Path] = field(default_factory=list)  # sweep folders whose index could not be written


def _read_units(units: list[tuple[str, bool]], record: bool = True, index: bool = False) -> _Part:
    """Read ``units`` (see :func:`_units`): every trial's row and every problem, in path order;
    with ``index``, through each sweep's index (:mod:`scoring.record_index`)."""
    rows = _Table()
    counts: dict[Path, int] = {}
    sweeps, problems, missing, unindexed = [], [], [], []
    indexed = 0
    with warnings.catch_warnings(record=record) as caught:
        if record:
            warnings.simplefilter("always")
        for folder, is_sweep in units:
            if not is_sweep:
                _read_into(rows, problems, folder, False, None, None)
                continue
            cache = SweepIndex(folder) if index else None
            unchanged = cache.unchanged_columns() if cache is not None else None
            if unchanged is not None:  # nothing under it changed since its index was written complete
                counts[Path(folder)] = cache.planned_count()
                rows.add_columns(cache.columns, unchanged, cache.hits)
                indexed += cache.hits
                continue
            found = len(sweeps) + len(problems) + len(missing)
            scan = _scan(folder, cache)
            counts.update(scan.counts)
            sweeps += sorted(scan.problems, key=lambda p: _path_key(str(p.file)))
            seen = set()
            for trial in sorted(scan.folders, key=_path_key):
                if _read_into(rows, problems, trial, trial in scan.unlisted, *scan.planned.get(trial, (None, None)),
                              cache=cache):
                    seen.add(trial)
            for trial in sorted(set(scan.planned) - seen, key=_path_key):
                sweep, entry = scan.planned[trial]
                missing.append(_problem(MISSING, Path(trial), Path(trial) / MANIFEST_FILE, "no manifest.json (not run "
                                        "yet, or its record was lost)", sweep, entry))
            if cache is not None:
                indexed += cache.hits
                clean = len(sweeps) + len(problems) + len(missing) == found and list(scan.counts) == [Path(folder)]
                if not cache.save(complete=clean):
                    unindexed.append(Path(folder))
    return _Part(rows.frame(), counts, sweeps, problems, missing,
                 [(str(w.message), w.category) for w in caught or ()], indexed, unindexed)


def _read_into(rows: _Table, problems: list, folder: str, unlisted: bool, sweep: Any, entry: Any,
               cache: SweepIndex | None = None) -> bool:
    """Read one trial folder into ``rows`` and ``problems``; False when it holds none of its files.

    With ``cache`` (its sweep's index), a trial whose two files are still the ones its stored row
    came from is taken from there; else it is read, and a cleanly read row is stored, under the
    files' identities taken *before* they were read (so a file written meanwhile is read again
    next time)."""
    if cache is not None:
        relative = cache.relative(folder)
        keys = file_key(_child(folder, MANIFEST_FILE)), file_key(_child(folder, EVALS_FILE))
        values = cache.row(relative, *keys) if keys[0] is not None else None
        if values is not None:
            values = list(values)
            values[cache.columns.index("record_dir")] = folder
            rows.add_values(cache.columns, values)
            return True
    row, problem, clean = _read_trial_files(folder, unlisted, sweep, entry)
    if problem is not None:
        problems.append(problem)
    if row is not None:
        rows.add(row)
        if clean and cache is not None:
            cache.store(relative, *keys, {**row, "record_dir": None})  # its folder: where it is found
    return row is not None or problem is not None


class _Table:
    """Rows kept by column under one growing list of columns, turned into the DataFrame that
    ``pd.DataFrame(list of dicts)`` makes of the same rows (columns in order of first appearance,
    nan where a row lacks one; each column's type inferred from its values as pandas infers it),
    faster: a sweep's trials taken from its index are added as whole columns."""

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.data: dict[str, list[Any]] = {}
        self.count = 0

    def _column(self, name: str) -> list[Any]:
        column = self.data.get(name)
        if column is None:
            column = self.data[name] = [math.nan] * self.count
            self.columns.append(name)
        return column

    def add(self, row: dict[str, Any]) -> None:
        for name in row:
            self._column(name)
        for name in self.columns:
            self.data[name].append(row.get(name, math.nan))
        self.count += 1

    def add_values(self, columns: list[str], values: list[Any]) -> None:
        """Add a row given as ``values`` under ``columns``."""
        self.add(dict(zip(columns, values)))

    def add_columns(self, columns: list[str], data: dict[str, list[Any]], count: int) -> None:
        """Add ``count`` rows given by column (``data[name]`` for each of ``columns``)."""
        for name in columns:
            self._column(name).extend(data[name])
        for name in self.columns:
            if len(self.data[name]) != self.count + count:
                self.data[name].extend([math.nan] * count)
        self.count += count

    def frame(self) -> pd.DataFrame:
        if not self.count:
            return pd.DataFrame()
        objects = {name: np.fromiter(self.data[name], dtype=object, count=self.count) for name in self.columns}
        return pd.DataFrame(objects, columns=self.columns, copy=False).infer_objects()


@dataclass
class _Scan:
    """What one walk of a results folder found (paths spelled as ``str(Path(root) / ...)``)."""

    planned: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)  # folder -> (sweep, entry)
    counts: dict[Path, int] = field(default_factory=dict)  # sweep folder -> its number of planned trials
    problems: list[Problem] = field(default_factory=list)  # sweep.json files that cannot be read
    folders: set[str] = field(default_factory=set)  # trial folders to read
    unlisted: set[str] = field(default_factory=set)  # of which planned ones not listed: their files may be absent


def _scan(root: str, cache: SweepIndex | None = None) -> _Scan:
    """Walk ``root`` (a sweep folder) once, finding files as :func:`_units` does: every sweep.json,
    read when met (``root``'s own plan through ``cache``, its index, when given); every folder holding
    a manifest.json or an evals.jsonl; and every existing folder of a planned trial, not listed."""
    scan = _Scan()
    stack = [root]
    while stack:
        folder = stack.pop()
        key = folder_key(folder) if cache is not None else None  # before listing: a change meanwhile shows next time
        looked = _look(folder)
        if looked is None:
            continue
        entries, names = looked
        if cache is not None:
            cache.note_folder(folder, key if folder != root else entry_names(entries))
        if SWEEP_FILE in names:
            _add_plan(scan, folder, _child(folder, SWEEP_FILE), cache if folder == root else None)
        if MANIFEST_FILE in names or EVALS_FILE in names:
            scan.folders.add(folder)
        for child in _subfolders(folder, entries):
            if child in scan.planned:
                scan.folders.add(child)
                scan.unlisted.add(child)
            else:
                stack.append(child)
    return scan


def _add_plan(scan: _Scan, folder: str, path: str, cache: SweepIndex | None = None) -> None:
    key = file_key(path) if cache is not None else None
    digest = cache.cached_plan(key) if cache is not None else None
    if digest is None:
        try:
            digest = _plan_digest(_read_plan(Path(path)))
        except UserError as error:
            problem = error.problem if isinstance(error, DamagedRecord) else str(error)
            scan.problems.append(Problem(SWEEP, Path(folder), Path(path), problem))
            return
        if cache is not None:
            cache.store_plan(key, digest)
    sweep = {name: digest[name] for name in _PLAN_KEYS}
    scan.counts[Path(folder)] = len(digest["trials"])
    for study, trial in digest["trials"]:
        scan.planned[_child(folder, f"study{study}", f"trial{trial}")] = (sweep, {"study": study, "trial": trial})


# What scoring keeps of a sweep plan: whose trials these are (for the problems' messages), and
# which (study, trial) it planned.
_PLAN_KEYS = ("submission", "workload", "size", "ruleset")


def _plan_digest(sweep: dict[str, Any]) -> dict[str, Any]:
    return {**{name: sweep[name] for name in _PLAN_KEYS},
            "trials": [[entry["study"], entry["trial"]] for entry in sweep["trials"]]}


def _path_key(path: str) -> str:
    """Sorts path strings as ``Path`` objects sort, part by part (the separator below every character)."""
    return path.replace(os.sep, "\0")


def _read_plan(path: Path) -> dict[str, Any]:
    """What scoring needs of a ``sweep.json``: its settings and, per planned trial, its study and
    trial number; checked as :func:`harness.core.sweep_file.load_sweep` checks it (a damaged file raises
    :class:`DamagedRecord` naming it), without rebuilding every trial's config."""
    sweep = read_json(path)
    if sweep is None:
        raise UserError(f"No {SWEEP_FILE} in {path.parent}.")
    check_fields(sweep, SWEEP_FIELDS, path)
    for position, entry in enumerate(sweep["trials"]):
        if not isinstance(entry, dict):
            raise DamagedRecord(path, f"trials[{position}] should be an object")
        check_fields(entry, ENTRY_FIELDS, path, where=f"trials[{position}].")
    return sweep


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


def _read_trial(folder: str, unlisted: bool, sweep: dict[str, Any] | None,
                entry: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Problem | None]:
    """(row or None, problem or None) of one trial folder; (None, None) for an ``unlisted`` (planned,
    not listed) folder that holds neither a manifest.json nor an evals.jsonl."""
    row, problem, _ = _read_trial_files(folder, unlisted, sweep, entry)
    return row, problem


def _read_trial_files(folder: str, unlisted: bool, sweep: dict[str, Any] | None, entry: dict[str, Any] | None
                      ) -> tuple[dict[str, Any] | None, Problem | None, bool]:
    """:func:`_read_trial`, and whether the trial was read cleanly: finished, no problem, its end
    line found at the tail of evals.jsonl (so nothing was warned about)."""
    path = _child(folder, MANIFEST_FILE)
    evals = _child(folder, EVALS_FILE)
    try:
        manifest = _load_manifest(path)
        if manifest is not None:
            _check_for_scoring(manifest, path)
    except DamagedRecord as error:
        return None, _problem(DAMAGED, Path(folder), Path(path), f"damaged: {error.problem}", sweep, entry), False
    if manifest is None:
        if unlisted and not os.path.exists(evals):
            return None, None, False
        return None, _problem(MISSING, Path(folder), Path(path), "no manifest.json, only an evals.jsonl (its record "
                              "was lost)", sweep, entry), False
    if manifest["status"] not in FINAL_STATUSES:
        return None, _problem(RUNNING, Path(folder), Path(path), "status running (interrupted, or still running)",
                              sweep, entry, manifest), False
    end, present, whole = _end_line_read(evals)
    problem = None
    if not present:
        problem = "missing"
    elif end is None:
        problem = "has no end line"
    elif end.get("status") != manifest["status"]:
        problem = f"ends with status {end.get('status')!r} where manifest.json says {manifest['status']!r}"
    if problem is not None:
        problem = _problem(EVALS, Path(folder), Path(evals), problem, sweep, entry, manifest)
    return _row(manifest, folder, evals_file=present), problem, problem is None and not whole


def _load_manifest(path: str) -> dict[str, Any] | None:
    """:func:`harness.core.records.read_manifest`, with a quicker read of a manifest that passes its
    checks; any other (unreadable, not JSON, not an object, a field missing or of the wrong type)
    is handed to ``read_manifest`` itself, which raises its own :class:`DamagedRecord`."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return read_manifest(Path(path))
    try:
        chunks = [os.read(fd, 1 << 16)]
        while len(chunks[-1]) == 1 << 16:
            chunks.append(os.read(fd, 1 << 16))
        manifest = json.loads(b"".join(chunks).decode("utf-8"))
        if not _fits(manifest, _EXACT[id(MANIFEST_FIELDS)]):
            raise ValueError("a field")
        status, summary = manifest["status"], manifest.get("summary")
        if status in FINAL_STATUSES and isinstance(summary, dict):
            if not _fits(summary, _EXACT[id(SUMMARY_FIELDS)]):
                raise ValueError("a summary field")
        elif status != "running":
            raise ValueError(status)
        return manifest
    except (OSError, ValueError, TypeError, AttributeError):
        return read_manifest(Path(path))  # raises what is wrong, as every reader of manifests says it
    finally:
        os.close(fd)


# How much of an evals.jsonl's end _end_line reads first (an end line is ~1-3 kB; 4x more until it fits).
_TAIL_BYTES = 16384


def _end_line(path: str) -> tuple[dict[str, Any] | None, bool]:
    """(the last ``end`` event of an evals.jsonl or None, whether the file exists): see
    :func:`_end_line_read`."""
    end, present, _ = _end_line_read(path)
    return end, present


def _end_line_read(path: str) -> tuple[dict[str, Any] | None, bool, bool]:
    """(the last ``end`` event of an evals.jsonl or None, whether the file exists, whether all of
    it had to be read).

    Read from the file's tail: when its last line is a well-formed ``end`` event, that is the
    answer, and nothing before it is read. Otherwise (a torn or corrupt last line, no end line,
    something after it) the whole file is read as :func:`load_evals` reads it: a torn line is
    then reported here, once, with the same warning. A torn line *before* an intact end line is
    not looked for here; it is reported when the evaluations are read (the curves).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None, False, False
    except OSError:  # no permission, ...
        return (_end_line_of_all(path), True, True) if os.path.isfile(path) else (None, False, False)
    try:
        last = _last_line(fd, os.fstat(fd).st_size)
    except OSError:  # a folder of that name, ...
        last = None
        if not os.path.isfile(path):
            return None, False, False
    finally:
        os.close(fd)
    if last is not None:
        try:
            row = json.loads(last)
        except (ValueError, UnicodeDecodeError):
            row = None
        if isinstance(row, dict) and row.get("event") == "end":
            return row, True, False
    return _end_line_of_all(path), True, True


def _last_line(fd: int, size: int) -> bytes | None:
    """The last non-blank line of the file open as ``fd``, of ``size`` bytes (None: none)."""
    window = _TAIL_BYTES
    while True:
        start = max(0, size - window)
        text = os.pread(fd, size - start, start).rstrip()
        cut = text.rfind(b"\n")
        if cut >= 0 or start == 0:
            line = text[cut + 1:].strip()
            return line or None
        window *= 4


def _end_line_of_all(path: str) -> dict[str, Any] | None:
    end = None
    for _, row in _numbered_rows(Path(path)):
        if row.get("event") == "end":
            end = row
    return end


_OPTIONAL = {"study": (int, type(None)), "trial": (int, type(None)), "ruleset": (str,),
             "submission_revision": (int,), "hparams": (dict,), "schema_version": (int, type(None)),
             "precision": (str,)}
_OPTIONAL_SUMMARY = {"steps_to_target": (int, float, type(None)), "best_validation": (int, float, type(None)),
                     "memory": (dict, type(None)), "pruned": (dict, type(None)), "routing": (dict, type(None))}


def _fits(data: dict[str, Any], fields: tuple[tuple[str, frozenset[type]], ...], optional: bool = False) -> bool:
    """Whether every key of ``fields`` in ``data`` (with ``optional``: when present) has one of its
    types exactly. For values parsed from JSON (dict, list, str, int, float, bool, None) this is
    :func:`harness.core.records.check_fields`' test (bool is not a number), only quicker; a False
    is handed to the full check, which names what is wrong."""
    for key, types in fields:
        value = data.get(key, _ABSENT)
        if type(value) not in types and not (optional and value is _ABSENT):
            return False
    return True


_ABSENT = object()
_EXACT = {id(fields): tuple((key, frozenset(types)) for key, types in fields.items())
          for fields in (MANIFEST_FIELDS, SUMMARY_FIELDS, _OPTIONAL, _OPTIONAL_SUMMARY)}


def _check_for_scoring(manifest: dict[str, Any], path: Path | str) -> None:
    """What scoring relies on beyond :func:`harness.core.records.read_manifest`'s checks: the optional
    keys' types, and an outcome that agrees with itself (a finite time exactly when reached)."""
    for fields, data, where in ((_OPTIONAL, manifest, ""), (_OPTIONAL_SUMMARY, manifest.get("summary") or {},
                                                             "summary.")):
        if _fits(data, _EXACT[id(fields)], optional=True):
            continue
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


def _row(manifest: dict[str, Any], folder: str, evals_file: bool) -> dict[str, Any]:
    summary = manifest["summary"]
    ttt = summary["time_to_target_s"]
    memory, pruned, routing = (summary.get(k) or {} for k in ("memory", "pruned", "routing"))
    device = manifest.get("device")
    return {
        "workload": manifest["workload"],
        "size": manifest["size"],
        "submission": manifest["submission"],
        "submission_revision": manifest.get("submission_revision", 1),
        "precision": manifest.get("precision", "fp32"),  # absent: made before precisions existed, fp32
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
        "record_dir": folder,
        "evals_file": evals_file,
        "state_bytes_per_param": memory.get("optimizer_state_bytes_per_parameter"),
        "peak_memory_bytes": memory.get("peak_memory_bytes"),
        "peak_memory_kind": memory.get("peak_memory_kind"),  # cuda_max_allocated | cpu_rss_growth
        "device_type": device.get("type") if isinstance(device, dict) else None,
        "process": _process(manifest.get("attempts")),
        "pruned_rule": pruned.get("rule"),
        "pruned_tau_max": pruned.get("tau_max"),
        "special_component": routing.get("special"),
        "special_parameters": routing.get("special_parameters"),
        "audit": _audit_kinds(manifest.get("submission_audit")),
        "clock_suspect": bool((summary.get("timing") or {}).get("clock_suspect", False)),
        **{f"hp.{k}": v for k, v in manifest.get("hparams", {}).items()},
    }


def _audit_kinds(audit: Any) -> str:
    """The kinds of escape hatch the submission's source audit found (harness/core/source_audit.py),
    comma-separated; "" for none or a record without an audit."""
    kinds = audit.get("kinds") if isinstance(audit, dict) else None
    return ", ".join(str(k) for k in kinds) if isinstance(kinds, list) else ""


def _process(attempts: Any) -> str | None:
    """``host:pid`` of the process that ran the trial's last attempt (where its memory was measured),
    or None when the manifest does not say."""
    last = attempts[-1] if isinstance(attempts, list) and attempts else None
    if not isinstance(last, dict) or last.get("pid") is None:
        return None
    return f"{last.get('host')}:{last['pid']}"


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


def _evaluations(record_dir: Path) -> list[dict[str, Any]]:
    path = Path(record_dir) / EVALS_FILE
    rows = []
    for number, row in _numbered_rows(path):
        if row.get("event") != "eval":
            continue
        step, seconds, metrics = row.get("step"), row.get("submission_time_s"), row.get("metrics")
        if not (_is_number(step) and _is_number(seconds) and isinstance(metrics, dict)):
            warnings.warn(f"{path}:{number}: skipped an evaluation line; expected step and submission_time_s "
                          f"(numbers) and metrics (an object)", stacklevel=3)
            continue
        rows.append({"step": step, "submission_time_s": seconds, **metrics})
    return rows


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
