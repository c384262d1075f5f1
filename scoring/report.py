"""``optbench score``: the leaderboard of a results folder as Markdown, CSV and self-contained HTML.

The HTML embeds its plots as base64 PNGs and has no scripts or external links, so it can be
mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.config.schema import ScoreConfig
from harness.errors import Incomplete, UserError, refuse_or_warn
from harness.log import stderr_logger
from harness.paths import ensure_writable_folder, remove_if_empty
from scoring.forked import Aside
from scoring.leaderboard import MIN_STUDIES, Leaderboard, build, studies_of, with_uncertainty
from scoring.plots import PLOT_KINDS, leaderboard_plots, staged_path, staged_saves
from scoring.record_walk import Reading
from scoring.records import Records, problem_messages, read_records
from scoring.scores import bootstrap


def load_for_scoring(cfg: ScoreConfig, reading: Reading) -> Records:
    """The records ``reading`` reads (of ``cfg.results``; of ``cfg.ruleset`` only, when set), or a clear
    error when there are none; ``problems`` lists the trials that should be there but cannot be
    scored as they are (missing, running, damaged; see :func:`scoring.records.read_records`)."""
    root = Path(cfg.results)
    records = read_records(root, reading=reading)
    if cfg.ruleset:
        records.problems = [p for p in records.problems if p.ruleset in (None, cfg.ruleset)]
    trials = records.trials
    listed = "".join(f"\n  - {m}" for m in problem_messages(records.problems, records.planned))
    if trials.empty and records.problems:  # trials there, none finished yet (running, missing, damaged): exit 1
        raise Incomplete(f"No trial under {root} has finished yet: nothing to score. What is there:{listed}\n"
                         f"Wait for the trials (optbench status results={root} shows them), or resume them.")
    if trials.empty:
        raise UserError(f"No finished trial records under {root} (looked for */manifest.json with a final "
                        f"status).{listed}")
    if cfg.ruleset:
        found = ", ".join(sorted(set(trials["ruleset"].astype(str))))
        records.trials = trials = trials[trials["ruleset"] == cfg.ruleset]
        if trials.empty:
            raise UserError(f"No finished trials of ruleset '{cfg.ruleset}' under {root} (its records' rulesets: "
                            f"{found}).{listed}")
    return records


def markdown_table(board: Leaderboard) -> str:
    """The leaderboard as Markdown: the table, the workloads it covers, what each column means, the notes."""
    head, rows = _table(board)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.text for cell in row) + " |" for row in rows]
    lines += ["", "Workloads:", "", "| " + " | ".join(WORKLOAD_HEAD) + " |", "|" + "---|" * len(WORKLOAD_HEAD)]
    lines += ["| " + " | ".join(row) + " |" for row in _workload_rows(board)]
    lines += ["", "What the columns mean:", ""]
    lines += [f"- **{name}**: {meaning}" for name, meaning in column_meanings(board)]
    lines.append("")
    lines += [f"note: {n}" for n in board.notes]
    return "\n".join(lines) + "\n"


@dataclass
class _Cell:
    text: str
    weak: bool = False  # greyed on the page: shown for completeness, not to be relied on
    title: str = ""  # the page's tooltip


def _table(board: Leaderboard) -> tuple[list[str], list[list[_Cell]]]:
    """The leaderboard's header and cells (shared by the Markdown and the HTML)."""
    table = board.table
    ci = "score_ci_low" in table and board.uncertainty is not None
    head = ["rank", "submission", "score"] + (["95% CI", "P(rank holds)", "P(above next)"] if ci else [])
    head += ["studies", "steps score"]
    head += ["optimizer state (B/param)", "peak memory (MiB)"]
    for w in board.workloads:
        head += [f"{w} (s)", f"{w} x fastest"]
    shown = table["uncertainty_shown"] if "uncertainty_shown" in table else pd.Series(True, index=table.index)
    rows = []
    ranked = bool((table["score"] > 0).any())  # all 0: nobody reached any target, the shared rank 1 ranks nothing
    records = table.to_dict("records")
    for i, (row, show) in enumerate(zip(records, shown)):
        rank = _Cell(str(row["rank"])) if ranked else _Cell("—", True, "no submission reached any target: no ranking")
        cells = [rank, _Cell(_name(row)), _Cell(f"{row['score']:.3f}")]
        if ci:
            interval = f"[{row['score_ci_low']:.3f}, {row['score_ci_high']:.3f}]"
            holds = f"{row['rank_probability']:.2f}"
            above = row.get("p_above_next", math.nan)
            last = i + 1 == len(records)
            above_text = "" if last or not _finite(above) else f"{above:.2f}"
            if show:
                cells += [_Cell(interval), _Cell(holds)]
            else:
                why = (f"fewer than {MIN_STUDIES} studies on some workload it ran (its own, or another "
                       f"submission's, whose time sets its ratios), or lone trials: the bootstrap gave {interval} "
                       f"and {holds}, which say little")
                cells += [_Cell("—", True, why), _Cell("—", True, why)]
            if last:
                cells.append(_Cell("", title="the last row: no submission below"))
            elif show and bool(shown.iloc[i + 1]) and records[i + 1]["rank"] == row["rank"]:
                cells.append(_Cell("tied", True, f"the same score as the next row: above it in {above_text} of the "
                                                 f"resamples (a tie in a resample is not 'above')"))
            elif show and bool(shown.iloc[i + 1]):
                cells.append(_Cell(above_text))
            else:
                cells.append(_Cell("—", True, f"fewer than {MIN_STUDIES} studies of this submission or the next on "
                                               f"some workload, or lone trials: the bootstrap gave {above_text}, "
                                               f"an over-confident figure"))
        low, high = int(row["studies"]), int(row.get("studies_max", row["studies"]))
        cells.append(_Cell(f"{low}" if low == high else f"{low}-{high}", low < MIN_STUDIES,
                           "fewest and most studies over workloads"))
        cells.append(_Cell(f"{row['steps_score']:.3f}"))
        cells.append(_Cell(_number(row["state_bytes_per_param"], ".1f")))
        peak, why = row["peak_memory_mb"], str(row.get("peak_memory_note") or "")
        cells.append(_Cell(_number(peak, ".0f"), title=why) if _finite(peak) else
                     _Cell("n/a" if why.startswith("n/a") else "-", True, why))
        never = str(row.get("not_run_on") or "").split(", ")
        for w in board.workloads:
            if w in never:
                why = "no record of this workload: scored as not reaching its target (0)"
                cells += [_Cell("not run", True, why), _Cell("-", True, why)]
            else:
                cells += [_Cell(_seconds(row[f"time_s:{w}"])), _Cell(_ratio(row[f"ratio:{w}"], board.tau_max))]
        rows.append(cells)
    return head, rows


