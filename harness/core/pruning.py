"""Exact pruning: stop a tuning trial once nothing it could still do changes a score or a rank.

Scoring (docs/scoring.md) uses, per (submission, workload), the median over studies of each
study's best trial, by time (and, for the steps view, by steps). Two caps follow, both exact:

(a) **its study's best so far.** A study's time is the fastest reached trial's; its steps the
    fewest steps of a reached trial. A trial whose submission time has passed the fastest reached
    time of its own study *and* whose step count has passed that study's fewest reached steps can
    only reach later and in more steps: it can no longer lower either, so its outcome changes no
    study time, no study step count, hence nothing downstream (workload times, scores, ranks,
    bootstrap intervals: they are functions of study times alone).

(b) **tau_max times the fastest finished competitor**, in its bootstrap worst case. For a
    competitor submission whose every trial on this workload has ended, T_c is its slowest study
    time (infinite if a study never reached): every bootstrap resample's median of that submission
    is at most T_c, so every resample's fastest workload time T* is at most T_ref = min_c T_c. A
    trial whose time x >= f * tau_max * T_ref contributes nothing to its submission's score in any
    resample, whether it reaches (x) or not (inf): with an odd number of studies (f = 1) the
    median is x or above when x is at or below the middle; with an even number (f = 2) the median
    averages two middle values, so it is at least x / 2 when x is one of them. The same holds for
    steps with S_ref, that same competitor's slowest study in steps; a trial is pruned by (b) only
    when both its time and its steps have passed.

Caps are read from the records (manifests of finished trials) at evaluation boundaries, while
the clock is paused, so pruning works across processes, local launchers and SLURM job arrays
and costs no submission time. A trial pruned at an evaluation where it reached the target is
recorded as reached: the target test comes first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.records import FINAL_STATUSES, DamagedRecord, check_fields, read_json
from harness.core.sweep_file import load_sweep
from harness.errors import UserError

INF = math.inf


@dataclass(frozen=True)
class Outcome:
    """A finished trial's result as pruning sees it: ``seconds``/``steps`` to target, inf if never."""

    seconds: float
    steps: float

    @staticmethod
    def from_summary(summary: dict[str, Any]) -> Outcome:
        seconds, steps = summary.get("time_to_target_s"), summary.get("steps_to_target")
        return Outcome(INF if seconds is None else float(seconds), INF if steps is None else float(steps))


OUTCOME_FIELDS = {"time_to_target_s": (int, float, type(None)), "steps_to_target": (int, type(None))}


@dataclass(frozen=True)
class Cap:
    """Prune once submission time >= ``seconds`` and steps >= ``steps``.

    ``rule`` is ``study`` (cap a) or ``competition`` (cap b, valid for leaderboards with
    ``tau_max`` up to the one used here that include ``competitor``); ``reason`` says it in words.
    """

    seconds: float
    steps: float
    rule: str
    reason: str
    tau_max: float | None = None
    competitor: str | None = None

    def passed(self, seconds: float, steps: int) -> bool:
        return seconds >= self.seconds and steps >= self.steps

    def as_record(self) -> dict[str, Any]:
        return {"rule": self.rule, "cap_s": self.seconds, "cap_steps": self.steps, "reason": self.reason,
                "tau_max": self.tau_max, "competitor": self.competitor}


def study_cap(siblings: Iterable[Outcome]) -> Cap | None:
    """Cap (a): the study's fastest reached time and fewest reached steps, or None if none reached."""
    reached = [o for o in siblings if math.isfinite(o.seconds)]
    if not reached:
        return None
    seconds, steps = min(o.seconds for o in reached), min(o.steps for o in reached)
    return Cap(seconds, steps, "study",
               f"its study already reached the target in {seconds:.3g} s and {steps:.0f} steps")


def study_bests(trials: Iterable[tuple[int, Outcome]]) -> dict[int, Outcome]:
    """Per study (``(study, outcome)`` pairs): its time and its steps, inf when it never reached."""
    bests: dict[int, Outcome] = {}
    for study, outcome in trials:
        old = bests.get(study, Outcome(INF, INF))
        bests[study] = Outcome(min(old.seconds, outcome.seconds), min(old.steps, outcome.steps))
    return bests


