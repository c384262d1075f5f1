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

SCHEMA_VERSION = 1
FINAL_STATUSES = ("reached", "not_reached", "pruned", "diverged", "failed")


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_json_safe(data), f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number}: skipped a partial or corrupt record line", stacklevel=2)
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class TrialRecord:
    """The record folder of one trial."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.manifest_path = directory / "manifest.json"
        self.evals_path = directory / "evals.jsonl"

    def manifest(self) -> dict[str, Any] | None:
        return read_json(self.manifest_path)

    def finished(self) -> bool:
        manifest = self.manifest()
        return bool(manifest) and manifest.get("status") in FINAL_STATUSES

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

        Evaluations logged after the checkpoint are moved to ``evals.superseded.jsonl`` (kept
        for audit, not scored): the resumed run recomputes them from the checkpoint.
        """
        rows = read_jsonl(self.evals_path) if self.evals_path.exists() else []
        kept = [r for r in rows if r.get("event") != "eval" or r.get("step", 0) <= step]
        superseded = [r for r in rows if r not in kept]
        for row in superseded:
            append_jsonl(self.dir / "evals.superseded.jsonl", row)
        tmp = self.dir / f".evals.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for row in kept:
                f.write(json.dumps(_json_safe(row), sort_keys=True, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.evals_path)
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
