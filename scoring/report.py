"""``optbench score``: the leaderboard of a results folder as Markdown, CSV and self-contained HTML.

The HTML embeds its plots as base64 PNGs and has no scripts or external links, so it can be
mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import Incomplete, UserError
from harness.paths import ensure_writable_folder
from scoring.leaderboard import Leaderboard, build
from scoring.plots import plot_profiles, plot_sensitivity, plot_time_to_target, plot_validation_curves
from scoring.records import Records, problem_messages, read_records


@dataclass
class ScoreConfig:
    """``optbench score``'s keys."""

    results: str = "results"
    out: str | None = None  # default <results>/leaderboard
    format: str = "optbench"  # optbench | algoperf
    targets: str | None = None  # AlgoPerf workload_targets.json (format=algoperf)
    compat: bool = False  # AlgoPerf v0.5's official rules instead of ours (format=algoperf)
    ruleset: str | None = None  # score only records of this ruleset (external, self, single)
    tau_max: float = 4.0
    bootstrap: int = 1000  # resamples over studies; 0 turns the uncertainty off
    seed: int = 0
    strict: bool = False  # refuse (exit 1, nothing written) when a trial is missing, unfinished or damaged


def load_for_scoring(cfg: ScoreConfig) -> Records:
    """The records of ``cfg.results`` (of ``cfg.ruleset`` only, when set), or a clear error for a
    missing or empty folder; ``problems`` lists the trials that should be there but cannot be
    scored as they are (missing, running, damaged; see :func:`scoring.records.read_records`)."""
    root = Path(cfg.results)
    if not root.is_dir():
        raise UserError(f"results={root} is not a folder. Point it at the records of `optbench trial/tune/suite` "
                        f"(default: ./results).")
    records = read_records(root)
    if cfg.ruleset:
        records.problems = [p for p in records.problems if p.ruleset in (None, cfg.ruleset)]
    trials = records.trials
    listed = "".join(f"\n  - {m}" for m in problem_messages(records.problems, records.planned))
    if trials.empty:
        raise UserError(f"No finished trial records under {root} (looked for */manifest.json with a final "
                        f"status).{listed}")
    if cfg.ruleset:
        records.trials = trials = trials[trials["ruleset"] == cfg.ruleset]
        if trials.empty:
            raise UserError(f"No finished trials of ruleset '{cfg.ruleset}' under {root}.{listed}")
    return records


def markdown_table(board: Leaderboard) -> str:
    table = board.table
    ci = "score_ci_low" in table
    head = ["rank", "submission", "score"] + (["95% CI", "P(rank holds)"] if ci else []) + ["steps score"]
    head += ["state B/param", "peak MiB"] + [f"{w} (s)" for w in board.workloads]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in table.iterrows():
        cells = [str(row["rank"]), _name(row), f"{row['score']:.3f}"]
        if ci:
            cells += [f"[{row['score_ci_low']:.3f}, {row['score_ci_high']:.3f}]", f"{row['rank_probability']:.2f}"]
        cells.append(f"{row['steps_score']:.3f}")
        cells += [_number(row["state_bytes_per_param"], ".1f"), _number(row["peak_memory_mb"], ".0f")]
        cells += [_seconds(row[f"time_s:{w}"]) for w in board.workloads]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"score: normalised area under the time-based performance profile on [1, {board.tau_max:g}] "
                 f"(1 = fastest on every workload, 0 = never within {board.tau_max:g}x of the fastest); "
                 f"per-workload cells: median over studies of each study's fastest trial.")
    lines += [f"note: {n}" for n in board.notes]
    return "\n".join(lines) + "\n"


def _name(row: pd.Series) -> str:
    """The submission's name, marked when its own component was a no-op on some workload or when
    some of its trials are missing, unfinished or damaged (see the notes)."""
    marks = [f"no-op on {row['inert_on']}"] if row.get("inert_on") else []
    marks += [f"incomplete on {row['incomplete_on']}"] if row.get("incomplete_on") else []
    return f"{row['submission']} ({'; '.join(marks)})" if marks else row["submission"]