def competition_cap(finished_competitors: dict[str, Sequence[Outcome]], tau_max: float, studies: int) -> Cap | None:
    """Cap (b) from competitors whose every trial ended (name -> their per-study bests).

    ``studies`` is the pruned trial's own submission's number of studies (its parity sets f).
    Both references are the fastest competitor's (by time): the record names that one competitor,
    and a board without it is marked incomplete (scoring/marks.py), so no other competitor's
    records may be needed for exactness. (A steps reference taken from another competitor, with
    fewer steps, stopped trials whose steps score changed on a board lacking that one, unmarked.)
    """
    worst = {name: (max(o.seconds for o in c), max(o.steps for o in c))
             for name, c in finished_competitors.items() if c}
    reached = {name: bounds for name, bounds in worst.items() if math.isfinite(bounds[0])}
    if not reached:
        return None
    factor = 1 if studies % 2 else 2
    fastest = min(reached, key=lambda name: reached[name][0])
    t_ref, s_ref = reached[fastest]
    return Cap(factor * tau_max * t_ref, factor * tau_max * s_ref, "competition",
               f"{factor} x tau_max {tau_max:g} x the slowest study of {fastest}, the fastest finished "
               f"competitor ({t_ref:.3g} s; steps: {s_ref:.0f}): no score or rank can change any more",
               tau_max=tau_max, competitor=fastest)


class Pruner:
    """The caps of one sweep trial, read from the records of its study and its competitors.

    ``record_dir`` is ``<sweep>/study<k>/trial<j>``: its siblings are the other ``trial*``
    folders beside it. ``peers`` (optional) is a JSON file written by ``optbench suite``:
    ``{"tau_max": 4.0, "sweeps": [{"dir": ..., "submission": ..., "studies": 2}, ...]}``, every sweep of the suite
    on this workload; the trial's own sweep is one of them (it gives its number of studies).
    Records are re-read at most every ``refresh_s`` wall seconds; a finished competitor is read once.
    """

    def __init__(self, record_dir: Path, peers: Path | None, refresh_s: float = 1.0):
        self.record_dir = Path(record_dir).resolve()
        self.refresh_s = refresh_s
        self._read_at = -math.inf
        self._cap_a: Cap | None = None
        self._cap_b: Cap | None = None
        self._finished: dict[str, list[Outcome]] = {}
        self.tau_max, self.studies, self.competitors = 4.0, 1, {}
        self.siblings = planned_siblings(self.record_dir)
        if peers is not None:
            spec = read_json(Path(peers)) or {}
            own = self.record_dir.parent.parent
            self.tau_max = float(spec.get("tau_max", 4.0))
            for sweep in spec.get("sweeps", []):
                if Path(sweep["dir"]).resolve() == own:
                    self.studies = int(sweep["studies"])
                else:
                    self.competitors[str(sweep["submission"])] = Path(sweep["dir"])

    def cap(self, seconds: float, steps: int) -> Cap | None:
        """The cap this trial has passed at (``seconds``, ``steps``), or None: train on."""
        if time.monotonic() - self._read_at >= self.refresh_s:
            self._read()
        for cap in (self._cap_a, self._cap_b):
            if cap is not None and cap.passed(seconds, steps):
                return cap
        return None

    def _read(self) -> None:
        self._read_at = time.monotonic()
        if self.siblings is None:  # no plan (a lone trial given a study): the folders beside it
            manifests = [p / "manifest.json" for p in self.record_dir.parent.glob("trial*") if p != self.record_dir]
            self._cap_a = study_cap(o for _, o in finished(manifests, study=0))
        else:
            self._cap_a = study_cap(o for o in map(planned_outcome, self.siblings) if o is not None)
        for name, sweep in self.competitors.items():
            if name not in self._finished:
                bests = finished_sweep(sweep)
                if bests is not None:
                    self._finished[name] = bests
        self._cap_b = competition_cap(self._finished, self.tau_max, self.studies)


def finished(manifests: Iterable[Path], study: int) -> list[tuple[int, Outcome]]:
    """(study, outcome) of every manifest with a final status (others, damaged ones too, are skipped)."""
    out = []
    for path in manifests:
        try:  # only the outcome is needed; an unusable record counts as unfinished (a looser cap, never tighter)
            manifest = read_json(path) or {}
            if manifest.get("status") in FINAL_STATUSES:
                check_fields(manifest.get("summary") or {}, OUTCOME_FIELDS, path, where="summary.")
                out.append((study, Outcome.from_summary(manifest["summary"])))
        except DamagedRecord:
            continue
    return out