WORKLOAD_HEAD = ["workload", "target", "budget (s)", "studies x trials", "ruleset", "precision", "measured on",
                 "reached", "fastest (s)"]


def _workload_rows(board: Leaderboard) -> list[list[str]]:
    """Per workload: its target (metric, direction), budget, studies x trials per study, ruleset,
    precisions, what the times were measured on, how many submissions reached the target, and the fastest
    time (who)."""
    info = board.workload_info
    if info is None or info.empty:
        return []
    rows = []
    for row in info.to_dict("records"):
        direction = {True: ">=", False: "<="}.get(row["higher_is_better"], "?")
        fastest = f"{row['fastest_s']:.3g} ({row['fastest']})" if _finite(row["fastest_s"]) else "not reached"
        rows.append([row["workload"], f"{row['metric']} {direction} {row['target']}", row["budget_s"],
                     f"{row['studies']} x {row['trials_per_study']}", row["ruleset"], row.get("precision", ""),
                     row.get("measured_on", ""), f"{row['reached']} of {row['submissions']}", fastest])
    return rows


def column_meanings(board: Leaderboard) -> list[tuple[str, str]]:
    """(column, what it means) for every column of the leaderboard, and the marks after a name."""
    tau = f"{board.tau_max:g}"
    samples = board.uncertainty.samples if board.uncertainty is not None else 0
    meanings = [
        ("rank", "1 + the number of submissions with a higher score (by more than rounding: 1e-9 relative): equal "
                 "scores share a rank (1, 1, 3), and every submission that scores 0 shares the last one ('—' for all "
                 "when nobody reached any target). A point "
                 "estimate: whether neighbours differ beyond chance is what P(above next) says, where shown; where "
                 "no row shows it, a note names the neighbours even the bootstrap does not separate, and a hidden "
                 "cell's tooltip gives its figure."),
        ("score", f"the normalised area under the submission's performance profile over [1, {tau}]: the mean over "
                  f"workloads of max(0, {tau} - r) / ({tau} - 1), r being its time divided by the fastest "
                  f"submission's on that workload. 1 = the fastest on every workload; 0 = never within {tau}x of "
                  f"the fastest (or never reached)."),
    ]
    if samples:
        meanings += [
            ("95% CI", f"the 2.5th and 97.5th percentiles of the score over {samples} bootstrap resamples (each "
                       f"submission's studies on each workload drawn again with replacement, every score "
                       f"recomputed): approximate, and narrower than 95% with few studies (a percentile bootstrap "
                       f"over 3-5 values). Only shown where the submission, and every submission on the workloads it "
                       f"ran (the fastest sets its ratios), has at least {MIN_STUDIES} studies, and not for lone "
                       f"trials (other settings, not repeats); otherwise '—' (with 1 study a resample is that study "
                       f"itself, so the interval has no width; with 2 the median takes only 3 values)."),
            ("P(rank holds)", "the fraction of those resamples in which the submission keeps its rank; a submission "
                              "that scores 0 keeps the shared last rank in a resample where it scores 0 again, and one "
                              "tied with the next in a resample shares its rank, so keeps it: not a test that it is "
                              "better than the next (P(above next) is). Shown "
                              f"under the same rule ({MIN_STUDIES} studies or more)."),
            ("P(above next)", "the fraction of those resamples in which the submission scores above the next row's "
                              "(both scored on the same resample: a paired comparison). 0.975 or more: the two are "
                              "told apart at 95%; near 0.5: the data do not say which is better, whatever their "
                              "ranks; 'tied' where the two share a rank (a tie in a resample counts as not above). "
                              "Two intervals that overlap can still be told apart this way (their scores share each "
                              "workload's fastest time, so they move together). Shown where both rows' intervals are."),
        ]
    meanings += [
        ("studies", "how many studies (tuning runs with their own seeds) each of its times is the median of: the "
                    "fewest and the most over workloads (0 where it has no records of a workload)."),
        ("steps score", "the same score from steps to target instead of seconds: a view that does not depend on the "
                        "hardware or on other jobs sharing it."),
        ("optimizer state, peak memory", board.memory_note or "as recorded by each trial (harness/core/memory.py)."),
        ("<workload> (s)", "time to target in seconds of submission time: what the submission's own code took (its "
                           "__init__ and its update steps), not data loading, the model's construction, evaluations "
                           "or the harness's records; measured on the machine the Workloads table names, so other "
                           "work on that machine slows it (the steps score does not see that). Per study its fastest "
                           "trial, then the median over studies (a study that never reached counts as infinite, so "
                           "more than half of them must reach); 'not reached' otherwise."),
        ("<workload> x fastest", f"that time divided by the fastest submission's on the workload (1.00: the fastest); "
                                 f"from {tau} on it adds 0 to the score."),
        ("incomplete on ...", "after a name: workloads where some of its trials are missing, unfinished or damaged "
                              "(see the notes). They count as not reaching the target, so its score is provisional "
                              "and can only improve as they end."),
        ("failed on ...", "after a name: workloads where some of its trials failed (its code, the workload's or the "
                          "harness's raised; see the notes). They count as not reaching the target."),
        ("not run on ...", "after a name: workloads it has no record of. They count as not reaching the target "
                           "(0 there), and its time there reads 'not run'."),
        ("no-op on ...", "after a name: workloads where the method's own component updated no parameter (only its "
                         "fallback optimizer ran)."),
        ("clock suspect on ...", "after a name: workloads where a trial's charged time was implausibly below the wall "
                                 "time the harness measured itself (the submission may have reached the clock)."),
        ("bf16 on ...", "after a name: workloads ranked with mix_precisions=true, records of different precisions "
                        "together, where its records were trained in that precision, not fp32."),
        ("source uses ...", "after a name: what a static audit of the submission's source found that can reach "
                            "around its contract (the garbage collector, interpreter frames, files, the network, ...): "
                            "a flag for a reviewer, not a verdict."),
    ]
    return meanings


