"""The ``optbench`` command: ``optbench <command> [key=value ...]``.

Commands compose a Hydra config from ``configs/`` with the overrides, run, and print a
one-line JSON summary as the last line on stdout. Bad input exits with status 2 and one
paragraph on stderr; a trial whose submission code raised exits with status 3; a failure of the
harness itself (a record it could not write, a trial another process is running) exits with 1.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import NOT_THE_SUBMISSIONS, OptbenchWarning, UserError
from harness.exits import exit_now

USAGE = """\
usage: optbench <command> [key=value ...]

commands:
  trial   one trial: train until the validation target is reached or the budget is spent
            optbench trial workload=fashion_mnist submission=adamw [submission.hparams.lr=3e-3]
                           [seed=0] [data_dir=DIR] [results=DIR] [workload.size=smoke|mini|cpu|gpu]
                           [workload.sizes.<size>.precision=fp32|bf16] [compile=auto|true|false]
                           [charge_compile=true] [nproc=1]
  tune    a tuning sweep of one workload x submission: studies x trials quasirandom points
          (ruleset=external) or the defaults with a longer budget (ruleset=self), launched
          in-process, as local processes or as a SLURM job array; rerun to resume
            optbench tune workload=fashion_mnist submission=adamw [ruleset=external|self]
                          [studies=3] [trials=5] [search_seed=0] [self_tuning_factor=3]
                          [launcher=inline|parallel|local|slurm] [hydra.launcher.partition=P ...]
                          [launch_dir=DIR (default <results>/launches)] [poll_s=5]
  suite   the main job: tune every submission on every workload of a preset, then a
          time-to-target table and validation curves (rerun to resume)
            optbench suite [suite=mini|smoke|cpu|gpu] [workloads=[fashion_mnist]] [submissions=[adamw,sgd]]
                           [studies=N] [trials=N] [launcher=...] [out=DIR] [any trial setting]
            (default suite=mini, the main job's: 2 studies x 3 trials; each preset's in configs/suite/)
  status  every study and trial of the sweeps under a results folder: state, outcome,
          SLURM job and state, log file
            optbench status [results=results] [scheduler=true] [strict=true]
  score   the leaderboard of a results folder: scores (area under the performance profile),
          bootstrap CIs, steps view, per-workload times; writes leaderboard.md/.csv/.html + plots
            optbench score [results=results] [out=DIR] [tau_max=4] [bootstrap=1000] [seed=0] [strict=true]
                           [ruleset=external|self|single (default: every record, refused when mixed)]
                           [mix_precisions=true] [index=false] [format=algoperf targets=workload_targets.json
                           [compat=true]]
  trajectories  each optimizer's path on the 2-D Rosenbrock contour plot, to a PNG
            optbench trajectories [submissions=[sgd,momentum,adam]] [steps=500] [out=trajectories.png]
                                  [hparams.adam.lr=0.05] [start=[-1.5,2.0]]
  calibrate  set a workload's target, budget and step hint by measurement (AlgoPerf's rule):
          quasirandom search of AdamW and Nesterov momentum, best points rerun on 5 seeds
            optbench calibrate workload=fashion_mnist [workload.size=cpu] [workload.variant=V]
                               [points=8] [step_hints=[2000,4000,8000]] [write=true] [data_dir=DIR]
  info    parameters, measured step time, batch-production share and peak memory of a
          workload with a reference submission, and its target, budget and step hint
            optbench info workload=fashion_mnist [workload.size=cpu] [submission=adamw] [steps=30] [warmup=5]
  check   the conformance checks of one submission (yours, outside this repository, too): defaults,
          search space, updates, exact resume from state_dict, a smoke trial on every workload
            optbench check submission=mypkg.adan:Adan [submission_config=adan.yaml]
                           [workloads=[fashion_mnist,mypkg.tasks:MyTask]] [trial_seconds=3]
  list    the registered workloads (with sizes, targets, budgets) and submissions (with defaults), and the
          installed ones; exits 2 naming each installed one that cannot be loaded or has a built-in's name

