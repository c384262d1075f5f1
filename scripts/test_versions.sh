#!/usr/bin/env bash
# The whole test suite on another Python and PyTorch than scripts/setup.sh's (which CI runs): e.g. a
# GPU machine's, before a short loan of it is spent on a failure that a CPU shows too.
#   PYTHON=python3.12 TORCH=2.11.0 TORCHVISION=0.26.0 bash scripts/test_versions.sh [pytest arguments]
# It makes (or reuses) the virtual environment $VENV, default $TMPDIR/optbench-py<X.Y>-torch<TORCH>,
# with that PyTorch and, for every other dependency, the newest release pyproject.toml admits (so it
# also tries newer pandas and numpy than .venv has). Needs a package index that has those releases, and
# about 6 GB of disk per venv (PyPI's PyTorch brings its CUDA libraries); remove a venv when done with it.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:?PYTHON= names the Python to test with (e.g. python3.12)}
torch=${TORCH:?TORCH= names the PyTorch release (e.g. 2.11.0)}
vision=${TORCHVISION:?TORCHVISION= names the torchvision release that goes with it (e.g. 0.26.0 for 2.11)}
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv=${VENV:-${TMPDIR:-/tmp}/optbench-py$version-torch$torch}
if [ ! -x "$venv/bin/python" ]; then
    echo "[versions] creating $venv with $("$python" --version)" >&2
    "$python" -m venv "$venv"
fi
echo "[versions] installing torch $torch, torchvision $vision and optbench's other dependencies into $venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$torch" "torchvision==$vision" -e '.[dev]' \
    2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
"$venv/bin/python" -c "import torch, torchvision; assert torch.__version__.split('+')[0] == '$torch', torch.__version__" \
    || { echo "[versions] torch $torch did not install into $venv (above)" >&2; exit 1; }
"$venv/bin/python" -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^(torch|torchvision|numpy|pandas|scipy|matplotlib|hydra-core|submitit)==' >&2
exec "$venv/bin/python" -m pytest "$@"