def _name(row: pd.Series | dict[str, Any]) -> str:
    """The submission's name, marked when its own component was a no-op on some workload, when
    some of its trials failed or are missing, unfinished or damaged (see the notes), when it has no record of
    some workload (not run there), when its clock or source
    is suspect, or where it was ranked in a precision other than fp32 among records of another."""
    marks = [f"no-op on {row['inert_on']}"] if row.get("inert_on") else []
    marks += [f"failed on {row['failed_on']}"] if row.get("failed_on") else []
    marks += [f"incomplete on {row['incomplete_on']}"] if row.get("incomplete_on") else []
    marks += [f"not run on {row['not_run_on']}"] if row.get("not_run_on") else []
    marks += [f"clock suspect on {row['clock_suspect_on']}"] if row.get("clock_suspect_on") else []
    marks += [f"source uses {row['audit']}"] if row.get("audit") else []
    marks += [str(row["precision_on"])] if row.get("precision_on") else []
    return f"{row['submission']} ({'; '.join(marks)})" if marks else row["submission"]


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _number(value: float, spec: str) -> str:
    return format(value, spec) if _finite(value) else "-"


def _seconds(value: float) -> str:
    return f"{value:.3g}" if _finite(value) else "not reached"


def _ratio(value: float, tau_max: float) -> str:
    """A ratio to two decimals, with more where two would round a ratio under ``tau_max`` up to it (3.999 is
    "3.999", not "4.00", which would read as the cap), and " (0)" on a capped one: it scores nothing."""
    if not _finite(value):
        return "-"
    if value >= tau_max:
        return f"{value:.2f} (0)"
    digits = 2
    while float(f"{value:.{digits}f}") >= tau_max and digits < 9:
        digits += 1
    return f"{value:.{digits}f}"


