"""A per-sweep index of what scoring read from each finished trial, so that scoring the same
results again checks each trial's files instead of reading them.

Why: reading 100,000 trials (two files each, and every sweep's plan with its resolved configs)
is most of ``optbench score``'s time on a large board, yet a finished trial's records do not
change. The index, ``<sweep folder>/.score-index.json``, keeps the rows :mod:`scoring.records`
made of the trials, by column, and per trial the identity of both files its row came from (inode,
size, modification and change times in ns: any write, rename or restore changes one of them); the
digest of the sweep's plan with the identity of its ``sweep.json``; the identity of every other
folder the walk listed (a folder's times change when an entry is added, removed or renamed); and
the entries of the sweep folder itself (whose times the index's own writes change).
A trial is taken from the index only when both of its files are still exactly those; anything
else is read from the records again, and the index rewritten. When the index was written
*complete* (every planned trial read cleanly, nothing else found) and no folder, plan or trial
file changed since, the whole sweep is taken from it without walking its folders. Only trials
read cleanly are kept (a final status, no problem, the ``evals.jsonl`` end line found at its
tail); running, damaged or incomplete ones are read every time.

The index is tied to the reader: a hash of the modules that turn records into rows
(``READER_MODULES``), so another version of optbench never uses rows this one made. It is a
cache, safe to delete; ``optbench score index=false`` neither reads nor writes it. It is written
as a temporary file renamed over the old one, without fsync: a crash leaves the old index, the
new one or an unreadable file, and an unreadable index is ignored (and rewritten).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from typing import Any

from harness.core.records import EVALS_FILE, MANIFEST_FILE
from harness.core.sweep_file import SWEEP_FILE

INDEX_FILE = ".score-index.json"
KIND = "optbench-score-index"
READER_MODULES = ("scoring.record_walk", "scoring.trial_files", "scoring.record_index", "harness.core.records",
                  "harness.core.sweep_file", "harness.config.code_files")

FileKey = list  # [st_ino, st_size, st_mtime_ns, st_ctime_ns] (a folder: without the size)


def file_key(path: str) -> FileKey | None:
    """The identity of the file at ``path`` as the index compares it; None when it is not a file."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    if (found.st_mode & 0o170000) != 0o100000:  # not a regular file
        return None
    return [found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns]


def entry_names(found: Iterable[os.DirEntry]) -> list[str]:
    """The names of a folder's entries ``found`` but the index's own files, sorted, a folder's
    ending with the separator: what the sweep folder is compared by."""
    names = [entry.name + os.sep if entry.is_dir(follow_symlinks=False) else entry.name for entry in found]
    return sorted(name for name in names if not name.startswith((INDEX_FILE, f".{INDEX_FILE}.")))


def _entries(folder: str) -> list[str] | None:
    try:
        with os.scandir(folder) as found:
            return entry_names(found)
    except OSError:
        return None


