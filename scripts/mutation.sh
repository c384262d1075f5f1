#!/usr/bin/env bash
# Mutation testing of the core: how many deliberately broken versions of the scoring maths, the
# clock, sweep planning, the search space, the runner's loop and record reading the tests notice.
#
#   scripts/mutation.sh                 all core modules (the runner's loop takes the longest: see README)
#   scripts/mutation.sh scores clock    only these (scores clock sweep sweep_file search_space runner steps records)
#   scripts/mutation.sh --report        the table again from the last run, without running anything
#   scripts/mutation.sh --clean         remove mutants/ (the last run's copy, kept for --report and mutmut show)
#
# mutmut (pinned below; installed into .venv when missing, it is no CI dependency) copies the project
# into mutants/ (git-ignored; cleaned at the start of every run), mutates the functions listed in
# scripts/mutation_report.py and runs, for each mutant, the tests of [tool.mutmut] in pyproject.toml
# that reach it (-m "not slow and not slurm and not realdata"). It prints per module the mutants,
# those detected, the survivors and the score, with the equivalent mutants of
# scripts/mutation-equivalent.txt (each with its reason) left out, then every surviving mutant
# (.venv/bin/mutmut show <name> prints its diff). Not part of CI: run it after changing one of these
# modules or their tests (README, "Mutation testing").
#
# Environment: MUTATION_JOBS (parallel mutants; default: the number of cores), MUTATION_NICE (default 19).
set -euo pipefail
cd "$(dirname "$0")/.."
MUTMUT_VERSION=3.8.1

if [ "${1:-}" = "--clean" ]; then
    exec rm -rf mutants
fi
if [ "${1:-}" = "--report" ]; then
    shift
    exec .venv/bin/python scripts/mutation_report.py report "$@"
fi
if [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("mutmut"))' 2>/dev/null)" \
        != "$MUTMUT_VERSION" ]; then
    echo "[mutation] installing mutmut $MUTMUT_VERSION into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "mutmut==$MUTMUT_VERSION"
fi
mapfile -t patterns < <(.venv/bin/python scripts/mutation_report.py patterns "$@")

rm -rf mutants && mkdir mutants
started=$(date +%s)
# The mutated copy must be what every test imports, subprocesses included: no PYTHONPATH to the
# original tree. One thread per test process: the parallelism is the mutants'.
env -u PYTHONPATH OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n "${MUTATION_NICE:-19}" \
    .venv/bin/mutmut run --max-children "${MUTATION_JOBS:-$(nproc)}" "${patterns[@]}" \
    > mutants/run.log 2>&1 || { tail -n 40 mutants/run.log >&2; echo "[mutation] mutmut failed (mutants/run.log)" >&2; exit 1; }
echo "[mutation] mutmut ran for $(( ($(date +%s) - started) / 60 )) min (log: mutants/run.log)" >&2
exec .venv/bin/python scripts/mutation_report.py report "$@"
