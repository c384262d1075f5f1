"""Reading a results folder in several processes (scoring/record_walk.py): workers forked before
`optbench score` imports pandas claim chunks of folders one at a time; whatever the sharing, a
worker dying, or what a process has imported, the result is what one process reading every
folder in order gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from test_leaderboard_page import write_sweep_records, write_trial

import scoring.record_walk as record_walk
from harness.cli import main
from scoring.record_index import reader_key
from scoring.records import read_records

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Fourteen units: twelve sweeps (one with a lost trial, one whose evals.jsonl ends in a torn
    line, which warns) and two lone trials."""
    root = tmp_path / "results"
    for i in range(12):
        write_sweep_records(root, f"s{i:02d}", [[10.0 + i, None], [None, 12.0 + i]], workload=f"w{i % 3}")
    for seed in (7, 8):
        write_trial(root / "w0-cpu" / "s00" / f"seed{seed}-abc", "s00", 9.0, seed=seed, ruleset="single")
    (root / "w1-cpu" / "s01" / "external-0123456789" / "study1" / "trial1" / "manifest.json").unlink()
    torn = root / "w2-cpu" / "s02" / "external-0123456789" / "study0" / "trial0" / "evals.jsonl"
    with torn.open("a") as f:
        f.write('{"event": "ev')
    return root


def read_warning_all(root: Path, **options) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read_records(root, **options)
    # not Python's own (3.12 on): a DeprecationWarning at each fork of a process that runs threads
    # (numpy's OpenBLAS pool, torch's), raised in this process whichever way the records are read
    return records, [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]


def same(one, other) -> None:
    pd.testing.assert_frame_equal(one.trials, other.trials)
    assert one.problems == other.problems and one.planned == other.planned


def test_workers_share_the_chunks_and_read_what_one_process_reads(results: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real = record_walk._read_units
    readers_seen = tmp_path / "readers"  # a file per process that began a read
    readers_seen.mkdir()
    wait_for_another = {"on": False}

    def read_and_sign(units, index=False, root=""):
        (readers_seen / str(os.getpid())).touch()
        # a slow read, and with workers none ends before another process has begun (10 s at most):
        # nobody takes every chunk before the others have started, however busy the machine
        deadline = time.monotonic() + 10
        while wait_for_another["on"] and len(list(readers_seen.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        part = real(units, index, root)
        part.warnings.append((f"read by {os.getpid()}", UserWarning))  # raised by the parent, in order
        return part

    monkeypatch.setattr(record_walk, "_read_units", read_and_sign)
    serial, serial_warnings = read_warning_all(results, workers=1)
    for marker in readers_seen.iterdir():  # the serial reading's
        marker.unlink()
    wait_for_another["on"] = True
    shared, shared_warnings = read_warning_all(results, workers=3)
    same(serial, shared)
    assert len(record_walk.Reading(str(results), workers=3).chunks) == 14  # one unit per chunk here
    readers = {w for w in shared_warnings if w.startswith("read by ")}
    assert len(readers) >= 2  # more than one process read
    unsigned = [w for w in shared_warnings if not w.startswith("read by ")]
    assert unsigned == [w for w in serial_warnings if not w.startswith("read by ")]  # same warnings, same order
    assert any("evals.jsonl:3: skipped" in w for w in unsigned)  # the torn line, read by whichever process
    assert [(p.kind, p.submission) for p in shared.problems] == [("missing", "s01")]


def test_a_worker_that_dies_costs_time_only(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parent, real = os.getpid(), record_walk.Reading.read

    def die_in_a_worker(self, number):
        if os.getpid() != parent:
            os._exit(1)  # killed in the middle of its first chunk
        time.sleep(0.02)
        return real(self, number)

    serial, _ = read_warning_all(results, workers=1)
    monkeypatch.setattr(record_walk.Reading, "read", die_in_a_worker)
    started = time.perf_counter()
    shared, _ = read_warning_all(results, workers=3)
    same(serial, shared)
    assert time.perf_counter() - started < 20


def test_the_reading_starts_before_pandas_numpy_or_matplotlib_are_imported() -> None:
    """What `optbench score` imports before it forks the readers: none of the heavy libraries (else
    the workers would start only after them, and the reading would not overlap the imports)."""
    code = ("import sys; import harness.cli, scoring.command; from harness.config.compose import compose_config; "
            "compose_config('score', []); "
            "print([m for m in ('pandas', 'numpy', 'matplotlib', 'torch') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "[]"


def test_every_process_reads_the_index_under_the_same_key() -> None:
    """The index's reader key does not depend on what a process has imported: a worker forked
    before the scoring code was imported writes indexes the parent can use."""
    code = "import scoring.record_index as index; print(index.reader_key())"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert reader_key() is not None and done.stdout.strip() == reader_key()


def test_optbench_score_reads_in_workers_and_then_from_the_indexes_they_wrote(
        results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import scoring.report

    monkeypatch.setattr(scoring.report, "leaderboard_plots", lambda *args, **kwargs: {})
    monkeypatch.setattr(record_walk, "READ_PARALLEL_FROM", 2)  # the workers of a large board, here

    def score(out: str) -> dict:
        assert main(["score", f"results={results}", f"out={tmp_path / out}", "bootstrap=0", "ruleset=external"]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    first, second = score("one"), score("two")
    assert first["indexed"] == 0
    sweep_trials = 12 * 4 - 1 - 1  # all but the lost one and the one with the torn line (read every time)
    assert second["indexed"] == sweep_trials
    assert (tmp_path / "one" / "leaderboard.csv").read_text() == (tmp_path / "two" / "leaderboard.csv").read_text()