def _number(value: float, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _seconds(value: float) -> str:
    return "not reached" if not math.isfinite(value) else f"{value:.3g}"


def write_outputs(board: Leaderboard, trials: pd.DataFrame, out: Path, title: str) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    board.table.replace({math.inf: None}).to_csv(out / "leaderboard.csv", index=False)
    markdown = markdown_table(board)
    (out / "leaderboard.md").write_text(f"# {title}\n\n{markdown}")
    plots = {"profiles": plot_profiles(board, out / "profiles.png"),
             "time_to_target": plot_time_to_target(board, out / "time_to_target.png")}
    if "record_dir" in trials:
        for workload, size in sorted(set(zip(trials["workload"], trials["size"]))):
            plots[f"curves {workload}-{size}"] = plot_validation_curves(trials, workload, size,
                                                                         out / f"curves_{workload}_{size}.png")
    for submission in board.submissions:
        path = plot_sensitivity(trials, submission, out / f"sensitivity_{submission}.png")
        if path is not None:
            plots[f"sensitivity {submission}"] = path
    (out / "leaderboard.html").write_text(render_html(board, title, plots))
    return {"leaderboard": str(out / "leaderboard.md"), "csv": str(out / "leaderboard.csv"),
            "html": str(out / "leaderboard.html"), "plots": [str(p) for p in plots.values()]}


def render_html(board: Leaderboard, title: str, plots: dict[str, Path]) -> str:
    table = board.table
    ci = "score_ci_low" in table
    head = ["rank", "submission", "score"] + (["95% CI", "P(rank holds)"] if ci else []) + ["steps score"]
    head += ["optimizer state (bytes/param)", "peak memory (MiB)"] + [f"{w} time (s)" for w in board.workloads]
    rows = []
    for _, row in table.iterrows():
        cells = [row["rank"], _name(row), f"{row['score']:.3f}"]
        if ci:
            cells += [f"[{row['score_ci_low']:.3f}, {row['score_ci_high']:.3f}]", f"{row['rank_probability']:.2f}"]
        cells.append(f"{row['steps_score']:.3f}")
        cells += [_number(row["state_bytes_per_param"], ".1f"), _number(row["peak_memory_mb"], ".0f")]
        cells += [_seconds(row[f"time_s:{w}"]) for w in board.workloads]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    figures = []
    for name, path in plots.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        figures.append(f'<figure id="{html.escape(name.replace(" ", "-"))}"><img alt="{html.escape(name)}" '
                       f'src="data:image/png;base64,{data}"><figcaption>{html.escape(name)}</figcaption></figure>')
    notes = "".join(f"<p class=note>{html.escape(n)}</p>" for n in board.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(2){{text-align:left}}
img{{max-width:100%}}figure{{margin:1.5em 0}}.note{{color:#a60}}</style></head>
<body><h1>{html.escape(title)}</h1>
<table id="leaderboard"><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in head)}</tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<p>score: normalised area under the time-based performance profile on [1, {board.tau_max:g}]; steps score: the
same with steps to target. Cells: median over studies of each study's fastest trial.</p>{notes}
{"".join(figures)}
</body></html>
"""


def run_score(overrides: list[str], log=None) -> dict[str, Any]:
    from hydra.core.config_store import ConfigStore

    from harness.config import compose_config

    log = log or (lambda text: print(f"[score] {text}", file=sys.stderr, flush=True))
    ConfigStore.instance().store(name="score_schema", node=ScoreConfig)
    cfg = compose_config("score", overrides)
    if cfg.format not in ("optbench", "algoperf"):
        raise UserError(f"format={cfg.format} is not valid. Valid formats: optbench, algoperf.")
    if cfg.tau_max <= 1:
        raise UserError(f"tau_max={cfg.tau_max} must be greater than 1.")
    if cfg.format == "algoperf":
        from scoring.algoperf import score_algoperf

        return score_algoperf(cfg, log)
    if cfg.compat:
        raise UserError("compat=true reproduces AlgoPerf's official scoring and needs format=algoperf targets=FILE.")
    records = load_for_scoring(cfg)
    trials, messages = records.trials, problem_messages(records.problems, records.planned)
    if messages and cfg.strict:
        listed = "".join(f"\n  - {m}" for m in messages)
        raise Incomplete(f"strict=true: some trials under {cfg.results} are missing, unfinished or damaged; nothing "
                        f"was scored or written.{listed}\nFinish or restore them as said, or score without "
                        f"strict=true (the leaderboard then carries these warnings in its notes).")
    for message in messages:
        log(f"warning: {message}")
    out = Path(cfg.out) if cfg.out else Path(cfg.results) / "leaderboard"
    ensure_writable_folder(out, "out", cfg.out or out)
    board = build(trials, tau_max=float(cfg.tau_max), samples=int(cfg.bootstrap), seed=int(cfg.seed),
                  problems=records.problems, planned=records.planned)
    outputs = write_outputs(board, trials, out, f"optbench leaderboard — {Path(cfg.results).resolve().name}")
    print(markdown_table(board), end="", flush=True)
    log(f"{len(board.submissions)} submissions x {len(board.workloads)} workloads; wrote {out}")
    return outputs
