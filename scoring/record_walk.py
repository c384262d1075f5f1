"""Finding and reading every trial under a results folder for scoring: each sweep (its plan, and
its trials through its index) and each lone trial, in path order, as columns of plain Python values
(:class:`Table`; :func:`scoring.records.read_records` makes the DataFrame).

On a large board the reading is shared by forked processes (:class:`Reading`). ``optbench score``
starts it right after reading its settings, before it imports pandas, matplotlib and the scoring
code (0.6-0.8 s of one CPU); the workers read meanwhile, and this process takes its share when
its imports are done. So the work is handed out in chunks of folders claimed one at a time from
a shared counter, not in equal shares fixed in advance: whoever is free takes the next chunk.
The result is what one process reading every folder in order gives. This module (and those it
imports) holds no pandas or NumPy for that reason.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import pickle
import sys
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.core.records import EVALS_FILE, MANIFEST_FILE, DamagedRecord, check_fields, read_json
from harness.core.sweep_file import ENTRY_FIELDS, SWEEP_FIELDS, SWEEP_FILE, check_place
from harness.errors import UserError
from harness.paths import Unreadable, subfolders, walk_folders
from scoring.forked import can_fork, usable_cpus
from scoring.record_index import SweepIndex, entry_names, file_key, folder_key, trials_per_study
from scoring.trial_files import (
    MISPLACED,
    MISSING,
    STRAY,
    SWEEP,
    UNREADABLE,
    Problem,
    _child,
    _problem,
    _read_trial_files,
)

# From this many units (sweep folders and lone trial folders) on, the reading uses several processes.
READ_PARALLEL_FROM = 200
# Each process's share is split in this many chunks (claimed one at a time: see the module's docstring).
CHUNKS_PER_PROCESS = 8


class Reading:
    """The reading of every unit (sweep folder or lone trial folder, see :func:`_units`) under
    ``root``, started when made: with more than one process (``workers``; default one per CPU, at
    most 4, from ``READ_PARALLEL_FROM`` units on) the other ``workers - 1`` are forked at once and
    start claiming chunks; :meth:`result` reads the chunks left here and gathers them all, in order.

    A worker that cannot be started, or dies, costs time only: every chunk no worker sent back is
    read here. With ``index``, sweeps are read through their indexes (:mod:`scoring.record_index`)."""

    def __init__(self, root: str, index: bool = False, workers: int | None = None) -> None:
        self.index, self.root = index, root
        units = _units(root)
        if workers is None:
            workers = min(4, usable_cpus()) if len(units) >= READ_PARALLEL_FROM else 1
        size = max(1, -(-len(units) // (max(1, workers) * CHUNKS_PER_PROCESS)))
        self.chunks = [units[i:i + size] for i in range(0, len(units), size)]
        self.workers: list[tuple[Any, Any, Any]] = []  # (process, the end its count arrives at, its chunks' file)
        self.claimed = 0  # chunks handed out, when no worker shares them
        self.counter = None  # the next chunk, in shared memory, when workers share them
        if workers > 1 and len(self.chunks) > 1 and can_fork():
            self._fork(min(workers, len(self.chunks)) - 1)

    def _fork(self, count: int) -> None:
        context = mp.get_context("fork")
        self.counter = context.Value("i", 0)
        for stream in (sys.stdout, sys.stderr):  # else what they hold would be written by every process
            stream.flush()
        for _ in range(count):
            spill = None
            try:  # its chunks, written as read, to a file without a name (gone when closed, in result)
                spill = tempfile.TemporaryFile()  # noqa: SIM115
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=_work, args=(self, spill, send), daemon=True)
                process.start()
                send.close()
            except OSError:  # no process or file to be had (limits, memory, disk): fewer read
                if spill is not None:
                    spill.close()
                break
            self.workers.append((process, receive, spill))

    def claim(self) -> int | None:
        """The number of the next chunk nobody has read (None: none left)."""
        if self.counter is None:
            self.claimed += 1
            return self.claimed - 1 if self.claimed <= len(self.chunks) else None
        with self.counter.get_lock():
            number = self.counter.value
            if number >= len(self.chunks):
                return None
            self.counter.value = number + 1
        return number

    def read(self, number: int) -> Part:
        return _read_units(self.chunks[number], self.index, self.root)

    def result(self) -> Part:
        """Everything read, in the units' order (the chunks left read here; the workers' gathered)."""
        parts: dict[int, Part] = {}
        while (number := self.claim()) is not None:
            parts[number] = self.read(number)
        for process, receive, spill in self.workers:
            with contextlib.suppress(EOFError, OSError):  # it died: what it claimed is read below
                count = receive.recv()
                spill.seek(0)
                parts.update(pickle.load(spill) for _ in range(count))
            process.join()
            receive.close()
            spill.close()
        self.workers = []
        return Part.joined([parts[n] if n in parts else self.read(n) for n in range(len(self.chunks))])


def _work(reading: Reading, spill: Any, send: Any) -> None:
    """In a forked worker: read chunks while there are any, each written to ``spill`` as soon as it
    is read (so that little is left to send when the last one is done), then say how many."""
    count = 0
    try:
        while (number := reading.claim()) is not None:
            pickle.dump((number, reading.read(number)), spill, protocol=pickle.HIGHEST_PROTOCOL)
            count += 1
        spill.flush()
        send.send(count)
    finally:
        send.close()


def _units(root: str) -> list[tuple[str, bool | str]]:
    """(folder, is a sweep) of every sweep folder (holding a sweep.json) and every other folder
    holding a manifest.json or an evals.jsonl under ``root``, in path order; (folder, "unreadable:
    why") of every folder that cannot be listed (scored as a problem: what is under it is unknown);
    and (root, "misplaced") where ``root`` holds record files beside other records (a results folder,
    not a trial's: they are named, not read). Found
    by :func:`harness.paths.walk_folders` (symbolic links to folders followed); a sweep folder's
    inside is left to :func:`_scan`."""
    units: list[tuple[str, bool | str]] = []

    def descend(folder: str, entries: list[os.DirEntry]) -> bool:
        names = {entry.name for entry in entries if entry.name in _FILES and _exists(entry)}
        if SWEEP_FILE in names:
            units.append((folder, True))
            return False
        if names:
            units.append((folder, False))
        return True

    for found in walk_folders(root, descend):
        if isinstance(found, Unreadable):
            units.append((found.folder, _UNREADABLE + found.reason))
    if (root, False) in units and len(units) > 1:  # record files beside the records of a results folder
        units[units.index((root, False))] = (root, _MISPLACED)
    return sorted(units, key=lambda unit: _path_key(unit[0]))


# what a unit that is neither a sweep nor a trial folder is (see _units): the second item of its pair
_UNREADABLE, _MISPLACED = "unreadable: ", "misplaced"


_FILES = (MANIFEST_FILE, EVALS_FILE, SWEEP_FILE)


def _look(folder: str) -> tuple[list[os.DirEntry], set[str]] | OSError:
    """The folder's entries and which record files (``_FILES``) it holds; the error if it cannot be listed."""
    try:
        with os.scandir(folder) as found:
            entries = list(found)
    except OSError as error:  # unreadable, or gone meanwhile
        return error
    return entries, {entry.name for entry in entries if entry.name in _FILES and _exists(entry)}


def _exists(entry: os.DirEntry) -> bool:
    return not entry.is_symlink() or os.path.exists(entry.path)


def _unreadable(root: str, folder: str, reason: str) -> Problem:
    """The problem of a folder under ``root`` that cannot be listed: its records are unknown. Below
    ``<workload>-<size>/<submission>/`` its submission's records of that workload are incomplete."""
    parts = Path(os.path.relpath(folder, root)).parts if root else ()
    workload, submission = (parts[0], parts[1]) if len(parts) >= 2 and parts[0] != os.pardir else (None, None)
    return Problem(UNREADABLE, Path(folder), Path(folder), f"cannot be listed ({reason}), so the records under it "
                   f"are unknown", submission, workload)


@dataclass
class Part:
    """What :func:`_read_units` read of some units, in their order."""

    rows: Table  # one per trial read
    counts: dict[Path, int]  # sweep folder -> its number of planned trials
    sweeps: list[Problem]  # unreadable sweep.json files
    problems: list[Problem]  # trials found that cannot be scored as they are
    missing: list[Problem]  # planned trials without their files
    warnings: list[tuple[str, type[Warning]]]  # raised while reading (to be raised again in the parent)
    indexed: int = 0  # trials taken from sweep indexes
    unindexed: list[Path] = field(default_factory=list)  # sweep folders whose index could not be written
    planless: dict[str, Planless] = field(default_factory=dict)  # sweep folder -> its trials found without a plan
    per_study: dict[Path, int] = field(default_factory=dict)  # sweep folder -> its planned trials per study

    @staticmethod
    def joined(parts: list[Part]) -> Part:
        """``parts`` as one, in their order (the unreadable plans of all first, as one read lists them)."""
        whole = Part(Table(), {}, [], [], [], [])
        for part in parts:
            whole.rows.add_columns(part.rows.columns, part.rows.data, part.rows.count)
            whole.counts.update(part.counts)
            whole.per_study.update(part.per_study)
            for name in ("sweeps", "problems", "missing", "warnings", "unindexed"):
                getattr(whole, name).extend(getattr(part, name))
            whole.indexed += part.indexed
            for sweep, found in part.planless.items():  # a sweep's trials may be in several parts
                whole.planless.setdefault(sweep, replace(found, count=0)).count += found.count
        whole.sweeps += [found.problem(sweep) for sweep, found in sorted(whole.planless.items())]
        return whole


def _read_units(units: list[tuple[str, bool | str]], index: bool = False, root: str = "") -> Part:
    """Read ``units`` (see :func:`_units`): every trial's row and every problem, in path order;
    with ``index``, through each sweep's index (:mod:`scoring.record_index`). Warnings raised
    meanwhile are kept in the result (to be raised by whoever gathers the parts, in order)."""
    rows = Table()
    counts: dict[Path, int] = {}
    per_study: dict[Path, int] = {}
    sweeps, problems, missing, unindexed = [], [], [], []
    indexed = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        planless: dict[str, Planless] = {}  # sweep trials found without their sweep's plan (_note_planless)
        for folder, is_sweep in units:
            if is_sweep == _MISPLACED:  # not a trial's folder: "delete the trial's folder" would mean all
                problems.append(Problem(MISPLACED, Path(folder), Path(folder), "record files (manifest.json, "
                                        "evals.jsonl) directly in the results folder, beside its records; not read"))
                continue
            if isinstance(is_sweep, str):  # a folder that cannot be listed: why
                problems.append(_unreadable(root, folder, is_sweep.removeprefix(_UNREADABLE)))
                continue
            if not is_sweep:
                if _read_into(rows, problems, folder, False, None, None) and rows.count:
                    _note_planless(planless, folder, _last_row(rows))
                continue
            cache = SweepIndex(folder) if index else None
            unchanged = cache.unchanged_columns() if cache is not None else None
            if unchanged is not None:  # nothing under it changed since its index was written complete
                counts[Path(folder)] = cache.planned_count()
                per_study[Path(folder)] = cache.planned_per_study()
                rows.add_columns(cache.columns, unchanged, cache.hits)
                indexed += cache.hits
                continue
            found = len(sweeps) + len(problems) + len(missing)
            scan = _scan(folder, cache)
            counts.update(scan.counts)
            per_study.update(scan.per_study)
            sweeps += sorted(scan.problems, key=lambda p: _path_key(str(p.file)))
            seen = set()
            damaged_plan = next((p for p in scan.problems if p.record_dir == Path(folder)), None)
            for trial in sorted(scan.folders, key=_path_key):
                if (foreign := scan.unplanned(trial)) is not None:
                    problems.append(foreign)
                    if cache is not None:
                        cache.skip()
                elif _read_into(rows, problems, trial, trial in scan.unlisted, *scan.planned.get(trial, (None, None)),
                                cache=cache):
                    seen.add(trial)
                    if damaged_plan is not None and rows.count:  # its plan unreadable: as if it had none
                        _note_planless(planless, trial, _last_row(rows), damaged_plan.detail)
            if damaged_plan is not None and folder in planless:  # said once, as the trials' sweep's problem
                sweeps.remove(damaged_plan)
            for trial in sorted(set(scan.planned) - seen, key=_path_key):
                sweep, entry = scan.planned[trial]
                hidden = next((f for f in scan.unreadable if trial == f or trial.startswith(f + os.sep)), None)
                if hidden is not None:
                    missing.append(_problem(UNREADABLE, Path(trial), Path(trial) / MANIFEST_FILE, f"cannot be read: "
                                            f"{hidden} cannot be listed ({scan.unreadable[hidden]})", sweep, entry))
                    continue
                missing.append(_problem(MISSING, Path(trial), Path(trial) / MANIFEST_FILE, "no manifest.json (not run "
                                        "yet, or its record was lost)", sweep, entry))
            if cache is not None:
                indexed += cache.hits
                clean = len(sweeps) + len(problems) + len(missing) == found and list(scan.counts) == [Path(folder)]
                if not cache.save(complete=clean):
                    unindexed.append(Path(folder))
    return Part(rows, counts, sweeps, problems, missing, [(str(w.message), w.category) for w in caught],
                indexed, unindexed, planless, per_study)


_SWEEP_TRIAL_KEYS = ("study", "ruleset", "submission", "workload", "size")


@dataclass
class Planless:
    """The trials of one tuning sweep found without its ``sweep.json``: the sweep's plan is gone, so
    the trials it planned that are not here cannot be listed (a study copied without the others
    would vanish without a word). :meth:`Part.joined` makes one problem per sweep folder of them."""

    submission: str
    workload: str  # <workload>-<size>
    ruleset: str
    count: int = 0
    damage: str = ""  # why its sweep.json cannot be read, where there is one

    def problem(self, sweep: str) -> Problem:
        state = f"damaged ({self.damage.removeprefix('damaged: ')})" if self.damage else "missing"
        return Problem(SWEEP, Path(sweep), Path(sweep) / SWEEP_FILE,
                       f"{state}: {self.count} trial{'s' if self.count > 1 else ''} of a tuning sweep (a study and "
                       f"trial in their manifests) found without a plan, so the trials it planned that are not here "
                       f"cannot be listed", self.submission, self.workload, self.ruleset, Path(sweep))


def _note_planless(planless: dict[str, Planless], folder: str, row: dict[str, Any], damage: str = "") -> None:
    """Count the trial just read from ``folder`` (``row``) in ``planless`` when its manifest says it
    is a tuning sweep's (a study, an external or self ruleset) but no ``sweep.json`` holds it (none,
    or one that cannot be read: ``damage`` says why)."""
    if row["record_dir"] != folder or row["ruleset"] not in ("external", "self") or not _is_study(row["study"]):
        return
    planless.setdefault(str(Path(folder).parent.parent),
                        Planless(row["submission"], f"{row['workload']}-{row['size']}", row["ruleset"],
                                 damage=damage)).count += 1


def _last_row(rows: Table) -> dict[str, Any]:
    """What :func:`_note_planless` reads of the row just added to ``rows``."""
    return {name: rows.data[name][-1] if name in rows.data else None for name in ("record_dir", *_SWEEP_TRIAL_KEYS)}


def _is_study(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_into(rows: Table, problems: list, folder: str, unlisted: bool, sweep: Any, entry: Any,
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
        if cache is not None and clean:
            cache.store(relative, *keys, {**row, "record_dir": None})  # its folder: where it is found
        elif cache is not None:
            cache.skip()
    return row is not None or problem is not None


class Table:
    """Rows kept by column under one growing list of columns (in order of first appearance, nan
    where a row lacks one): what :func:`scoring.records.read_records` makes the DataFrame of that
    ``pd.DataFrame(list of dicts)`` makes of the same rows, faster; a sweep's trials taken from its
    index are added as whole columns."""

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


@dataclass
class _Scan:
    """What one walk of a results folder found (paths spelled as ``str(Path(root) / ...)``)."""

    planned: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)  # folder -> (sweep, entry)
    counts: dict[Path, int] = field(default_factory=dict)  # sweep folder -> its number of planned trials
    per_study: dict[Path, int] = field(default_factory=dict)  # sweep folder -> its planned trials per study
    problems: list[Problem] = field(default_factory=list)  # sweep.json files that cannot be read
    folders: set[str] = field(default_factory=set)  # trial folders to read
    unlisted: set[str] = field(default_factory=set)  # of which planned ones not listed: their files may be absent
    root: str = ""  # the sweep folder walked
    unreadable: dict[str, str] = field(default_factory=dict)  # folders that could not be listed: why
    plan: dict[str, Any] | None = None  # its own plan's owner (_PLAN_KEYS), when its sweep.json could be read

    def unplanned(self, folder: str) -> Problem | None:
        """The problem of trial ``folder``, in a sweep whose plan was read, when the plan has no trial
        there (a study copied in beside the planned ones): not one of the sweep's trials."""
        if self.plan is None or folder in self.planned:
            return None
        plan = self.plan
        return Problem(STRAY, Path(folder), Path(_child(folder, MANIFEST_FILE)),
                       f"not a trial of the sweep's plan (its {SWEEP_FILE} plans none in this folder): a record "
                       f"copied or moved into the sweep's folder", plan["submission"],
                       f"{plan['workload']}-{plan['size']}", plan["ruleset"], Path(self.root))


def _scan(root: str, cache: SweepIndex | None = None) -> _Scan:
    """Walk ``root`` (a sweep folder) once, finding files as :func:`_units` does: every sweep.json,
    read when met (``root``'s own plan through ``cache``, its index, when given); every folder holding
    a manifest.json or an evals.jsonl; and every existing folder of a planned trial, not listed."""
    scan = _Scan(root=root)
    followed = [os.path.realpath(root)]  # links to folders followed once (harness.paths.subfolders)
    stack = [root]
    while stack:
        folder = stack.pop()
        key = folder_key(folder) if cache is not None else None  # before listing: a change meanwhile shows next time
        looked = _look(folder)
        if isinstance(looked, OSError):
            if not isinstance(looked, FileNotFoundError):
                scan.unreadable[folder] = looked.strerror or str(looked)
            continue
        entries, names = looked
        if cache is not None:
            cache.note_folder(folder, key if folder != root else entry_names(entries))
        if SWEEP_FILE in names:
            _add_plan(scan, folder, _child(folder, SWEEP_FILE), cache if folder == root else None)
        if MANIFEST_FILE in names or EVALS_FILE in names:
            scan.folders.add(folder)
        for child in subfolders(folder, entries, followed):
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
    scan.per_study[Path(folder)] = trials_per_study(digest)
    if folder == scan.root:
        scan.plan = sweep
    for study, trial, seed in digest["trials"]:
        scan.planned[_child(folder, f"study{study}", f"trial{trial}")] = (sweep, {"study": study, "trial": trial,
                                                                                   "seed": seed})


# What scoring keeps of a sweep plan: whose trials these are (for the problems' messages), and
# which (study, trial, seed) it planned.
_PLAN_KEYS = ("submission", "workload", "size", "ruleset")


def _plan_digest(sweep: dict[str, Any]) -> dict[str, Any]:
    return {**{name: sweep[name] for name in _PLAN_KEYS},
            "trials": [[entry["study"], entry["trial"], entry["seed"]] for entry in sweep["trials"]]}


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
    check_place(sweep, path)
    for position, entry in enumerate(sweep["trials"]):
        if not isinstance(entry, dict):
            raise DamagedRecord(path, f"trials[{position}] should be an object")
        check_fields(entry, ENTRY_FIELDS, path, where=f"trials[{position}].")
    return sweep

