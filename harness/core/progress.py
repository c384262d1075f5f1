"""Live progress of a trial on stderr: step, submission time, validation metric vs target, ETA."""

from __future__ import annotations

import errno
import sys
import time
from typing import Any, TextIO

from harness.errors import WORKLOAD_PARTS
from harness.identity import better, relation


class Progress:
    """Prints a line per evaluation and, between evaluations, at most one per ``interval_s``."""

    def __init__(
        self,
        label: str,
        metric: str,
        target: float,
        higher_is_better: bool,
        budget_s: float,
        interval_s: float = 5.0,
        enabled: bool = True,
        stream: TextIO | None = None,
    ):
        self.label, self.metric, self.target = label, metric, target
        self.relation = relation(higher_is_better)
        self.higher_is_better = higher_is_better
        self.budget_s, self.interval_s, self.enabled = budget_s, interval_s, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.wall_start = time.monotonic()
        self.loop_wall_start, self.loop_submission_start = self.wall_start, 0.0
        self.next_tick_s = interval_s
        self.last_value: float | None = None
        self.best: float | None = None

    def say(self, text: str) -> None:
        """Print ``text`` as this trial's line where progress is on."""
        if self.enabled:
            self._print(text)

    def _print(self, text: str) -> None:
        print(f"[{self.label}] {text}", file=self.stream, flush=True)

    def start(self, details: str) -> None:
        self.wall_start = time.monotonic()
        self.say(
            f"{details}; target validation {self.metric} {self.relation} {self.target:g}, "
            f"budget {self.budget_s:g}s of submission time"
        )

    def loop_started(self, submission_s: float) -> None:
        """The steps begin now, ``submission_s`` already charged (a resumed attempt's earlier time).

        The ETA's pace is measured from here: not from before the uncharged setup (data, torch.compile's
        warm-up), nor against seconds charged in another process.
        """
        self.loop_wall_start, self.loop_submission_start = time.monotonic(), submission_s
        self.next_tick_s = submission_s + self.interval_s

    def tick(self, step: int, submission_s: float) -> None:
        """Called every step with the (unsynchronised) submission time; prints rarely."""
        if submission_s >= self.next_tick_s:
            self.next_tick_s = submission_s + self.interval_s
            self.say(self._line(step, submission_s))

    def evaluated(self, step: int, submission_s: float, value: float) -> None:
        """Record an evaluation; printed with the first one, then at the usual interval."""
        first = self.last_value is None
        self.last_value = value
        improved = self.best is None or better(value, self.best, self.higher_is_better)
        if improved:
            self.best = value
        if first or submission_s >= self.next_tick_s:
            self.next_tick_s = submission_s + self.interval_s
            self.say(self._line(step, submission_s))

    def end(self, summary: dict[str, Any]) -> None:
        status = summary["status"]
        if status == "reached":
            text = (
                f"REACHED the target in {summary['time_to_target_s']:.2f}s of submission time "
                f"({summary['steps_to_target']} steps)"
            )
        elif status == "not_reached":
            limit = (f"max_steps ({summary['steps']} steps)" if summary.get("stopped_by") == "max_steps"
                     else "the budget")
            text = f"did NOT reach the target within {limit} (best {self.metric} {_fmt(summary['best_validation'])})"
        elif status == "pruned":
            text = (f"PRUNED at {summary['submission_time_s']:.2f}s, step {summary['steps']}: it could no longer "
                    f"change any score (best {self.metric} {_fmt(summary['best_validation'])})")
        elif status == "diverged":
            text = f"DIVERGED at step {summary['steps']} (non-finite training loss)"
        elif summary.get("error_in") in WORKLOAD_PARTS:
            text = (f"FAILED in the workload's {WORKLOAD_PARTS[summary['error_in']]}, not the submission: "
                    f"{summary.get('error_message', 'an exception')} after {summary['steps']} steps (traceback in "
                    f"the record); fix the workload, then the same command retries it")
        elif summary.get("error_in") == "harness":
            message = summary.get("error_message", "an exception")
            full = any(f"[Errno {n}]" in message for n in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG))
            text = (f"FAILED in the harness, not the submission: {message} after {summary['steps']} steps (traceback "
                    f"in the record); " + ("free space where the records are (a checkpoint needs room for a second "
                                           "copy while it is written), or set checkpoint_every_s= higher or "
                                           "results= elsewhere, then " if full else "")
                    + "running the same command again retries it")
        else:
            error = summary.get("error_message") or summary.get("error_type") or "an exception"
            where = summary.get("error_in") or "its code"
            text = f"FAILED: the submission raised in {where}: {error[:1000]} (traceback in the record)"
        tell = self._print if status == "failed" else self.say  # progress=false hides the steps, not why it failed
        tell(f"{text}; wall time {time.monotonic() - self.wall_start:.1f}s; record: {summary['record_dir']}")

    def _line(self, step: int, submission_s: float) -> str:
        left = max(0.0, self.budget_s - submission_s)
        # Wall seconds per submission second since the steps began (evaluation makes it > 1):
        # turns the remaining budget into an estimate of the wall time left.
        charged = submission_s - self.loop_submission_start
        ratio = (time.monotonic() - self.loop_wall_start) / charged if charged > 0 else 1.0
        return (
            f"step {step:>7d}  submission time {submission_s:7.2f}s / {self.budget_s:g}s  "
            f"val {self.metric} {_fmt(self.last_value)} (target {self.relation} {self.target:g}, "
            f"best {_fmt(self.best)})  ETA to budget {left * ratio:5.1f}s"
        )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