def folder_key(path: str) -> FileKey | None:
    """The identity of the folder at ``path`` (None when there is none): its times change whenever
    an entry in it is added, removed or renamed."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return [found.st_ino, found.st_mtime_ns, found.st_ctime_ns]


_reader: list[str | None] = []


def reader_key() -> str | None:
    """A hash of the reader's source files (None, and no index, when one cannot be read). The
    files are found without importing them, so that every process gets the same key whatever it
    has imported."""
    if not _reader:
        digest = hashlib.sha256()
        try:
            for name in READER_MODULES:
                with open(importlib.util.find_spec(name).origin, "rb") as source:
                    digest.update(source.read())
            _reader.append(digest.hexdigest()[:20])
        except (AttributeError, ImportError, TypeError, ValueError, OSError):
            _reader.append(None)
    return _reader[0]


class SweepIndex:
    """The index of one sweep folder (spelled as the reader spells it): load it, ask it, add to
    it, save it if anything changed. Paths inside are relative to the sweep folder.

    Its rows are kept by column (``data``: a list of every trial's values per column, in the order
    of ``names``), which is what a DataFrame is built from: an unchanged sweep's trials go to the
    reader's table as whole columns, without a Python object per row."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path = self._join(INDEX_FILE)
        self.columns: list[str] = []
        self.data: dict[str, list[Any]] = {}  # column -> every trial's value, in the order of names
        self.names: list[str] = []  # trial folders (relative)
        self.files: list[list[Any]] = []  # per trial [manifest key, evals key]
        self._at: dict[str, int] = {}  # trial folder -> its place in names
        self.plan: list[Any] | None = None  # [sweep.json key, digest]
        self.folders: dict[str, Any] = {}  # every folder the walk listed -> its key before listing ("": entries)
        self.complete = False  # written after a read with nothing missing, unfinished or damaged
        self.used: list[str] = []  # trials read (from here or afresh), in the reader's order
        self._listed: set[str] | None = None  # the folders this walk listed (None: no walk)
        self.hits = 0
        self.skipped = False  # a trial read this time is not kept (see skip)
        self.changed = False
        self._load()

    def _join(self, relative: str) -> str:
        if not relative:
            return self.folder
        if self.folder == ".":
            return relative
        return self.folder + relative if self.folder.endswith(os.sep) else self.folder + os.sep + relative

    def relative(self, path: str) -> str:
        """``path`` (spelled as the reader spells paths under this sweep's folder) relative to it."""
        if self.folder == ".":
            return "" if path == "." else path
        return path[len(self.folder) + (not self.folder.endswith(os.sep)):]

    def _load(self) -> None:
        key = reader_key()
        try:
            with open(self.path, "rb") as f:
                stored = json.loads(f.read())
            if key is None or stored["kind"] != KIND or stored["reader"] != key:
                raise ValueError("another reader")
            columns, plan, folders = stored["columns"], stored["plan"], stored["folders"]
            names, files = stored["trials"], stored["files"]
            if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)
                    and isinstance(folders, dict) and (plan is None or (isinstance(plan, list) and len(plan) == 2))
                    and isinstance(names, list) and all(isinstance(n, str) for n in names)
                    and isinstance(files, list) and len(files) == len(names)
                    and all(isinstance(f, list) and len(f) == 2 for f in files)):
                raise ValueError("malformed")
            data = _expand(columns, stored["constants"], stored["values"], len(names))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # none yet, unreadable, stale: start afresh
            self.changed = os.path.exists(self.path)
            return
        self.columns, self.data, self.names, self.files = columns, data, names, files
        self._at = {name: i for i, name in enumerate(names)}
        self.plan, self.folders = plan, folders
        self.complete = stored.get("complete") is True

    # ---------------------------------------------------------------- a whole sweep, unchanged
    def unchanged_columns(self) -> dict[str, list[Any]] | None:
        """Every stored trial as columns (``record_dir`` set to each trial's folder), in the reader's
        order, when the index was complete and no folder, plan or trial file changed since; else None."""
        if not (self.complete and self.names and self.plan is not None and "record_dir" in self.data):
            return None
        if any((_entries(self.folder) if not relative else folder_key(self._join(relative))) != key
               for relative, key in self.folders.items()):
            return None
        if file_key(self._join(SWEEP_FILE)) != self.plan[0]:
            return None
        folders = [self._join(name) for name in self.names]
        manifest, evals = os.sep + MANIFEST_FILE, os.sep + EVALS_FILE
        for folder, stored in zip(folders, self.files):
            if [file_key(folder + manifest), file_key(folder + evals)] != stored:
                return None
        self.used = list(self.names)
        self.hits = len(self.names)
        return {**self.data, "record_dir": folders}

    def planned_count(self) -> int:
        """How many trials the stored plan lists."""
        return len(self.plan[1]["trials"]) if self.plan is not None else 0

    def planned_per_study(self) -> int:
        """The most trials the stored plan gives one study."""
        return trials_per_study(self.plan[1]) if self.plan is not None else 0

    # ---------------------------------------------------------------- the walk and the plan
    def note_folder(self, path: str, key: FileKey | list[str] | None) -> None:
        """Record that the walk listed ``path``, whose key (taken before listing) was ``key``; for
        the sweep folder itself, its :func:`entry_names` as listed."""
        relative = self.relative(path)
        if self.folders.get(relative, False) != key:
            self.changed = True
        self.folders[relative] = key
        if self._listed is None:
            self._listed = set()
        self._listed.add(relative)

    def cached_plan(self, key: FileKey | None) -> dict[str, Any] | None:
        """The plan digest stored for a ``sweep.json`` whose identity is ``key``, else None."""
        if key is not None and self.plan is not None and self.plan[0] == key and isinstance(self.plan[1], dict):
            return self.plan[1]
        return None

    def store_plan(self, key: FileKey | None, digest: dict[str, Any]) -> None:
        if key is not None:
            self.plan = [key, digest]
            self.changed = True

    # ---------------------------------------------------------------- trials
    def row(self, trial: str, manifest: FileKey, evals: FileKey | None) -> list[Any] | None:
        """The row stored for ``trial`` (relative), as values in the order of ``columns`` (nan for a
        column it lacks), if its files are still those it came from; else None."""
        at = self._at.get(trial)
        if at is None or evals is None or self.files[at] != [manifest, evals]:
            return None
        self.used.append(trial)
        self.hits += 1
        return [self.data[name][at] for name in self.columns]

    def store(self, trial: str, manifest: FileKey | None, evals: FileKey | None, row: dict[str, Any]) -> None:
        """Keep ``row`` (read from files whose identities are ``manifest`` and ``evals``)."""
        if manifest is None or evals is None:
            self.skip()
            return
        for name in row:
            if name not in self.data:
                self.columns.append(name)
                self.data[name] = [math.nan] * len(self.names)
        at = self._at.get(trial)
        if at is None:
            at = self._at[trial] = len(self.names)
            self.names.append(trial)
            self.files.append([manifest, evals])
            for name in self.columns:
                self.data[name].append(row.get(name, math.nan))
        else:
            self.files[at] = [manifest, evals]
            for name in self.columns:
                self.data[name][at] = row.get(name, math.nan)
        self.used.append(trial)
        self.changed = True

    def skip(self) -> None:
        """Note a trial that was read and scored but is not kept here (it had to be read whole, or a
        file's identity could not be taken): the sweep must be walked, not taken whole, next time."""
        self.skipped = True

    def save(self, complete: bool) -> bool:
        """Write the index when it changed: the trials read this time, in their order; ``complete``
        when nothing under the sweep was missing, unfinished or damaged. False when it cannot be
        written (read-only results, a full disk, ...): scoring stays right, only slower."""
        listed = self._listed if self._listed is not None else set(self.folders)
        kept = [self._at[trial] for trial in self.used if trial in self._at]
        complete = complete and not self.skipped and len(kept) == len(self.used)
        if not (self.changed or complete != self.complete or kept != list(range(len(self.names)))
                or listed != set(self.folders)):
            return True
        self.complete = complete
        self.folders = {relative: key for relative, key in self.folders.items() if relative in listed}
        names, files = [self.names[i] for i in kept], [self.files[i] for i in kept]
        constants, values = _compact(self.columns, {name: [self.data[name][i] for i in kept] for name in self.columns})
        stored = {"kind": KIND, "reader": reader_key(), "complete": self.complete, "plan": self.plan,
                  "folders": self.folders, "columns": self.columns, "constants": constants, "trials": names,
                  "files": files, "values": values}
        tmp = self._join(f".{INDEX_FILE}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(stored, f, separators=(",", ":"))
            os.replace(tmp, self.path)
        except (OSError, ValueError, TypeError):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return False
        return True


# On disk, the values are stored by column; a column with one value in every trial of the sweep (its
# workload, submission, target, ...: about half of them) is stored once, under "constants". Read
# back, such a column is that one value object repeated, which is what makes sending the columns
# between processes cheap (pickle stores a shared object once).
def _compact(columns: list[str], data: dict[str, list[Any]]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    constants, values = {}, {}
    for name in columns:
        column = data[name]
        if column and all(_same(value, column[0]) for value in column):
            constants[name] = column[0]
        else:
            values[name] = column
    return constants, values


def _expand(columns: list[str], constants: dict[str, Any], values: dict[str, list[Any]],
            count: int) -> dict[str, list[Any]]:
    """The columns of :func:`_compact`'s output, each ``count`` long (raises on anything malformed)."""
    if not (isinstance(constants, dict) and isinstance(values, dict)):
        raise ValueError("malformed")
    data = {}
    for name in columns:
        if name in constants:
            data[name] = [constants[name]] * count
        elif isinstance(values.get(name), list) and len(values[name]) == count:
            data[name] = values[name]
        else:
            raise ValueError("a column of another length")
    return data


def _same(a: Any, b: Any) -> bool:
    """Equal and of one type (1, 1.0 and True stay apart); two nans are the same."""
    if type(a) is not type(b):
        return False
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def trials_per_study(digest: dict[str, Any]) -> int:
    """The most trials a plan's digest (its ``trials``: [study, trial, seed] each) gives one study:
    the sweep's tuning budget per study, which scoring compares across submissions."""
    studies = Counter(entry[0] for entry in digest["trials"])
    return max(studies.values(), default=0)
