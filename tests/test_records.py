"""Records are append-only and atomic: a crash mid-write leaves a readable file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import harness.core.records as records
from harness.core.records import append_jsonl, read_jsonl, write_json_atomic


def test_manifest_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "manifest.json"
    write_json_atomic(path, {"status": "running", "n": 1})

    def crash_midway(fd):  # the document is written but never reaches the disk
        raise OSError("disk vanished")

    monkeypatch.setattr(records.os, "fsync", crash_midway)
    with pytest.raises(OSError):
        write_json_atomic(path, {"status": "reached", "n": 2})
    assert json.loads(path.read_text()) == {"status": "running", "n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # the temporary file is gone


def test_non_finite_values_are_written_as_null(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write_json_atomic(path, {"t": float("inf"), "x": [float("nan"), 1.0]})
    assert json.loads(path.read_text()) == {"t": None, "x": [None, 1.0]}


def test_torn_jsonl_line_is_skipped_then_sealed(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    for step in (1, 2, 3):
        append_jsonl(path, {"event": "eval", "step": step})
    # A crash in the middle of writing line 4: only part of its bytes reach the disk.
    full = json.dumps({"event": "eval", "step": 4}) + "\n"
    with open(path, "ab") as f:
        f.write(full[: len(full) // 2].encode())
    with pytest.warns(UserWarning, match=r"evals.jsonl:4: skipped a partial"):
        assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3]
    append_jsonl(path, {"event": "eval", "step": 5})  # the next writer seals the torn line
    with pytest.warns(UserWarning):
        assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3, 5]


def test_appends_never_rewrite_earlier_bytes(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    append_jsonl(path, {"a": 1})
    before = path.read_bytes()
    inode = os.stat(path).st_ino
    append_jsonl(path, {"a": 2})
    assert path.read_bytes().startswith(before) and os.stat(path).st_ino == inode


def test_a_damaged_file_s_advice_fits_the_file(tmp_path: Path) -> None:
    """A damaged sweep.json advised deleting "the trial's folder": its own folder, the whole sweep's
    finished trials with it."""
    sweep = str(records.DamagedRecord(tmp_path / "external-abc" / "sweep.json", "not JSON"))
    assert "restore it from a copy" in sweep and "delete" not in sweep, sweep
    manifest = str(records.DamagedRecord(tmp_path / "study0" / "trial0" / "manifest.json", "not JSON"))
    assert f"delete the trial's folder ({tmp_path / 'study0' / 'trial0'})" in manifest
