# Shared by up.sh and down.sh (sourced): recognising the daemons they started.
# shellcheck shell=bash

# A PID counts as alive when it exists and is not a zombie: PID 1 on these machines reaps
# orphans late if at all (measured on a single-node cluster), so a stopped daemon lingers as a zombie, and
# `kill -0` still succeeds on a zombie.
pid_alive() {
    local state
    [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Prints the PID recorded in $PIDS/$1.pid if that process is alive and really is daemon $1 (a
# stale PID file may point at a reused PID).
running_pid() {
    local pid
    pid=$(cat "$PIDS/$1.pid" 2>/dev/null) || return 1
    pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
    echo "$pid"
}
