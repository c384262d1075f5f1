"""Trial records: a JSON manifest (rewritten atomically) and an append-only JSONL of events.

Layout of one trial (the schema is documented in ``results/README.md``)::

    <results>/<workload>-<size>/<submission>/seed<seed>-<config hash>/
        manifest.json   what ran: config, hyperparameters, versions, device, status, summary
        evals.jsonl     one line per evaluation, then one "end" line with the outcome

A manifest is replaced with write-to-temp + fsync + rename, so a reader sees the old or the new
file, never half of one. JSONL lines are appended with one ``write`` each and fsynced; a line
torn by a crash is skipped by :func:`read_jsonl` and sealed off by the next append.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

from harness.config.code_files import code_changes
from harness.errors import NOT_THE_SUBMISSIONS, WORKLOAD_PARTS, OptbenchWarning, UserError

#: a trial's ``peak_memory_kind`` where the CPU's peak is not measured: it compiled its model in its
#: process (harness/core/memory.py)
COMPILED_ON_CPU = "not_measured_compiled_on_cpu"

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"  # a trial's manifest (written whole, atomically)
EVALS_FILE = "evals.jsonl"  # its evaluations, one JSON line each, appended; ends with an "end" line
FINAL_STATUSES = ("reached", "not_reached", "pruned", "diverged", "failed")

# What a manifest must hold, by the types a reader relies on (bool is not a number here).
_NUMBER = (int, float)
MANIFEST_FIELDS: dict[str, tuple[type, ...]] = {
    "workload": (str,), "size": (str,), "submission": (str,), "seed": (int,), "status": (str,),
    "config_hash": (str,), "metric": (str,), "higher_is_better": (bool,), "target": (*_NUMBER, type(None)),
    "max_runtime_s": _NUMBER,
}
SUMMARY_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,), "time_to_target_s": (*_NUMBER, type(None)), "steps": (int,),
    "submission_time_s": _NUMBER,
}


class DamagedRecord(UserError):
    """A record file that exists but cannot be used (torn, truncated, edited, of another kind).

    The message names the file, what was expected and what to do; ``path`` is the file.
    Readers that walk many records (status, score, tune) catch it, list the damaged trial and
    go on; a command that needs that one record stops with it (exit 2).
    """

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = Path(path), problem
        todo = (f"restore it from a copy, or delete the trial's folder ({self.path.parent}) to run that trial again"
                if self.path.name in (MANIFEST_FILE, EVALS_FILE) else "restore it from a copy (the records "
                "beside it are not touched)")
        super().__init__(f"{path}: {problem}. The file is left as it is; {todo}.")


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats by None (JSON has no inf/nan); None means 'never'/'undefined'."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(_json_safe(data), indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new file.

    Written to a temporary file beside it, fsynced, renamed over it; on any failure (a full disk,
    a file-size limit) the temporary file is removed and the error raised.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line durably; first seal a torn last line left by an earlier crash."""
    line = (json.dumps(_json_safe(row), sort_keys=True, allow_nan=False) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = b"\n" + line
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All well-formed lines of a JSONL file; a torn or corrupt line is skipped with a warning."""
    return [row for _, row in numbered_jsonl(path)]


def numbered_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of every well-formed line of a JSONL file.

    A torn or corrupt line is skipped with a warning naming the file and line (one call site, so
    under Python's default filter each such line is reported once per run).
    """
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number}: skipped a partial or corrupt record line",
                              OptbenchWarning, stacklevel=3)
                continue
            if isinstance(row, dict):
                rows.append((number, row))
    return rows


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when the file does not exist.

    Anything else that is not a JSON object (empty, torn, binary, a list) raises
    :class:`DamagedRecord` naming the file: never a bare JSONDecodeError or a crash later on.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError):  # absent, or a folder above it is a file
        return None
    except IsADirectoryError:
        raise DamagedRecord(path, "expected a JSON file, found a folder") from None
    except OSError as error:
        raise DamagedRecord(path, f"cannot be read ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedRecord(path, f"not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DamagedRecord(path, f"expected a JSON object, found a {type(data).__name__}")
    return data


def check_fields(data: dict[str, Any], fields: dict[str, tuple[type, ...]], path: Path, where: str = "") -> None:
    """Raise :class:`DamagedRecord` unless every key of ``fields`` is in ``data`` with an allowed type."""
    for key, types in fields.items():
        value = data.get(key, ...)
        if value is ... or not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            found = "missing" if value is ... else f"{type(value).__name__} {value!r}"[:80]
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise DamagedRecord(path, f"{where}'{key}' should be {expected}, found {found}")


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A trial's manifest, checked: None when missing, :class:`DamagedRecord` when unusable.

    A finished manifest (a final status) must also carry its summary with the outcome fields.
    """
    manifest = read_json(path)
    if manifest is None:
        return None
    check_fields(manifest, MANIFEST_FIELDS, path)
    if manifest["status"] in FINAL_STATUSES:
        summary = manifest.get("summary")
        if not isinstance(summary, dict):
            raise DamagedRecord(path, f"status is '{manifest['status']}' but there is no summary object")
        check_fields(summary, SUMMARY_FIELDS, path, where="summary.")
    elif manifest["status"] != "running":
        raise DamagedRecord(path, f"unknown status '{manifest['status']}' (expected running or one of "
                                  f"{', '.join(FINAL_STATUSES)})")
    return manifest


def harness_failed(manifest: dict[str, Any] | None) -> bool:
    """A final record whose failure was not the submission's (:data:`NOT_THE_SUBMISSIONS`: the
    harness's, such as an I/O error, or the workload's evaluation): a rerun retries it instead of
    returning it as finished."""
    summary = (manifest or {}).get("summary") or {}
    return summary.get("status") == "failed" and summary.get("error_in") in NOT_THE_SUBMISSIONS


def failed_part(manifest: dict[str, Any] | None) -> str:
    """Whose failure ended a :func:`harness_failed` record, in words."""
    error_in = ((manifest or {}).get("summary") or {}).get("error_in")
    return f"workload's {WORKLOAD_PARTS[error_in]}" if error_in in WORKLOAD_PARTS else "harness"


# Settings that change what a trial is charged (a trainer process's transfers; the cores a CPU trial
# trains on) but not what it computes, so not part of its identity, whose hash names the records made
# before: a record is taken as the answer to a command only under the same ones (:func:`setting_changes`).
CHARGED_SETTINGS = {"isolation": "", "threads": " (torch's default)"}  # what an unset value means


def setting_changes(manifest: dict[str, Any], config: Any) -> str:
    """Which :data:`CHARGED_SETTINGS` the record of ``manifest`` was made with other than ``config``
    asks ("" when none; a record that does not say is not counted)."""
    then = manifest.get("config")
    if not isinstance(then, dict):
        return ""
    return "; ".join(f"{_setting(key, then[key])} then, {_setting(key, config.get(key))} now"
                     for key in CHARGED_SETTINGS if key in then and then[key] != config.get(key))


def _setting(key: str, value: Any) -> str:
    return f"{key}=null{CHARGED_SETTINGS[key]}" if value is None else f"{key}={value}"


def confinement_change(manifest: dict[str, Any], config: Any) -> str:
    """Where ``config`` asks ``sandbox=true`` of a trainer process, a record whose trainer was not
    confined (its manifest's ``sandbox``; a record made before the sandbox does not say) in words;
    "" otherwise. Under ``sandbox=auto`` such a record is returned, and the leaderboard notes it."""
    if str(config.get("sandbox")).lower() != "true" or config.get("isolation") != "process":
        return ""
    then = manifest.get("sandbox")
    if isinstance(then, dict) and then.get("confined") is True:
        return ""
    why = then.get("why") if isinstance(then, dict) else "made before trainers were sandboxed"
    return f"a trainer not confined then ({why}), sandbox=true now"


def made_otherwise(manifest: dict[str, Any], cfg: Any, submission_cls: type, workload_cls: type,
                   data: str | None = None, device: dict[str, Any] | None = None) -> str:
    """How the record of ``manifest`` was made other than ``cfg`` asks now, in words: with other code
    (the submission's or workload's source changed), other charged settings (``isolation``,
    ``threads``: not in the identity; an unconfined trainer where ``sandbox=true`` is asked), where
    ``data`` (the loaded workload's :meth:`~harness.workload.Workload.data_digest`) is given, other
    data, and where ``device``
    (:func:`harness.core.environment.describe_device` of this machine) is given, other hardware;
    "" when none."""
    settings = "; ".join(filter(None, (setting_changes(manifest, cfg), confinement_change(manifest, cfg))))
    parts = [f"other {what}: {change}" for what, change in (
        ("code", code_changes(manifest, submission_cls, workload_cls)), ("settings", settings),
        ("data", data_change(manifest, data)), ("hardware", hardware_change(manifest, device))) if change]
    return "; and ".join(parts)


HARDWARE_KEYS = {"cuda": "name", "cpu": "cpu_model"}  # what names a device's kind in a manifest's ``device``


def hardware_change(manifest: dict[str, Any], device: dict[str, Any] | None) -> str:
    """The processor or GPU model then and now, where both are told and differ ("" otherwise): a
    trial's charged time measured partly on one and partly on another is no machine's time, and
    score, which refuses two models on one workload, reads the manifest's first one alone."""
    then = manifest.get("device")
    if not isinstance(then, dict) or device is None:
        return ""
    key = HARDWARE_KEYS.get(str(then.get("type")))
    if key is None or not then.get(key) or not device.get(key) or then[key] == device[key]:
        return ""
    return f"{key} {then[key]!r} then, {device[key]!r} now"


def data_change(manifest: dict[str, Any], data: str | None) -> str:
    """The examples' sha256 then and now, where both are told and differ ("" otherwise): the path in
    data_dir= is not part of a trial's identity, so another copy of a dataset (re-encoded, cropped, a
    newer release) would find the first copy's records."""
    then = manifest.get("data_sha256")
    if not isinstance(then, str) or not data or then == data:
        return ""
    return f"data_sha256 {then[:12]} then, {data[:12]} now (the examples read now are not those it was made on)"


class TrialRecord:
    """The record folder of one trial."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.manifest_path = directory / MANIFEST_FILE
        self.evals_path = directory / EVALS_FILE

    def manifest(self) -> dict[str, Any] | None:
        return read_manifest(self.manifest_path)

    def set_aside(self) -> list[str]:
        """Rename a finished record's manifest.json and evals.jsonl to ``*.previous-N.*`` (N: the
        first free number), so that the trial can run again without losing them; the new names."""
        number = 1
        while any((self.dir / _previous(path.name, number)).exists() for path in (self.manifest_path, self.evals_path)):
            number += 1
        kept = []
        for path in (self.manifest_path, self.evals_path):
            if path.exists():
                path.rename(self.dir / _previous(path.name, number))
                kept.append(_previous(path.name, number))
        return kept

    def finished(self) -> bool:
        """Ended for good: a final status that is not a harness failure (those are retried)."""
        manifest = self.manifest()
        return bool(manifest) and manifest.get("status") in FINAL_STATUSES and not harness_failed(manifest)

    def start(self, manifest: dict[str, Any]) -> None:
        """Begin an attempt. An unfinished earlier attempt's events are kept, renamed aside."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.evals_path.exists():
            attempt = 1
            while (self.dir / f"evals.attempt{attempt}.jsonl").exists():
                attempt += 1
            self.evals_path.rename(self.dir / f"evals.attempt{attempt}.jsonl")
        write_json_atomic(self.manifest_path, {**manifest, "status": "running"})

    def resume(self, step: int, attempt: dict[str, Any]) -> None:
        """Continue an attempt from a checkpoint taken after ``step`` steps.

        Evaluations logged after the checkpoint, and the end line of an attempt the harness failed,
        are moved to ``evals.superseded.jsonl`` (kept for audit, not scored): the resumed run
        recomputes them from the checkpoint.
        """
        rows = read_jsonl(self.evals_path) if self.evals_path.exists() else []
        kept = [r for r in rows if r.get("event") not in ("eval", "end") or (r["event"] == "eval" and
                                                                       r.get("step", 0) <= step)]
        superseded = [r for r in rows if r not in kept]
        for row in superseded:
            append_jsonl(self.dir / "evals.superseded.jsonl", row)
        text = "".join(json.dumps(_json_safe(row), sort_keys=True, allow_nan=False) + "\n" for row in kept)
        write_atomic(self.evals_path, text.encode())
        self.log({"event": "resume", "step": step, "superseded_evals": len(superseded), **attempt})
        manifest = self.manifest() or {}
        attempts = [*manifest.get("attempts", []), {**attempt, "resumed_from_step": step}]
        write_json_atomic(self.manifest_path, {**manifest, "status": "running", "attempts": attempts})

    def log(self, row: dict[str, Any]) -> None:
        append_jsonl(self.evals_path, row)

    def finish(self, summary: dict[str, Any]) -> None:
        """Append the outcome line, then mark the manifest finished (in that order)."""
        self.log({"event": "end", **summary})
        manifest = self.manifest() or {}
        write_json_atomic(self.manifest_path, {**manifest, "status": summary["status"], "summary": summary})


def _previous(name: str, number: int) -> str:
    """``manifest.json`` -> ``manifest.previous-2.json``."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}.previous-{number}{dot}{suffix}"
