"""``optbench suite``: the main job — tune every submission on every workload, then score and plot.

A suite preset (``suite=cpu|smoke|gpu``, configs/suite/) names the workloads, the size and the
tuning settings. Every (workload, submission) pair becomes one sweep (:mod:`harness.orchestration.sweep`);
all their unfinished trials go out in one launch (one SLURM job array with ``launcher=slurm``),
with progress reported as trials finish. Re-running the same command skips finished trials and
resumes interrupted ones, so an interrupted suite continues where it was. At the end: the
per-workload time-to-target table (``suite.md``) and the leaderboard of :mod:`scoring`
(``leaderboard/``: scores with bootstrap intervals, performance profiles, HTML).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from harness.config.compose import compose_config, split_overrides
from harness.config.names import submission_names, workload_names
from harness.config.plugins import ambiguous_entry_points, entry_points, looks_external
from harness.config.schema import SuiteConfig
from harness.core.records import write_json_atomic
from harness.core.submission_names import refuse_shared_names
from harness.core.sweep_file import write_sweep
from harness.errors import UserError
from harness.log import stderr_logger
from harness.orchestration.launch import check_launcher
from harness.orchestration.sweep import plan_sweep
from harness.orchestration.tune import run_sweeps, settings_of, split_hydra
from harness.paths import ensure_writable_folder
from scoring.command import check_tau_max
from scoring.leaderboard import build
from scoring.plots import plot_validation_curves
from scoring.records import problem_messages, read_records
from scoring.report import markdown_table, write_outputs, write_together
from scoring.tables import to_csv, to_markdown, tuned_table


def competition(sweeps: list[dict[str, Any]], folder: Path, tau_max: float) -> dict[str, dict[str, Any]]:
    """Launch-time trial settings of every sweep: whether to prune, and the file naming its competitors.

    One JSON file per workload and size lists that workload's sweeps (harness/core/pruning.py reads it);
    ``prune`` comes from this command's trial settings (a kept sweep plan holds an older value).
    """
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for sweep in sweeps:
        by_workload.setdefault(f"{sweep['workload']}-{sweep['size']}", []).append(sweep)
    settings = {}
    for key, members in by_workload.items():
        path = folder / f"{key}.json"
        write_json_atomic(path, {"tau_max": tau_max, "sweeps": [
            {"dir": str(Path(s["dir"]).resolve()), "submission": s["submission"], "studies": s["studies"]}
            for s in members]})
        for sweep in members:
            settings[sweep["dir"]] = {"prune": bool(sweep["trials"][0]["config"].get("prune", True)),
                                      "prune_peers": str(path)}
    return settings


def marked_incomplete(table: pd.DataFrame, problems: list) -> pd.DataFrame:
    """The suite's table with ``incomplete``: true on a row whose records are missing, unfinished or
    damaged in part (the problems listed under the table say which), as the leaderboard marks them."""
    if table.empty:
        return table
    lacking = {(p.submission, p.workload) for p in problems if p.incomplete}
    rows = zip(table["submission"], table["workload"].astype(str) + "-" + table["size"].astype(str))
    return table.assign(incomplete=["yes" if row in lacking else "" for row in rows])


def default_out_name(cfg: Any, preset: list[str], sweeps: list[dict[str, Any]]) -> str:
    """``suite-<name>`` for the preset's own selection; with the size, workloads or submissions
    changed on the command line, those are added (``suite-mini-smoke``, ``suite-mini-gpt-adamw+sgd``:
    the records' names, never a module path or file), so that a run of a part of a suite, or at
    another size, never overwrites the whole suite's tables."""
    own = compose_config("suite", preset)
    workloads = list(dict.fromkeys(s["workload"] for s in sweeps))
    submissions = list(dict.fromkeys(s["submission"] for s in sweeps))
    parts = [str(cfg.size)] if cfg.size != own.size else []
    for chosen, preset_value in ((workloads, list(own.workloads)),
                                 (submissions, list(own.submissions) or submission_names())):
        if sorted(chosen) != sorted(preset_value):
            label = "+".join(chosen)
            parts.append(label if len(label) <= 40 else
                         f"{len(chosen)}-" + hashlib.sha256(label.encode()).hexdigest()[:8])
    return "-".join([f"suite-{cfg.name}", *parts])


def one_per_folder(sweeps: list[dict[str, Any]], log: Callable[[str], None]) -> list[dict[str, Any]]:
    """``sweeps`` less those planned twice: one submission named in two ways (an entry point's name
    and its ``module:Class``) plans one sweep, whose trials would have been launched twice."""
    unique: dict[str, dict[str, Any]] = {}
    for sweep in sweeps:
        unique.setdefault(str(sweep["dir"]), sweep)
    if len(unique) < len(sweeps):
        twice = sorted({str(s["trials"][0]["config"]["submission"]["name"]) for s in sweeps
                        if unique[str(s["dir"])] is not s})
        log(f"note: submissions= names {', '.join(twice)} twice (one name, one source: spelled two ways): "
            f"tuned once")
    return list(unique.values())


def run_suite(overrides: list[str], log=None) -> dict[str, Any]:
    """Run the suite described by ``overrides``; return a summary with the output paths."""
    log = log or stderr_logger("suite")
    hydra_overrides, rest = split_hydra(overrides)
    preset = [o for o in rest if o.partition("=")[0] == "suite"]
    own, trial_overrides = split_overrides([o for o in rest if o not in preset], SuiteConfig)
    cfg = compose_config("suite", [*preset, *own])
    chosen_workloads = list(cfg.workloads)
    if not chosen_workloads:
        raise UserError("workloads=[] names no workload: name at least one (workloads=[fashion_mnist,gpt]), or "
                        "leave the setting out for the preset's.")
    if any(o.partition("=")[0] == "submissions" and not list(cfg.submissions) for o in own):
        raise UserError(f"submissions=[] names no submission: name them (submissions=[adamw,sgd]), or leave the "
                        f"setting out to run every registered one ({len(submission_names())}).")
    chosen_submissions = list(cfg.submissions) or submission_names()
    for kind, chosen, valid in (("workload", chosen_workloads, workload_names()),
                                ("submission", chosen_submissions, submission_names())):
        # and modules or files (harness/config/plugins.py): resolved per sweep, which names an ambiguous one
        external = set(entry_points(kind)) | set(ambiguous_entry_points(kind))
        unknown = [n for n in chosen if n not in valid and not looks_external(n) and n not in external]
        if unknown:
            raise UserError(f"Unknown {kind}(s) {', '.join(unknown)}. Valid {kind}s: {', '.join(valid)}.")
    check_launcher(str(cfg.launcher), hydra_overrides)  # before anything is written
    check_tau_max(float(cfg.tau_max))
    settings = settings_of(cfg)
    # Baselines first on every workload: once one has finished, cap (b) of harness/core/pruning.py exists.
    first = [s for s in cfg.baselines if s in chosen_submissions]
    ordered = first + [s for s in chosen_submissions if s not in first]
    # Plan every sweep first: a typo in any setting fails before hours of training.
    sweeps = [plan_sweep(settings, [f"workload={w}", f"submission={s}", f"workload.size={cfg.size}",
                                    *cfg.trial_settings, *trial_overrides])
              for w in chosen_workloads for s in ordered]
    refuse_shared_names(sweep["trials"][0]["config"] for sweep in sweeps)
    sweeps = one_per_folder(sweeps, log)
    for sweep in sweeps:
        write_sweep(sweep)
    results = Path(sweeps[0]["trials"][0]["config"]["results"])
    out = Path(cfg.out) if cfg.out else results / default_out_name(cfg, preset, sweeps)
    ensure_writable_folder(out, "out", cfg.out or out)  # before the first trial, not after the last
    trials_total = sum(len(s["trials"]) for s in sweeps)
    submissions = len({sweep["trials"][0]["config"]["submission"]["name"] for sweep in sweeps})
    log(f"suite '{cfg.name}': {len(chosen_workloads)} workload(s) x {submissions} submission(s), "
        f"{settings.ruleset} ruleset, {trials_total} trials; records under {results}, tables in {out}")
    try:
        competitors = competition(sweeps, out / "pruning", cfg.tau_max)
    except OSError as error:
        raise UserError(f"Cannot write the suite's pruning files in {out / 'pruning'} ({error.strerror or error}); "
                        f"nothing was launched. Free some space, or set out= to a folder you can write to.") from None
    outcome = run_sweeps(sweeps, cfg, hydra_overrides, log, competitors)
    launch_report = {k: outcome.get(k)
                     for k in ("not_submitted", "unfinished", "job_errors", "lost", "error", "all_failed")}
    if outcome.get("not_submitted") and not outcome["launched"]:  # nothing ran: no table to remake
        return {"leaderboard": None, "trials": trials_total, "launched": 0, "counts": outcome["counts"],
                "table": None, "csv": None, "plots": [], **launch_report}

    mine = {str(Path(t["record_dir"])) for s in sweeps for t in s["trials"]}
    records = read_records(results)  # its trials, and those of its sweeps that are missing, unfinished or damaged
    trials = records.trials[records.trials["record_dir"].isin(mine)] if not records.trials.empty else records.trials
    problems = [p for p in records.problems if str(p.record_dir) in mine]
    messages = problem_messages(problems, records.planned)
    for message in messages:
        log(f"warning: {message}")
    # the leaderboard first: records it refuses to rank together (other targets, code, precisions) are
    # refused before any file of the suite's is written, not after its table was
    board = None if trials.empty else build(trials, tau_max=float(cfg.tau_max), samples=1000, seed=0,
                                            problems=problems, planned=records.planned)
    table = marked_incomplete(tuned_table(trials), problems)
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(table) + "".join(f"\n- {message}" for message in messages) + ("\n" if messages else "")
    write_together({out / "suite.csv": to_csv(table), out / "suite.md": markdown})  # both or neither
    try:
        plots = [] if trials.empty else [
            str(plot_validation_curves(trials, w, size, out / f"curves_{w}_{size}.png"))
            for (w, size) in sorted(set(zip(trials.workload, trials["size"])))]
    except OSError as error:  # each plot is written whole or not at all (scoring/plots/figure.py)
        raise UserError(f"Cannot write the suite's curves in {out} ({error.strerror or error}); its tables are "
                        f"written. Free some space, or set out= elsewhere, and run the same command again (finished "
                        f"trials are not rerun).") from None
    print(markdown, end="", flush=True)
    leaderboard = None
    if board is not None:
        leaderboard = write_outputs(board, trials, out / "leaderboard", f"optbench suite '{cfg.name}' leaderboard")
        print("\n" + markdown_table(board), end="", flush=True)
    return {
        "leaderboard": leaderboard and leaderboard["html"],
        "trials": trials_total,
        "launched": outcome["launched"],
        "counts": outcome["counts"],
        "table": str(out / "suite.md"),
        "csv": str(out / "suite.csv"),
        "plots": plots,
        **launch_report,
    }
