#!/usr/bin/env bash
# The README's test command: set up, lint, then run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not slow"; -n 0 runs the tests one at a time).
# The tests run in parallel, one pytest-xdist worker per core (most of a test's time is one process
# starting or waiting on another). A test file's tests run on one worker (--dist loadfile: a module's
# fixtures, such as a started SLURM cluster, are set up once); the two files with SLURM tests take
# the one cluster in turn (tests/test_slurm.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff check ." >&2
.venv/bin/ruff check .
echo "[test] pytest" >&2
exec .venv/bin/python -m pytest -n "${OPTBENCH_TEST_WORKERS:-auto}" --dist loadfile "$@"
