#!/usr/bin/env bash
# Set up optbench in ./.venv (idempotent; reinstalls only when pyproject.toml changed).
# Installs PyTorch, torchvision, Hydra, submitit, pandas, matplotlib, scipy, datasets and the
# dev tools (pytest, ruff) from the ranges in pyproject.toml. Works offline where pip has a
# local wheel cache / index (as on the project's machines); needs PyPI otherwise.
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
    .venv/bin/python -c "import torch, torchvision, hydra, submitit, pandas, matplotlib, scipy, datasets" \
        || { echo "[setup] the install did not complete; see the pip output above" >&2; exit 1; }
    touch "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')" >&2