trial settings (defaults in brackets):
  workload=NAME [fashion_mnist]     workload.size=smoke|mini|cpu|gpu [cpu] (each workload's: optbench list)
  workload.model=NAME               workload.sizes.<size>.precision=fp32|bf16 [the size's; bf16: autocast]
  workload.variant=NAME [base]      isolation=inprocess|process [inprocess; the leaderboard presets: process]
  compile=auto|true|false [auto: CUDA gpu sizes, one process, isolation=inprocess] (torch.compile before the
    clock; charge_compile=true charges it)
  nproc=N [1] (one trial as N data-parallel processes; the batch size is the global one)
  sandbox=auto|true|false [auto] (isolation=process: the trainer confined by Landlock where the kernel has it)
  submission=NAME [adamw]           submission.hparams.<name>=VALUE
  submission=package.module:Class | path/to/file.py (your own: docs/writing-a-submission.md)
  submission_config=FILE (its defaults and search space; default: the .yaml beside its module)
  workload=package.module:Class | path/to/file.py   workload_config=FILE (likewise, for a workload)
  rerun=true (run a finished trial again; its old record is kept beside it)   record_dir=DIR (its folder)
  prune=true|false [true] (a sweep's trial stops once it cannot change any score or rank)
  seed=INT [0]                      data_dir=DIR (where the data is looked for first)
  results=DIR [results]             device=auto|cpu|cuda|cuda:N [auto]
  max_runtime_s=SECONDS (override the workload's budget)   max_steps=N (stop after N steps)
  progress=true|false [true]        progress_interval_s=SECONDS [5]
  threads=N (torch CPU threads; 1 is steadier when other jobs share the cores)
  checkpoint_every_s=SECONDS [30] (wall time between checkpoints; 0 every evaluation)

exit status: 0 the trial ran (reached, not_reached, pruned or diverged); 1 the harness failed (an I/O error,
  another process runs this trial; rerun to retry or resume); 2 bad input; 3 submission code failed (trial, and
  info: the part that raised, the exception and the submission's frames on stderr).
  130 interrupted (Ctrl-C; what was written is kept, the same command resumes; tune and suite name
  their SLURM jobs still queued or running, which go on, and the scancel that stops them).
  tune, suite: 0 every launched trial ended; 3 every trial of a sweep failed in the submission's code (the
  first error on stderr; a suite still writes its tables); 2 bad input, an unknown launcher or hydra.launcher.* setting
  (nothing written), or no job could be submitted (the scheduler's message and what to check on stderr;
  nothing to resume); 1 launched trials did not end (jobs lost or killed; see optbench status, rerun to resume).

Records: <results>/<workload>-<size>/<submission>/seed<seed>-<hash>/, sweeps in
<results>/<workload>-<size>/<submission>/<ruleset>-<hash>/study<k>/trial<j>/ (see results/README.md).
"""


@dataclass(frozen=True)
class Command:
    """One command: ``run`` ("module:function") takes the overrides and returns its result, which is
    printed as the last stdout line in JSON (unless ``prints`` is False: the command prints a table
    itself); ``status`` turns the result into the exit status. Imported only when run, so that
    ``optbench score`` never loads torch."""

    run: str
    status: Callable[[Any], int] = lambda result: 0
    prints: bool = True
    quick_exit: bool = False  # nothing left to clean up at its end: see :func:`entry`
    children: bool = False  # may fork children (a user's submission described, trainers): see :func:`main`


def trial_status(summary: dict) -> int:
    """0 when the trial ran (reached, not_reached, pruned, diverged); 3 when the submission's code
    failed; 1 when the harness or the workload's evaluation failed (an I/O error: a rerun retries)."""
    if summary["status"] != "failed":
        return 0
    return 1 if summary.get("error_in") in NOT_THE_SUBMISSIONS else 3


def launch_status(result: dict) -> int:
    """Exit status of ``tune``/``suite`` after the launch: 2 when none of its jobs could be submitted,
    1 when launched trials did not end (their paragraph on stderr, after the JSON summary), 3 when
    every trial of a sweep failed in the submission's code (the first error of each such sweep on
    stderr), else 0."""
    if result.get("error"):
        print(f"optbench: error: {result['error']}", file=sys.stderr, flush=True)
        return 2 if result.get("not_submitted") and not result.get("launched") else 1
    for line in result.get("all_failed") or []:
        print(f"optbench: error: {line}", file=sys.stderr, flush=True)
    return 3 if result.get("all_failed") else 0


COMMANDS = {
    "trial": Command("harness.core.trial:run_trial_command", trial_status, children=True),
    "tune": Command("harness.orchestration.tune:run_tune", launch_status, children=True),
    "suite": Command("harness.orchestration.suite:run_suite", launch_status, children=True),
    "status": Command("harness.orchestration.status:run_status", prints=False),
    "score": Command("scoring.command:run_score", quick_exit=True),
    "trajectories": Command("harness.tools.trajectories:run_trajectories"),
    "calibrate": Command("harness.tools.calibrate_command:run_calibrate"),
    "info": Command("harness.tools.info:run_info"),
    "check": Command("harness.tools.check:run_check", lambda result: 0 if result["passed"] else 1),
    "list": Command("harness.tools.listing:run_list", prints=False),
}


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """An :class:`OptbenchWarning` (a record it skipped, a file it could not use) in the words of its
    errors, once (a file read twice, for the table and for a plot, is one problem: nothing the
    second time; the ``once`` filter cannot do it, as every ``catch_warnings`` resets its memory);
    other warnings (the libraries') as Python prints them, with their source."""
    if issubclass(category, OptbenchWarning):
        text = f"optbench: warning: {message}\n"
        if text in _warned:
            return ""
        _warned.add(text)
        return text
    return _python_format_warning(message, category, filename, lineno, line)


_python_format_warning = warnings.formatwarning
_warned: set[str] = set()  # the warnings printed so far in this process


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, overrides = args[0], args[1:]
    if any(a in ("-h", "--help") for a in overrides):
        print(USAGE, end="")
        return 0
    if command not in COMMANDS:
        print(f"optbench: error: unknown command '{command}'. Valid commands: {', '.join(COMMANDS)}. "
              f"See optbench --help.", file=sys.stderr)
        return 2
    bad = [a for a in overrides if a.startswith("-")]
    if bad:
        print(f"optbench: error: unexpected option {bad[0]}. Settings are key=value overrides "
              f"(e.g. seed=1); see optbench --help.", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", module="hydra")
    warnings.formatwarning = _format_warning
    spec = COMMANDS[command]
    try:
        if spec.children:
            from harness.config.child_process import children_ahead, start_server

            if children_ahead(overrides):  # its imports run beside ours
                start_server()
        module, _, function = spec.run.partition(":")
        result = getattr(importlib.import_module(module), function)(overrides)
        if spec.prints:  # one write: the ranks of a user's torchrun share stdout, and it may be unbuffered
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
        return spec.status(result)
    except UserError as error:
        print(f"optbench: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    except KeyboardInterrupt as error:  # Ctrl-C: records are kept; rerunning the command resumes
        left = f"; {error}" if str(error) else ""  # an Interrupted: what goes on without the command
        print(f"optbench: interrupted; what was written is kept (run the same command again to resume){left}",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `optbench list | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


def entry() -> None:
    """The ``optbench`` program: :func:`main`, then exit with its status.

    After a command marked ``quick_exit`` (it has written and closed everything, and its worker
    processes have ended) the process ends at once, without the interpreter tearing down every
    object one by one: after scoring 100,000 trials that teardown alone took 0.3-0.4 s. So does a
    trial's rank started by a user's torchrun, whose teardown can abort it (harness/exits.py)."""
    code = main()
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in COMMANDS and COMMANDS[command].quick_exit:
        exit_now(code)
    if command == "trial":
        from harness.core.ranks import started_as_a_rank  # loaded already: the trial imported it

        if started_as_a_rank():
            exit_now(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