def write_outputs(board: Leaderboard, trials: pd.DataFrame, out: Path, title: str,
                  timings: dict[str, float] | None = None,
                  meanwhile: Callable[[Leaderboard], Leaderboard] | None = None) -> dict[str, Any]:
    """Write leaderboard.csv, .md, the plots and leaderboard.html to ``out``; the seconds each took
    go into ``timings`` (csv, markdown, plots, html) when given.

    The plots are drawn in a forked process (:class:`scoring.forked.Aside`) while this one runs
    ``meanwhile`` (``optbench score``: the bootstrap, which the plots do not need) on the board,
    whose result the tables and page are then made of; ``timings["plots"]`` is what waiting for
    them added, and each kind of plot's own drawing time is in the result's ``plot_seconds``."""
    lap = _Laps(timings)
    out.mkdir(parents=True, exist_ok=True)
    token = str(os.getpid())  # the plots' staged files: this command's (another may write the same folder)
    drawing = [Aside(_timed_plots, board, trials, out, kinds, token) for kinds in PLOT_GROUPS]
    if meanwhile is not None:
        board = meanwhile(board)
        lap("bootstrap")
    csv = board.table.replace({math.inf: None}).to_csv(index=False)
    lap("csv")
    markdown = f"# {title}\n\n{markdown_table(board)}"
    lap("markdown")
    plots, seconds = {}, {}  # name -> Plot (os.PathLike, with .path and .caption); kind -> seconds
    try:
        for aside in drawing:
            drawn, took = aside.result()
            plots.update(drawn)
            seconds.update(took)
    except OSError as error:  # a full disk while drawing: no staged plot moved in, none left behind
        for leftover in out.glob(f".*.{token}.staged"):
            leftover.unlink(missing_ok=True)
        raise UserError(f"Cannot write the leaderboard's plots in {out}: {error.strerror or error}. Nothing of the "
                        f"leaderboard was written (the previous one, if any, is as it was; the records are "
                        f"untouched): free some space, or choose another out= folder.") from None
    plots = {name: plots[name] for name in sorted(plots, key=lambda n: PLOT_KINDS.index(n.split(" ")[0]))}
    lap("plots")
    page = render_html(board, title, plots, folder=out, staged=token)
    write_together({out / "leaderboard.csv": csv, out / "leaderboard.md": markdown, out / "leaderboard.html": page},
                   staged={staged_path(Path(plot), token): Path(plot) for plot in plots.values()})
    lap("html")
    return {"leaderboard": str(out / "leaderboard.md"), "csv": str(out / "leaderboard.csv"),
            "html": str(out / "leaderboard.html"), "plots": [str(p) for p in plots.values()],
            "captions": {name: p.caption for name, p in plots.items()}, "plot_seconds": seconds}


