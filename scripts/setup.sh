#!/usr/bin/env bash
# Set up optbench in ./.venv (idempotent; reinstalls only when pyproject.toml changed).
# Installs PyTorch, torchvision, Hydra, submitit, pandas, matplotlib, scipy, datasets and the
# dev tools (pytest, pytest-timeout, pytest-xdist, ruff) from the ranges in pyproject.toml. Works offline where pip has a
# local wheel cache / index (as on the project's machines); needs PyPI otherwise. As root with
# apt-get, also Debian's chromium when missing (for tests/test_browser.py; see below).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($python --version)" >&2
    "$python" -m venv .venv
fi
stamp=.venv/.optbench-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[setup] installing optbench and its dependencies into .venv (first time: a few minutes)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
    .venv/bin/python -c "import torch, torchvision, hydra, submitit, pandas, matplotlib, scipy, datasets, pytest_timeout, xdist" \
        || { echo "[setup] the install did not complete; see the pip output above" >&2; exit 1; }
    touch "$stamp"
fi
# Debian's chromium: the headless browser of tests/test_browser.py and scripts/screenshot_leaderboard.py
# (no recommends: ~25 packages, about 30 s the first time). Only as root with apt-get; elsewhere
# the setup goes on and that test skips, saying why. $OPTBENCH_CHROMIUM names another browser.
if [ -z "${OPTBENCH_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "[setup] installing Debian's chromium (headless, for the leaderboard's browser test)" >&2
        apt_log=$(mktemp)
        if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                chromium; } >"$apt_log" 2>&1; then
            rm -f "$apt_log"
        else
            tail -n 15 "$apt_log" >&2
            echo "[setup] could not install chromium (apt output: $apt_log); tests/test_browser.py will skip" >&2
        fi
    else
        echo "[setup] chromium not found and not installable here (needs root and apt-get);" \
            "tests/test_browser.py will skip" >&2
    fi
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')" >&2
