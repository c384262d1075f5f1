#!/usr/bin/env bash
# The README's main job: set up, find the real Fashion-MNIST data, run the benchmark suite.
# Extra arguments are optbench suite overrides (e.g. studies=3 search_seed=1 submissions=[adamw,sgd]).
# Data: $DATA_DIR if set (a data root holding every workload's files: fashion-mnist/*.gz,
# tinyshakespeare.txt and cifar10-jpg.tar.gz, as workloads/data/ has the last two; with a data_dir,
# cifar10 and gpt read it alone); else Debian's dataset-fashion-mnist (installed here when missing and
# apt-get is usable), with gpt's and cifar10's shipped copies; else the workload downloads it where a
# network exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=()
if [ -n "${DATA_DIR:-}" ]; then
    args+=("data_dir=$DATA_DIR")
elif [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
        && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "[main] installing Debian's dataset-fashion-mnist (the real data, offline-capable)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } >&2 \
        || echo "[main] could not install dataset-fashion-mnist; set DATA_DIR=<data root with fashion-mnist/*.gz>" >&2
fi
exec .venv/bin/optbench suite "${args[@]}" "$@"