def write_together(files: dict[Path, str], staged: dict[Path, Path] | None = None) -> None:
    """Write ``files`` so that a failure (a full disk, a file-size limit, a folder in the way) leaves
    every one of them as it was: each to a temporary file beside it first, then all renamed over
    the old ones, with the files already written aside (``staged``: temporary -> final, the plots
    of :func:`scoring.plots.staged_saves`). The failure is a UserError naming the file, not a traceback."""
    temporary: dict[Path, Path] = dict((staged or {}).items())
    path = next(iter(files))
    try:
        for path, text in files.items():
            if path.is_dir():
                raise IsADirectoryError(21, "a folder is in the way")
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary[tmp] = path
            tmp.write_text(text)
        for tmp, path in temporary.items():
            os.replace(tmp, path)
    except OSError as error:
        raise UserError(f"Cannot write {path}: {error.strerror or error}. None of its files was written (the "
                        f"previous ones, if any, are as they were; the records are untouched): free some space, or "
                        f"choose another out= folder.") from None
    finally:
        for tmp in temporary:
            tmp.unlink(missing_ok=True)


# The plots are drawn in two forked processes, these kinds in each: about equal halves of the work
# on a large board (the curves take as long as the other three).
PLOT_GROUPS = (("curves",), ("profiles", "time_to_target", "sensitivity"))


def _timed_plots(board: Leaderboard, trials: pd.DataFrame, out: Path, kinds: tuple[str, ...],
                 token: str) -> tuple[dict[str, Any], dict[str, float]]:
    """The plots of ``kinds``, staged (moved into place with the tables), and the seconds each kind took."""
    seconds: dict[str, float] = {}
    with staged_saves(token):
        return leaderboard_plots(board, trials, out, seconds, kinds), seconds


