"""``optbench tune``: plan a sweep, launch its unfinished trials, report progress, summarise.

Running the same command again finds the same sweep folder (it is named by a hash of the plan):
finished trials are skipped, interrupted ones resume from their checkpoints, and when every
trial has ended nothing is launched.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness.config import compose_config, split_overrides
from harness.launch import launch
from harness.records import FINAL_STATUSES
from harness.schema import TuneConfig
from harness.sweep import SweepSettings, plan_sweep, trial_state, unfinished, write_sweep

Log = Any


def split_hydra(overrides: list[str]) -> tuple[list[str], list[str]]:
    """``hydra.*`` and ``hydra/...`` overrides (for the launcher) and the rest."""
    hydra = [o for o in overrides if o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    return hydra, [o for o in overrides if o not in hydra]


def settings_of(cfg: Any) -> SweepSettings:
    return SweepSettings(ruleset=str(cfg.ruleset), studies=int(cfg.studies), trials=int(cfg.trials),
                         search_seed=int(cfg.search_seed), self_tuning_factor=float(cfg.self_tuning_factor))


def run_tune(overrides: list[str], log: Log = None) -> dict[str, Any]:
    """Plan (or find) the sweep of one workload x submission and run what is left of it."""
    log = log or _stderr_logger("tune")
    hydra_overrides, rest = split_hydra(overrides)
    own, trial_overrides = split_overrides(rest, TuneConfig)
    cfg = compose_config("tune", own)
    sweep = plan_sweep(settings_of(cfg), trial_overrides)
    write_sweep(sweep)
    log(f"sweep {sweep['dir']}: {sweep['ruleset']} ruleset, {sweep['studies']} studies x "
        f"{sweep['trials_per_study']} trials of {sweep['submission']} on {sweep['workload']}/{sweep['size']}, "
        f"budget {sweep['budget_s']:g}s each")
    prune = {sweep["dir"]: {"prune": bool(sweep["trials"][0]["config"].get("prune", True))}}  # a kept plan may differ
    outcome = run_sweeps([sweep], cfg, hydra_overrides, log, prune)
    return {"sweep": sweep["dir"], **outcome}


def run_sweeps(sweeps: list[dict[str, Any]], cfg: Any, hydra_overrides: list[str], log: Log,
               settings: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Launch every unfinished trial of ``sweeps`` in one launch, in their order (within a sweep,
    study by study, trial by trial); report progress until done. ``settings``: see :func:`launch`."""
    todo = [(Path(s["dir"]), t["index"]) for s in sweeps for t in unfinished(s)]
    total = sum(len(s["trials"]) for s in sweeps)
    if not todo:
        log(f"all {total} trials already finished; nothing launched")
        return {"launched": 0, "counts": count_states(sweeps)}
    first_results = Path(sweeps[0]["trials"][0]["config"]["results"])
    launch_root = Path(cfg.launch_dir) if cfg.launch_dir else first_results / "launches"
    log(f"launching {len(todo)} of {total} trials ({total - len(todo)} already finished) "
        f"with launcher={cfg.launcher}")
    watcher = ProgressWatcher(sweeps, len(todo), log, float(cfg.poll_s))
    watcher.start()
    try:
        result = launch(todo, str(cfg.launcher), hydra_overrides, launch_root, settings)
    finally:
        watcher.stop()
    errors = [r for r in result["results"] if isinstance(r, dict) and r.get("status") == "error"]
    for error in errors:
        log(f"job {error['index']} of {error['plan']} could not run its trial:\n{error['error']}")
    for problem in result["lost"]:
        log(f"some jobs did not finish ({problem}); run the same command again to resume them")
    counts = count_states(sweeps)
    log("finished: " + describe(counts))
    return {"launched": len(todo), "launch_dir": result["launch_dir"], "counts": counts,
            "job_errors": len(errors), "lost": result["lost"]}


def count_states(sweeps: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(trial_state(Path(t["record_dir"])) for s in sweeps for t in s["trials"]))


def describe(counts: dict[str, int]) -> str:
    done = sum(counts.get(s, 0) for s in FINAL_STATUSES)
    parts = [f"{s.replace('_', ' ')} {counts[s]}" for s in FINAL_STATUSES if counts.get(s)]
    return (f"done {done} ({', '.join(parts) or 'none'}), running {counts.get('running', 0)}, "
            f"pending {counts.get('pending', 0)}")


class ProgressWatcher:
    """Reads the records every ``poll_s`` seconds and reports whenever the counts change."""

    def __init__(self, sweeps: list[dict[str, Any]], launched: int, log: Log, poll_s: float):
        self.sweeps, self.launched, self.log, self.poll_s = sweeps, launched, log, poll_s
        self.done_before = sum(count_states(sweeps).get(s, 0) for s in FINAL_STATUSES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="optbench-progress")
        self._started = time.monotonic()
        self._last = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.report()

    def report(self) -> None:
        counts = count_states(self.sweeps)
        text = describe(counts)
        if text == self._last:
            return
        self._last = text
        done_now = sum(counts.get(s, 0) for s in FINAL_STATUSES) - self.done_before
        elapsed = time.monotonic() - self._started
        remaining = self.launched - done_now
        eta = f", ETA {elapsed / done_now * remaining:.0f}s" if done_now > 0 and remaining > 0 else ""
        self.log(f"{text}; {elapsed:.0f}s elapsed{eta}")


def _stderr_logger(name: str) -> Log:
    return lambda text: print(f"[{name}] {text}", file=sys.stderr, flush=True)
