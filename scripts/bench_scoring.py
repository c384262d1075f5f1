"""Time `optbench score` end to end on a large synthetic leaderboard: 200 submissions x 20
workloads x 5 studies x 5 trials (100,000 trials), from records on disk to every output.

The synthetic records are written to a temporary folder in the real schema (results/README.md:
per sweep a sweep.json, per trial a manifest.json and an evals.jsonl with 4 evaluations and its
end line; trials ran two per CPU worker process, as launcher=parallel does). Manifests and sweep
plans leave out the resolved ``config`` real ones carry (~6 KB each; ``--full-manifests`` puts
a stand-in of that size in). Then the ``optbench`` program (``python -m harness.cli score``) runs
on them in a fresh process, ``--runs`` times (default 2), and each run prints its wall time
(interpreter start and imports included; the records are in the page cache unless evicted since
written) with the command's own breakdown: reading the records (the scoring code's imports are
made meanwhile), the maths, the wait for the bootstrap (run in a forked process meanwhile), each
output (CSV, Markdown, HTML; the plots, drawn in forked processes meanwhile, as the time waited
for them and each kind's own drawing time), and the HTML's size. The first score of new records reads every
record and writes each sweep's index (scoring/record_index.py); later ones take unchanged trials
from there: both figures are printed. Last, for comparison, the maths alone on the same table
in memory.

    python scripts/bench_scoring.py [--submissions 200] [--workloads 20] [--studies 5] [--trials 5]
                                    [--bootstrap 1000] [--records DIR] [--full-manifests] [--no-plots] [--runs 2]

``--records DIR`` writes the records there (kept) and reuses them when DIR already holds the same
board (writing 100,000 trials takes a minute or two; their indexes are kept too);
``--no-plots`` times everything but the plots.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scoring.leaderboard import build  # noqa: E402


def synthetic_trials(submissions: int, workloads: int, studies: int, trials: int, seed: int = 0) -> pd.DataFrame:
    """The trials table of the synthetic board (the columns `scoring.records.read_records` gives)."""
    rng = np.random.default_rng(seed)
    n = submissions * workloads * studies * trials
    s, w, k, j = np.unravel_index(np.arange(n), (submissions, workloads, studies, trials))
    skill = rng.lognormal(0.0, 0.3, submissions)[s] * rng.lognormal(3.0, 0.5, workloads)[w]
    times = skill * rng.lognormal(0.0, 0.25, n)
    reached = rng.random(n) < 0.7
    return pd.DataFrame({
        "workload": np.char.add("w", w.astype(str)), "size": "cpu", "submission": np.char.add("s", s.astype(str)),
        "seed": 1000 * k + j, "study": k, "trial": j, "ruleset": "external", "schema_version": 1,
        "status": np.where(reached, "reached", "not_reached"),
        "time_to_target_s": np.where(reached, times, np.inf), "steps_to_target": np.where(reached, times * 50, np.nan),
        "best_validation": 0.9, "target": 0.9, "metric": "accuracy", "higher_is_better": True, "max_runtime_s": 1e4,
    })


# ------------------------------------------------------------------------------------ records on disk
def _config(workload: str, submission: str, seed: int, hparams: dict) -> dict:
    """A stand-in of the resolved trial config real manifests and sweep plans carry (~6 KB)."""
    return {"workload": {"name": workload, "size": "cpu", "variant": None, "model": "mlp",
                         "model_options": {f"option_{i}": i for i in range(40)},
                         "sizes": {size: {"target": 0.9, "max_runtime_s": 1e4, "step_hint": 8000,
                                          "eval_every_steps": 100, "batch_size": 128, "notes": "x" * 300}
                                   for size in ("smoke", "mini", "cpu", "gpu")}},
            "submission": {"name": submission, "hparams": hparams,
                           "search_space": {f"p{i}": {"min": 1e-5, "max": 1.0, "scaling": "log"} for i in range(12)}},
            "seed": seed, "device": "cpu", "threads": 1, "results": "../../..", "max_steps": None,
            "checkpoint_every_s": 60.0, "progress": False, "data_dir": None,
            "hydra": {f"key_{i}": "v" * 40 for i in range(40)}}


def write_records(root: Path, trials: pd.DataFrame, full: bool = False) -> None:
    """The records of ``trials`` as `optbench tune` leaves them: per (workload, submission) a sweep
    folder with sweep.json and study<k>/trial<j>/{manifest.json, evals.jsonl}.

    Trials ran two per worker process (as ``launcher=parallel``), on the CPU: their peak memory is
    the resident-set growth of a shared process. Plain writes (no fsync): this is a fixture.
    """
    rng = np.random.default_rng(1)
    state = {f"s{i}": float(rng.choice([0.0, 4.0, 8.0, 12.0])) for i in range(trials["submission"].nunique())}
    for (workload, submission), group in trials.groupby(["workload", "submission"], sort=False):
        folder = root / f"{workload}-cpu" / submission / "external-0123456789"
        entries = []
        for row in group.itertuples(index=False):
            seed, k, j = int(row.seed), int(row.study), int(row.trial)
            hparams = {"lr": float(10 ** rng.uniform(-4, -1)), "weight_decay": float(10 ** rng.uniform(-5, -2)),
                       "warmup_fraction": 0.05, "batch_size": 128}
            reached = row.status == "reached"
            time_s = float(row.time_to_target_s) if reached else None
            steps = int(row.steps_to_target) if reached else None
            total_steps = steps if reached else 8000
            spent = time_s if reached else 1e4
            memory = {"parameters": 79510, "optimizer_state_bytes": int(state[submission] * 79510),
                      "optimizer_state_bytes_per_parameter": state[submission],
                      "peak_memory_bytes": int(rng.integers(30, 160) * 2**20), "peak_memory_kind": "cpu_rss_growth"}
            summary = {"status": row.status, "time_to_target_s": time_s, "steps_to_target": steps,
                       "best_validation": 0.91 if reached else 0.85, "target": 0.9, "metric": "accuracy",
                       "higher_is_better": True, "steps": total_steps, "submission_time_s": spent,
                       "max_runtime_s": 1e4, "workload": workload, "size": "cpu",
                       "record_dir": f"study{k}/trial{j}", "memory": memory, "routing": None,
                       "timing": {"wall_s": spent * 1.1, "submission_s": spent, "setup_s": 1.0,
                                  "evaluation_s": spent * 0.05, "checkpoint_s": 0.0, "other_s": spent * 0.05}}
            manifest = {"schema_version": 1, "trial_id": f"trial{j}", "created_at": "2026-01-01T00:00:00Z",
                        "workload": workload, "size": "cpu", "model": "mlp", "submission": submission,
                        "submission_revision": 1, "hparams": hparams, "seed": seed, "study": k, "trial": j,
                        "ruleset": "external",
                        "attempts": [{"started_at": "2026-01-01T00:00:00Z", "host": "node1",
                                      "pid": 10_000 + (k * 100 + j) // 2}],
                        "config_hash": f"{seed:012x}", "metric": "accuracy", "higher_is_better": True,
                        "target": 0.9, "test_target": None, "max_runtime_s": 1e4, "step_hint": 8000,
                        "eval_every_steps": 100, "eval_period_s": None, "num_train_examples": 50000,
                        "data_source": "/data", "git": {"sha": "0" * 40, "dirty": False},
                        "versions": {"python": "3.11.7", "optbench": "0.1", "torch": "2.5"},
                        "device": {"type": "cpu", "host": "node1", "cpu": "x86_64", "cpu_count": 2,
                                   "torch_threads": 1},
                        "submission_source_sha256": "0" * 64, "workload_source_sha256": "0" * 64,
                        "status": row.status, "summary": summary}
            if full:
                manifest["config"] = _config(workload, submission, seed, hparams)
            trial = folder / f"study{k}" / f"trial{j}"
            trial.mkdir(parents=True, exist_ok=True)
            (trial / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            lines = [{"event": "eval", "step": s, "submission_time_s": spent * s / total_steps, "wall_time_s": 0.0,
                      "metrics": {"train/loss": 0.5, "validation/accuracy": 0.8 + 0.1 * s / total_steps,
                                  "validation/loss": 0.4},
                      "within_budget": True, "reached": s == total_steps and reached}
                     for s in np.linspace(total_steps / 4, total_steps, 4).astype(int).tolist()]
            lines.append({"event": "end", **summary})
            (trial / "evals.jsonl").write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))
            entries.append({"index": len(entries), "study": k, "trial": j, "seed": seed, "hparams": hparams,
                            "record_dir": f"study{k}/trial{j}",
                            "config": _config(workload, submission, seed, hparams) if full else {}})
        sweep = {"kind": "optbench-sweep", "sweep_id": "0123456789", "workload": workload, "size": "cpu",
                 "submission": submission, "ruleset": "external", "studies": int(group["study"].nunique()),
                 "trials_per_study": int(group["trial"].nunique()), "trials": entries,
                 "created_at": "2026-01-01T00:00:00Z"}
        (folder / "sweep.json").write_text(json.dumps(sweep, indent=2, sort_keys=True) + "\n")


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------ the child process
def child(results: str, out: str, bootstrap: int) -> None:
    """``--no-plots``: run `optbench score` here with the plots left out; print its summary on stdout."""
    import scoring.report as report
    from harness.cli import exit_now
    from harness.cli import main as cli_main

    report.leaderboard_plots = lambda *args, **kwargs: {}
    exit_now(cli_main(["score", f"results={results}", f"out={out}", f"bootstrap={bootstrap}"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--workloads", type=int, default=20)
    parser.add_argument("--studies", type=int, default=5)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--records", help="write the records here (kept) instead of a temporary folder")
    parser.add_argument("--full-manifests", action="store_true", help="manifests and sweep plans with a ~6 KB config")
    parser.add_argument("--no-plots", action="store_true", help="time everything but the plots")
    parser.add_argument("--runs", type=int, default=2, help="end-to-end runs (each in a fresh process; the first "
                        "on new records also writes the sweeps' indexes the later ones read)")
    parser.add_argument("--child", nargs=3, metavar=("RESULTS", "OUT", "BOOTSTRAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return

    print(f"{args.submissions * args.workloads * args.studies * args.trials:,} trials: {args.submissions} submissions "
          f"x {args.workloads} workloads x {args.studies} studies x {args.trials} trials")
    temporary = None if args.records else tempfile.mkdtemp(prefix="bench_scoring-")
    root = Path(args.records or temporary)
    results, out = root / "results", root / "leaderboard"
    key = json.dumps([args.submissions, args.workloads, args.studies, args.trials, args.full_manifests])
    marker = root / "board.json"
    try:
        if not (marker.is_file() and marker.read_text() == key):
            shutil.rmtree(results, ignore_errors=True)
            started = time.perf_counter()
            write_records(results, synthetic_trials(args.submissions, args.workloads, args.studies, args.trials),
                          full=args.full_manifests)
            marker.write_text(key)
            print(f"wrote the records in {time.perf_counter() - started:.1f} s ({_du(results) / 2**20:.0f} MiB of "
                  f"files; {'full' if args.full_manifests else 'small'} manifests) to {results}")
        for run in range(1, args.runs + 1):
            end_to_end(results, out, args, run)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    trials = synthetic_trials(args.submissions, args.workloads, args.studies, args.trials)
    started = time.perf_counter()
    build(trials, samples=0)
    print(f"for comparison, the maths alone on the same table in memory: {time.perf_counter() - started:.2f} s "
          f"without bootstrap, ", end="")
    started = time.perf_counter()
    build(trials, samples=args.bootstrap)
    print(f"{time.perf_counter() - started:.2f} s with {args.bootstrap} resamples")


def end_to_end(results: Path, out: Path, args: argparse.Namespace, run: int) -> None:
    """Run `optbench score` on ``results`` in a fresh process (the ``optbench`` program itself,
    ``python -m harness.cli``) and print its wall time and breakdown."""
    shutil.rmtree(out, ignore_errors=True)
    settings = [str(results), str(out), str(args.bootstrap)]
    command = ([sys.executable, str(Path(__file__).resolve()), "--child", *settings] if args.no_plots else
               [sys.executable, "-m", "harness.cli", "score", *(f"{k}={v}" for k, v in
                                                                 zip(("results", "out", "bootstrap"), settings))])
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"optbench score failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])  # the command's last line: its JSON summary
    timings, plot_times = summary["timings_s"], summary.get("plot_seconds", {})
    first = " (first score of these records: reads them all, writes the indexes)" if summary.get("indexed") == 0 else ""
    print(f"run {run}{first}: optbench score end to end, in a fresh process: {wall:.2f} s (goal < 5 s); "
          f"page cache warm unless the records were evicted since last read or written; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  start: interpreter, settings, exit: {wall - sum(timings.values()):.2f} s")
    for name, seconds in timings.items():
        print(f"  {name}: {seconds:.2f} s" + (f" (the scoring code's imports meanwhile; trials taken from the sweeps' "
                                               f"indexes: {summary['indexed']:,})" if name == "read" else "")
              + (" (waiting for the plots, drawn in a forked process meanwhile)" if name == "plots" else ""))
    if plot_times:
        print(f"  the plots took {sum(plot_times.values()):.2f} s to draw: "
              + ", ".join(f"{kind} {spent:.2f} s" for kind, spent in plot_times.items()))
    html = out / "leaderboard.html"
    print(f"  leaderboard.html: {html.stat().st_size / 1e6:.2f} MB (goal < 1 MB); "
          f"{len(list(out.glob('*.png')))} plots written")


if __name__ == "__main__":
    main()
