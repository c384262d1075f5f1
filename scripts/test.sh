#!/usr/bin/env bash
# The README's test command: set up, lint, then run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff check ." >&2
.venv/bin/ruff check .
echo "[test] pytest" >&2
exec .venv/bin/python -m pytest "$@"
