"""One line per figure of a scripts/gpu_check.sh run, for a lent machine whose output comes back as text.

  python scripts/gpu_check_report.py trial OUT/NAME.json
      the trial's outcome: status, steps, charged time, best validation value against the target,
      precision, compilation (and its uncharged seconds), wall time and peak memory; a failed trial's
      error, and whether the record is an earlier run's (cached). A trial stopped by its time box
      leaves no summary: its last progress line (OUT/NAME.log) is shown instead, and for one the
      script skipped, what NAME.json says.
  python scripts/gpu_check_report.py same OUT/A.json OUT/B.json [rel=1e-4]
      whether two trials evaluated alike: the same evaluation steps, and every metric within ``rel``
      (relative); the largest difference is printed either way.

Exit status 0 when the figure could be read (and, for ``same``, the evaluations agree), 1 otherwise.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from harness.core.records import DamagedRecord, read_json, read_jsonl


def summary_or_none(path: Path) -> dict[str, Any] | None:
    """The trial's summary (what ``optbench trial`` printed), or None when it printed none."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def no_summary(path: Path) -> str:
    """Why ``path`` holds no summary: what it says instead (gpu_check.sh's "skipped"), or the last progress."""
    try:
        said = path.read_text().strip()
    except OSError:
        said = ""
    return f"no summary in {path}: " + (said or f"stopped by its time box? Its last progress: "
                                                f"{last_progress_line(path)}")


def last_progress_line(summary_path: Path) -> str:
    """The last line of the trial's progress log, beside its summary (NAME.log for NAME.json)."""
    try:
        lines = summary_path.with_suffix(".log").read_text().splitlines()
    except OSError:
        return "no progress log either"
    return lines[-1] if lines else "an empty progress log"


def describe_trial(summary: dict[str, Any]) -> str:
    """One line: what the trial reached, in how long, and how it ran."""
    manifest = manifest_or_empty(summary)
    direction = ">=" if summary["higher_is_better"] else "<="
    best = summary.get("best_validation")
    best_text = "none" if best is None else f"{best:.4f}"
    reached = summary.get("time_to_target_s")
    reached_text = f"target reached at {reached:.1f} s ({summary['steps_to_target']} steps)" if reached is not None \
        else "target not reached"
    timing, memory = summary.get("timing") or {}, summary.get("memory") or {}  # null: failed before training
    peak = memory.get("peak_memory_bytes")
    peak_text = "?" if peak is None else f"{peak / 2**20:.0f} MiB ({memory.get('peak_memory_kind')})"
    how = ("precision ?, compiled ?" if not manifest else  # fp32 eager: what a record says by not saying
           f"{manifest.get('precision', 'fp32')}, compiled {manifest.get('compile', False)}")
    line = (f"{summary['status']}: {summary['steps']} steps, {summary['submission_time_s']:.1f} s charged; "
            f"{reached_text}; best {summary['metric']} {best_text} (target {direction} {summary['target']}); "
            f"{how} (compile_s {timing.get('compile_s', 0):.1f}, not charged); "
            f"wall {timing.get('wall_s', math.nan):.1f} s; peak {peak_text}")
    if summary.get("error_message"):
        line += f"; error in {summary.get('error_in')}: {summary['error_message'].splitlines()[0][:300]}"
    if summary.get("cached"):
        line += "; cached: an earlier run's record, not run again"
    return line


def manifest_or_empty(summary: dict[str, Any]) -> dict[str, Any]:
    """The trial's manifest, or {} where its record folder is not here (read on another machine)."""
    try:
        return read_json(Path(summary["record_dir"]) / "manifest.json") or {}
    except (DamagedRecord, KeyError):
        return {}


def evaluations(summary: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Step -> the metrics of each evaluation in the trial's record."""
    rows = read_jsonl(Path(summary["record_dir"]) / "evals.jsonl")
    return {row["step"]: row["metrics"] for row in rows if row.get("event") == "eval"}


def relative_difference(first: float | None, second: float | None) -> float:
    """|first - second| relative to the larger; equal values (two NaNs included) 0, NaN against a number inf.
    A record keeps a NaN or infinite metric as null (None): read as NaN."""
    first, second = (math.nan if value is None else value for value in (first, second))
    if first == second or (math.isnan(first) and math.isnan(second)):
        return 0.0
    difference = abs(first - second) / max(abs(first), abs(second))
    return math.inf if math.isnan(difference) else difference


def compare_evaluations(first: dict[int, dict[str, float]], second: dict[int, dict[str, float]],
                        rel: float) -> tuple[bool, str]:
    """Whether both trials evaluated at the same steps to the same values (within ``rel``), and why."""
    if list(first) != list(second):
        return False, f"evaluated at other steps: {list(first)} vs {list(second)}"
    if not first:
        return False, "no evaluations to compare"
    largest, where = 0.0, ""
    for step, metrics in first.items():
        if metrics.keys() != second[step].keys():
            return False, f"other metrics at step {step}: {sorted(metrics)} vs {sorted(second[step])}"
        for name, value in metrics.items():
            difference = relative_difference(value, second[step][name])
            if difference > largest:
                largest, where = difference, f"{name} at step {step}"
    agree = largest <= rel
    detail = f"largest relative difference {largest:.2e}" + (f" ({where})" if where else "")
    return agree, f"{'equal' if agree else 'DIFFERENT'} evaluations at steps {list(first)} (rel {rel:g}): {detail}"


def main(arguments: list[str]) -> int:
    if arguments[:1] == ["trial"] and len(arguments) == 2:
        path = Path(arguments[1])
        summary = summary_or_none(path)
        if summary is None:
            print(no_summary(path))
            return 1
        print(describe_trial(summary))
        return 0
    if arguments[:1] == ["same"] and len(arguments) in (3, 4):
        rel = float(arguments[3].removeprefix("rel=")) if len(arguments) == 4 else 1e-4
        summaries = [summary_or_none(Path(path)) for path in arguments[1:3]]
        missing = [path for path, summary in zip(arguments[1:3], summaries, strict=True) if summary is None]
        if missing:
            print(f"nothing to compare: no summary in {', '.join(missing)}")
            return 1
        try:
            runs = [evaluations(summary) for summary in summaries]
        except OSError as error:  # read on another machine than the one that ran them
            print(f"nothing to compare: a record is not here ({error})")
            return 1
        agree, detail = compare_evaluations(*runs, rel=rel)
        print(detail)
        return 0 if agree else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
