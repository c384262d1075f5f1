"""``optbench suite``: the main job — every submission on every workload, then tables and plots.

For now each submission runs with its default hyperparameters, one trial per seed (no tuning:
the sweep layer adds the external and self-tuning rulesets). Trials run one after another in
this process; a finished trial is never rerun, so an interrupted suite resumes where it was.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from harness.config import compose_config, split_overrides
from harness.errors import UserError
from harness.registry import submission_names, workload_names
from harness.runner import run_trial
from harness.schema import SuiteConfig
from scoring.plots import plot_validation_curves
from scoring.records import load_trials
from scoring.tables import time_to_target_table, to_markdown


def run_suite(overrides: list[str], log=None) -> dict[str, Any]:
    """Run the suite described by ``overrides``; return a summary with the output paths."""
    log = log or (lambda text: print(f"[suite] {text}", file=sys.stderr, flush=True))
    suite_overrides, trial_overrides = split_overrides(overrides, SuiteConfig)
    cfg = compose_config("suite", suite_overrides)
    chosen_workloads = list(cfg.workloads)
    chosen_submissions = list(cfg.submissions) or submission_names()
    for kind, chosen, valid in (("workload", chosen_workloads, workload_names()),
                                ("submission", chosen_submissions, submission_names())):
        unknown = [n for n in chosen if n not in valid]
        if unknown:
            raise UserError(f"Unknown {kind}(s) {', '.join(unknown)}. Valid {kind}s: {', '.join(valid)}.")
    plan = [(w, s, seed) for w in chosen_workloads for s in chosen_submissions for seed in cfg.seeds]
    # Compose every trial first: a typo in any setting fails before hours of training.
    configs = [compose_config("trial", [f"workload={w}", f"submission={s}", f"seed={seed}", *trial_overrides])
               for w, s, seed in plan]
    results = Path(configs[0].results)
    out = Path(cfg.out) if cfg.out else results / "suite"
    log(f"{len(plan)} trials: {len(chosen_workloads)} workload(s) x {len(chosen_submissions)} submission(s) "
        f"x {len(cfg.seeds)} seed(s); records under {results}")

    started, summaries = time.monotonic(), []
    for i, trial_cfg in enumerate(configs, start=1):
        summary = run_trial(trial_cfg)
        summaries.append(summary)
        elapsed = time.monotonic() - started
        counts = {s: sum(x["status"] == s for x in summaries) for s in ("reached", "not_reached", "diverged", "failed")}
        eta = elapsed / i * (len(plan) - i)
        log(f"{i}/{len(plan)} done ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
            f"{len(plan) - i} remaining, ETA {eta:.0f}s")

    mine = {s["record_dir"] for s in summaries}
    trials = load_trials(results)
    trials = trials[trials["record_dir"].isin(mine)]
    table = time_to_target_table(trials)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "suite.csv", index=False)
    markdown = to_markdown(table)
    (out / "suite.md").write_text(markdown)
    plots = [str(plot_validation_curves(trials, w, size, out / f"curves_{w}_{size}.png"))
             for (w, size) in sorted(set(zip(trials.workload, trials["size"])))]
    print(markdown, end="", flush=True)
    return {
        "trials": len(summaries),
        "reached": sum(s["status"] == "reached" for s in summaries),
        "table": str(out / "suite.md"),
        "csv": str(out / "suite.csv"),
        "plots": plots,
    }