class _Laps:
    """``lap(name)`` adds the seconds since the previous lap (or since it was made) to ``timings[name]``."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.last = timings, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now


# The page embeds its plots until it would pass this many bytes; the others are linked as the PNG
# files written beside it (each named on the page), so that a board of hundreds of submissions
# still gives a page a browser opens at once and a mail can carry.
PAGE_BYTES = 1_000_000


def render_html(board: Leaderboard, title: str, plots: dict[str, Path], captions: dict[str, str] | None = None,
                folder: Path | None = None, staged: str | None = None) -> str:
    """The leaderboard page: the table, the workloads, what each column means, the notes and the plots.

    ``captions`` (plot name -> text) are shown under each plot; a plot without one uses its own
    ``caption`` attribute (:class:`scoring.plots.Plot`) or a default. Plots are embedded as base64
    PNGs while the page stays under ``PAGE_BYTES``; beyond that they are linked by their path
    relative to ``folder`` (the page's folder; default: their file name, as ``write_outputs``
    writes them beside the page). ``staged``: the plots are still at their staged paths of that
    token (:func:`scoring.plots.staged_saves`), to be moved into place with the page.
    """
    esc = html.escape
    head, rows = _table(board)
    body_rows = ["<tr>" + "".join(map(_td, cells)) + "</tr>" for cells in rows]
    workloads = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>"
                        for row in _workload_rows(board))
    meanings = "".join(f"<dt>{esc(name)}</dt><dd>{esc(text)}</dd>" for name, text in column_meanings(board))
    notes = "".join(f"<p class=note>{esc(n)}</p>" for n in board.notes)
    samples = board.uncertainty.samples if board.uncertainty is not None else 0
    summary = (f"{len(board.submissions)} submissions on {len(board.workloads)} workloads; score on [1, "
               f"{board.tau_max:g}]" + (f"; uncertainty from {samples} bootstrap resamples over studies" if samples
                                       else "; no bootstrap (bootstrap=0)") + ".")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}p,dl{{max-width:1300px}}table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}}td:nth-child(2){{text-align:left}}
#workloads td{{text-align:left}}.scroll{{overflow-x:auto}}.weak{{color:#999;background:#f4f4f4}}
img{{max-width:100%}}figure{{margin:1.5em 0}}figcaption{{max-width:900px;font-size:90%}}.note{{color:#a60}}
dt{{font-weight:bold;margin-top:.4em}}dd{{margin-left:1.5em;max-width:900px}}</style></head>
<body><h1>{esc(title)}</h1>
<p>{esc(summary)} Greyed cells are shown for completeness only: what they rest on is said in their tooltip and
below.</p>
<div class=scroll><table id="leaderboard"><thead><tr>{"".join(f"<th>{esc(h)}</th>" for h in head)}</tr></thead>
<tbody>{"".join(body_rows)}</tbody></table></div>
{notes}
<h2>Workloads</h2>
<table id="workloads"><thead><tr>{"".join(f"<th>{esc(h)}</th>" for h in WORKLOAD_HEAD)}</tr></thead>
<tbody>{workloads}</tbody></table>
<h2>What the columns mean</h2>
<dl>{meanings}</dl>
<h2>Plots</h2>
@@FIGURES@@
</body></html>
"""
    figures, linked = [], []
    used = len(page.encode()) + 1000  # 1000: the note naming the plots not embedded, less their names
    for name, plot in plots.items():
        path = Path(plot)
        caption = (captions or {}).get(name) or getattr(plot, "caption", "") or _default_caption(name, board)

        def figure(source: str, name: str = name, caption: str = caption) -> str:
            return (f'<figure id="{esc(name.replace(" ", "-"))}"><img alt="{esc(name)}" src="{esc(source)}">'
                    f"<figcaption><b>{esc(name)}</b>: {esc(caption)}</figcaption></figure>")

        written = staged_path(path, staged) if staged else path  # not yet moved into place (write_outputs)
        data = base64.b64encode(written.read_bytes()).decode("ascii") if written.is_file() else ""
        markup = figure(f"data:image/png;base64,{data}") if data else ""
        if not markup or used + len(markup.encode()) > PAGE_BYTES:
            source = os.path.relpath(path, folder) if folder is not None else path.name
            linked.append(source)
            markup = figure(source)
            used += len(esc(source).encode()) + 2
        used += len(markup.encode()) + 1
        figures.append(markup)
    if linked:
        figures.insert(0, f"<p class=note>{len(linked)} of {len(plots)} plots are not embedded, to keep this page "
                          f"under {PAGE_BYTES / 1e6:g} MB: they are the PNG files beside it ({esc(', '.join(linked))}) "
                          f"and show where the folder is kept together.</p>")
    return page.replace("@@FIGURES@@", "\n".join(figures) if figures else "<p>(none)</p>")


