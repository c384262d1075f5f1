#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run of under ten minutes (each trial time-boxed), for a
# machine lent for a short while: the GPU and torch it has, a trial of each gpu size that has data
# in this repository (gpt to nanoGPT's 1.47 validation loss with AdamW; cifar10 to its target,
# in-process and with isolation=process), gpt's step rate compiled and eager, a 2-process
# data-parallel trial where there are two GPUs, and, where FASHION_MNIST names a folder of its
# files (none ships here), the harness's GPU step rate against a bare loop
# (scripts/bench_overhead.py). Everything it writes goes to $OUT (default
# ./gpu-check): env.txt, one <name>.json (the trial's summary) and <name>.log (its progress) per
# trial, the records under results/. Usage: bash scripts/gpu_check.sh  (PYTHON=python3 by default)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    nproc
} > "$OUT/env.txt" 2>&1

trial() {  # name, seconds, overrides...
    local name=$1 seconds=$2
    shift 2
    local started=$SECONDS
    timeout "$seconds" "$PY" -m harness.cli trial device=cuda submission=adamw results="$OUT/results" \
        progress_interval_s=10 checkpoint_every_s=null data_dir=workloads/data "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
    echo "$name: exit $? after $((SECONDS - started)) s wall: $(tail -c 600 "$OUT/$name.json")"
}

# the gpu sizes run in bf16 (their precision) and compiled before the clock (compile=auto on CUDA):
# each summary's timing.compile_s is the compilation that was not charged
trial gpt-gpu 300 workload=gpt workload.size=gpu
trial cifar10-gpu 130 workload=cifar10 workload.size=gpu
# the same gpt steps eager, for the step rate compilation buys (compare submission_time_s at 500 steps)
trial gpt-gpu-eager-500 60 workload=gpt workload.size=gpu compile=false max_steps=500
trial gpt-gpu-compiled-500 60 workload=gpt workload.size=gpu max_steps=500
# data parallel over NCCL, where the machine has two GPUs (a smoke trial: seconds)
if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
    trial smoke-nproc2 60 workload.size=smoke nproc=2
fi
if [ -n "${FASHION_MNIST:-}" ]; then
    timeout 120 "$PY" scripts/bench_overhead.py device=cuda data_dir="$FASHION_MNIST" > "$OUT/overhead.txt" 2>&1
    echo "overhead: $(tail -n 1 "$OUT/overhead.txt")"
fi
# isolation=process on CUDA: the trainer gets the data and the harness's weights as CUDA IPC
# handles; its evaluations must match the in-process cifar10 trial's above (same seed)
trial cifar10-gpu-isolated 130 workload=cifar10 workload.size=gpu isolation=process
echo "done: $OUT"