def planned_siblings(record_dir: Path) -> list[dict[str, Any]] | None:
    """The other trials of ``record_dir``'s study, as its sweep's plan lists them (None without a
    readable plan). Only they set cap (a): a record beside them that optbench score does not score
    (a backup folder ``trial0.bak``) could otherwise stop the trial that would be its study's fastest."""
    try:
        plan = load_sweep(record_dir.parent.parent)
    except UserError:
        return None
    own = [t for t in plan["trials"] if Path(t["record_dir"]) == record_dir]
    if not own:
        return None
    return [t for t in plan["trials"] if t["study"] == own[0]["study"] and Path(t["record_dir"]) != record_dir]


def planned_outcome(entry: dict[str, Any]) -> Outcome | None:
    """The outcome of a planned trial whose record has ended and is that trial (its manifest's
    study, trial and seed are the plan's, as optbench score requires of a record it scores);
    None otherwise: unfinished, damaged, or another trial's record copied into its folder."""
    path = Path(entry["record_dir"]) / "manifest.json"
    try:
        manifest = read_json(path) or {}
        if manifest.get("status") not in FINAL_STATUSES:
            return None
        if (manifest.get("study"), manifest.get("trial"), manifest.get("seed")) != (
                entry["study"], entry["trial"], entry["seed"]):
            return None
        check_fields(manifest.get("summary") or {}, OUTCOME_FIELDS, path, where="summary.")
        return Outcome.from_summary(manifest["summary"])
    except DamagedRecord:
        return None


def finished_sweep(sweep: Path) -> list[Outcome] | None:
    """Per-study bests of a sweep whose every trial has ended; None while any is unfinished."""
    try:
        plan = load_sweep(sweep)
    except UserError:  # missing or damaged: this competitor gives no cap
        return None
    outcomes = []
    for trial in plan["trials"]:
        outcome = planned_outcome(trial)
        if outcome is None:
            return None
        outcomes.append((int(trial["study"]), outcome))
    return list(study_bests(outcomes).values())


# ---------------------------------------------------------------------------- replay
@dataclass(frozen=True)
class RecordedTrial:
    """One unpruned trial as recorded: its place in the plan and its validation curve."""

    submission: str
    workload: str
    study: int
    curve: tuple[tuple[int, float, bool], ...]  # (step, submission seconds, reached) per evaluation
    final_seconds: float  # submission time when it ended


def replay(trials: Sequence[RecordedTrial], studies: dict[tuple[str, str], int], tau_max: float
           ) -> tuple[list[Outcome], list[float]]:
    """Apply the pruning rules to recorded unpruned trials, run one after another in the given order.

    ``studies[(submission, workload)]`` is that sweep's number of studies. Returns each trial's
    outcome under pruning (inf/inf when pruned or never reached) and the submission seconds it
    would have used; the test and ``scripts/bench_pruning.py`` compare the first with the
    unpruned outcomes and sum the second.
    """
    outcomes: list[Outcome | None] = [None] * len(trials)
    used = [0.0] * len(trials)
    for i, trial in enumerate(trials):
        done = [j for j in range(i) if trials[j].workload == trial.workload]
        siblings = [outcomes[j] for j in done if trials[j].submission == trial.submission
                    and trials[j].study == trial.study]
        by_competitor: dict[str, list[tuple[int, Outcome]]] = {}
        for j in done:
            if trials[j].submission != trial.submission:
                by_competitor.setdefault(trials[j].submission, []).append((trials[j].study, outcomes[j]))
        total = {s: sum(1 for t in trials if t.submission == s and t.workload == trial.workload)
                 for s in by_competitor}
        finished_ = {s: list(study_bests(pairs).values()) for s, pairs in by_competitor.items()
                     if len(pairs) == total[s]}
        caps = [c for c in (study_cap(siblings), competition_cap(finished_, tau_max,
                                                                  studies[(trial.submission, trial.workload)]))
                if c is not None]
        outcomes[i], used[i] = Outcome(INF, INF), trial.final_seconds
        for step, seconds, reached in trial.curve:
            if reached:
                outcomes[i], used[i] = Outcome(seconds, float(step)), seconds
                break
            if any(cap.passed(seconds, step) for cap in caps):
                used[i] = seconds
                break
    return [o for o in outcomes if o is not None], used