def _td(cell: _Cell) -> str:
    weak = " class=weak" if cell.weak else ""
    title = f' title="{html.escape(cell.title, quote=True)}"' if cell.title else ""
    return f"<td{weak}{title}>{html.escape(cell.text)}</td>"


def _default_caption(name: str, board: Leaderboard) -> str:
    kind, _, what = name.partition(" ")
    return {
        "profiles": f"Performance profiles: for each submission, the fraction of workloads (y) on which its time "
                    f"(left) or steps (right) to target is within a factor tau (x) of the fastest submission's, for "
                    f"tau in [1, {board.tau_max:g}]. The score is the normalised area under the time curve.",
        "time_to_target": "Time to target per workload: each submission's median over studies (the table's time) and "
                          "each study's fastest trial.",
        "curves": f"{what}: validation metric against submission time of each submission's best trial, with the "
                  f"target.",
        "sensitivity": f"{what}: the best validation value of every trial against each searched hyperparameter.",
    }.get(kind, name)


def score(cfg: ScoreConfig, reading: Reading, started: float, log: Callable[[str], None] | None = None
          ) -> dict[str, Any]:
    """``optbench score`` once its settings are checked and ``reading`` (of the records) started at
    ``started`` (see scoring/command.py): the leaderboard's tables, page and plots written; the
    seconds of each phase in the result's ``timings_s`` (``read``: from the reading's start, the
    imports made meanwhile included)."""
    log = log or stderr_logger("score")
    timings: dict[str, float] = {}
    lap = _Laps(timings)
    lap.last = started
    records = load_for_scoring(cfg, reading)
    lap("read")
    trials, messages = records.trials, problem_messages(records.problems, records.planned)
    refuse_or_warn(messages, bool(cfg.strict), log, f"some trials under {cfg.results} are missing, unfinished or "
                   f"damaged", "Finish or restore them as said, or score without strict=true (the leaderboard then "
                   "carries these warnings in its notes).")
    out = Path(cfg.out) if cfg.out else Path(cfg.results) / "leaderboard"
    made = ensure_writable_folder(out, "out", cfg.out or out)
    lap("read")
    tau_max, samples = float(cfg.tau_max), int(cfg.bootstrap)
    try:  # records the leaderboard refuses to rank together leave no empty output folder
        found = studies_of(trials, tau_max, records.problems, bool(cfg.mix_precisions), records.per_study)
        resampling = Aside(bootstrap, found.study_times, tau_max, samples, int(cfg.seed)) if samples > 0 else None
        board = build(trials, tau_max=tau_max, samples=0, problems=records.problems, planned=records.planned,
                      mix_precisions=bool(cfg.mix_precisions), studies_found=found)
    except UserError:
        remove_if_empty(made)
        raise
    lap("maths")

    final = [board]  # the board the files show: with the bootstrap's columns once it is done

    def uncertain(point: Leaderboard) -> Leaderboard:  # the bootstrap, run in a forked process since the studies
        final[0] = with_uncertainty(point, resampling.result())
        return final[0]

    outputs = write_outputs(board, trials, out, f"optbench leaderboard — {Path(cfg.results).resolve().name}",
                            timings=timings, meanwhile=uncertain if resampling is not None else None)
    lap.last = time.perf_counter()
    print(markdown_table(final[0]), end="", flush=True)  # as leaderboard.md has it
    lap("print")
    if records.unindexed:
        log(f"note: could not write the index of {len(records.unindexed)} sweep(s) (e.g. {records.unindexed[0]}: "
            f"not writable?); scoring them again reads all their records (index=false turns the index off)")
    log(f"{len(board.submissions)} submissions x {len(board.workloads)} workloads ({len(trials)} trials, "
        f"{records.indexed} from the sweeps' indexes); wrote "
        f"{out} in {sum(timings.values()):.1f} s (" + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()) + ")")
    return {**outputs, "timings_s": {k: round(v, 3) for k, v in timings.items()}, "indexed": records.indexed}
