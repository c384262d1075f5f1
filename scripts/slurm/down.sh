#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by scripts/slurm/up.sh.
# Usage: scripts/slurm/down.sh [STATE_DIR]   (default: ${OPTBENCH_SLURM_DIR:-/tmp/optbench-slurm})
# Cancels every job, waits (bounded) for an empty queue, then stops only the daemons whose PIDs
# up.sh recorded in STATE_DIR/pids (slurmd, slurmctld, slurmdbd, mariadbd, munged), SIGTERM first
# and SIGKILL after a timeout. Never kills by name. State (job ids, accounting DB) is kept.
# Exits 0 when nothing was running.
set -euo pipefail

STATE_DIR=${1:-${OPTBENCH_SLURM_DIR:-/tmp/optbench-slurm}}
PIDS=$STATE_DIR/pids
DRAIN_S=${OPTBENCH_SLURM_DRAIN_S:-30} # bound on the wait for an empty queue
export SLURM_CONF=$STATE_DIR/etc/slurm.conf
STOP_ORDER=(slurmd slurmctld slurmdbd mariadbd munged) # reverse of the start order

log() { echo "[slurm-down] $*" >&2; }

# pid_alive, running_pid
# shellcheck source=scripts/slurm/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
wait_gone() { # pid seconds
    local deadline=$(($(date +%s) + $2))
    while pid_alive "$1"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
queue_empty() { [ -z "$(squeue -h -o %A 2>/dev/null)" ]; }

any=
for d in "${STOP_ORDER[@]}"; do
    running_pid "$d" >/dev/null && any=1
done
if [ -z "$any" ]; then
    rm -f "$PIDS"/*.pid "$PIDS/munged.external" 2>/dev/null || true
    log "nothing running (state dir $STATE_DIR)"
    exit 0
fi
t0=$(date +%s.%N)

# Jobs first: stopping slurmd while jobs run leaves slurmstepd and the job processes alive
# (the notes), and nothing would stop them later. scancel sends SIGTERM and, KillWait (5 s in the
# generated slurm.conf) later, SIGKILL; jobs that ignore SIGTERM (submitit does) take all of it.
# (scancel --signal=KILL does not shorten this: slurmd treats it as an ordinary cancel.)
if running_pid slurmctld >/dev/null && ! queue_empty; then
    log "cancelling $(squeue -h -o %A | sort -u | wc -l) job(s)"
    squeue -h -o %A | sort -u | xargs -r scancel 2>/dev/null || true
    deadline=$(($(date +%s) + DRAIN_S))
    until queue_empty; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "WARNING: queue not empty after ${DRAIN_S} s; stopping anyway, job processes may survive:"
            squeue >&2 || true
            break
        fi
        # A job that started after the first scancel (an array's next task) is cancelled too.
        squeue -h -t PENDING,RUNNING -o %A | sort -u | xargs -r scancel 2>/dev/null || true
        sleep 0.5
    done
fi

for d in "${STOP_ORDER[@]}"; do
    if pid=$(running_pid "$d"); then
        timeout=15
        [ "$d" = mariadbd ] && timeout=60 # InnoDB flushes on a clean shutdown
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" "$timeout"; then
            log "$d (pid $pid) still running after ${timeout} s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 10 || log "WARNING: $d (pid $pid) did not exit"
        fi
        log "stopped $d (pid $pid)"
    fi
    rm -f "$PIDS/$d.pid"
done
rm -f "$PIDS/munged.external" # a munged up.sh did not start is left running
log "cluster down in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
