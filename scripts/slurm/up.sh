#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster with accounting on localhost (Debian 12, as root,
# no systemd). Usage: scripts/slurm/up.sh [STATE_DIR]
#   STATE_DIR defaults to ${OPTBENCH_SLURM_DIR:-/tmp/optbench-slurm}; config, state, logs, the
#   accounting database and the daemons' PID files all live there (see README.md beside this).
# Progress goes to stderr; the only line on stdout is the `export SLURM_CONF=...` to use (it is
# also written to STATE_DIR/env.sh), so `eval "$(scripts/slurm/up.sh)"` works.
# Idempotent: daemons whose recorded PID is alive are left alone; only missing ones are started.
# The reasons behind the settings are facts measured on a real single-node cluster ("the notes" below refers to those measurements).
set -euo pipefail

STATE_DIR=${1:-${OPTBENCH_SLURM_DIR:-/tmp/optbench-slurm}}
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P) # absolute: it is written into the config files
ETC=$STATE_DIR/etc
LOG=$STATE_DIR/log
RUN=$STATE_DIR/run
PIDS=$STATE_DIR/pids
DATADIR=$STATE_DIR/mariadb
DB_SOCKET=$RUN/mariadbd.sock
# Ports are used only when the config files are generated (delete STATE_DIR/etc to change them).
DB_PORT=${OPTBENCH_SLURM_DB_PORT:-3307} # not 3306: stay clear of a system MariaDB
DBD_PORT=${OPTBENCH_SLURMDBD_PORT:-6819}
CTLD_PORT=${OPTBENCH_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${OPTBENCH_SLURMD_PORT:-6818}
CLUSTER=${OPTBENCH_SLURM_CLUSTER:-optbench}
WAIT_S=${OPTBENCH_SLURM_WAIT_S:-60} # bound on each wait for a daemon to answer
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd) # start order; down.sh stops in reverse

# Every client and daemon finds slurm.conf (and slurmdbd.conf / cgroup.conf beside it) through
# this variable; without it they read /etc/slurm/slurm.conf, which we never write (the notes).
export SLURM_CONF=$ETC/slurm.conf

log() { echo "[slurm-up] $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Tail of the logs of daemon $1, for error messages.
show_logs() {
    local f
    for f in "$LOG/$1.log" "$LOG/$1.out" ${2:+"$2"}; do
        [ -s "$f" ] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 25 "$f" >&2
    done
}
fail() { # message [daemon whose logs to show]
    log "ERROR: $1"
    if [ -n "${2:-}" ]; then
        local extra=
        [ "$2" = munged ] && extra=/var/log/munge/munged.log
        show_logs "$2" "$extra"
        if [ "$2" = slurmd ] && sinfo -h >/dev/null 2>&1; then
            echo "----- node state and reason (a drained node stays drained: scontrol update NodeName=<node> State=RESUME) -----" >&2
            sinfo -N -o '%N %T %E' >&2 || true
        fi
    fi
    log "state dir: $STATE_DIR (logs in $LOG); scripts/slurm/down.sh $STATE_DIR stops what runs"
    exit 1
}

# pid_alive, running_pid
# shellcheck source=scripts/slurm/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

munge_ok() { munge -n </dev/null | unmunge >/dev/null; }
write_env() {
    printf 'export SLURM_CONF=%s\n' "$SLURM_CONF" >"$STATE_DIR/env.sh"
    printf 'export SLURM_CONF=%s\n' "$SLURM_CONF"
}

# ---------------------------------------------------------------------------------------------
# Already up? (every daemon recorded and alive; munged may be a system one we did not start)
all_up=1
for d in "${DAEMONS[@]}"; do
    if ! running_pid "$d" >/dev/null; then
        [ "$d" = munged ] && [ -f "$PIDS/munged.external" ] && munge_ok 2>/dev/null && continue
        all_up=
    fi
done
if [ -n "$all_up" ] && [ -f "$SLURM_CONF" ]; then
    log "cluster already up (state dir $STATE_DIR); nothing to do"
    write_env
    exit 0
fi

[ "$(id -u)" = 0 ] || fail "must run as root (installs packages, runs munged as user munge)"
t_start=$(now)

# ---------------------------------------------------------------------------------------------
# Packages (no systemd here: installing them starts no service, the notes)
missing=()
for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} (apt)"
    t0=$(now)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$STATE_DIR/apt.log" 2>&1 || { tail -n 20 "$STATE_DIR/apt.log" >&2; fail "apt-get update failed"; }
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$STATE_DIR/apt.log" 2>&1 \
        || { tail -n 20 "$STATE_DIR/apt.log" >&2; fail "apt-get install failed (full log: $STATE_DIR/apt.log)"; }
    log "packages installed in $(since "$t0") s"
fi

mkdir -p "$ETC" "$LOG" "$RUN" "$PIDS" "$STATE_DIR/state/slurmctld" "$STATE_DIR/state/slurmd"

# ---------------------------------------------------------------------------------------------
# munge: the key must exist, /run/munge must exist and belong to munge, and munged must run as
# user munge (it refuses root) - the notes.
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge

# ---------------------------------------------------------------------------------------------
# Config files (generated once; delete STATE_DIR/etc to regenerate)
if [ ! -f "$ETC/slurm.conf" ]; then
    host=$(hostname -s)
    # The node line comes from `slurmd -C` (CPUs, boards, sockets, cores, threads as slurmd sees
    # them: a mismatch would drain the node), with RealMemory set below the machine's total
    # (slurmd registers with slightly less than /proc/meminfo says; equal or above drains it).
    node=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=') || fail "slurmd -C printed no NodeName line"
    mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
    real_mb=$((mem_mb * 9 / 10))
    node=$(echo "$node" | sed -E "s/ RealMemory=[0-9]+//")
    cat >"$ETC/slurm.conf" <<EOF
# Generated by scripts/slurm/up.sh for a single-node cluster on localhost; delete to regenerate.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
# root runs every daemon: no slurm user, no file ownership to manage.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
StateSaveLocation=$STATE_DIR/state/slurmctld
SlurmdSpoolDir=$STATE_DIR/state/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: linuxproc tracks job processes by parentage and task/none binds nothing. cgroup
# plugins may not work in a container / without systemd (the notes).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job with no --mem takes the whole node's memory and jobs run one at a time.
DefMemPerCPU=1024
# Fast turnaround: submission to start in ~0.4 s instead of ~1.6 s; arrays ~4x faster (the notes).
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,batch_sched_delay=0,bf_interval=1,sched_min_interval=0
# A node that was down (e.g. slurmd stopped by down.sh) comes back as soon as slurmd registers.
ReturnToService=2
# SIGTERM -> SIGKILL delay on cancel, time limit and the end of a preemption's GraceTime (default
# 30 s). submitit ignores SIGTERM (it checkpoints on USR2), so every cancel of a submitit job
# waits all of KillWait: 5 s makes scancel, down.sh and preemption that much quicker.
KillWait=5
# Accounting through slurmdbd: without it sacct fails and submitit's job.state stays UNKNOWN.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
JobCompType=jobcomp/none
# Preemption by partition priority: jobs of 'debug' (tier 10) requeue jobs of 'low' (tier 1)
# after GraceTime. preempt_send_user_signal sends the job's --signal (submitit: USR2) to the
# preempted job; without it the job gets only SIGTERM, which submitit ignores (no checkpoint).
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
$node RealMemory=$real_mb NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
PartitionName=low Nodes=$host Default=NO MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=30
EOF
    log "wrote $ETC/slurm.conf"
fi
if [ ! -f "$ETC/cgroup.conf" ]; then
    # Unused with proctrack/linuxproc + task/none; present so nothing falls back to /etc/slurm.
    cat >"$ETC/cgroup.conf" <<EOF
# Generated by scripts/slurm/up.sh. Not used: slurm.conf selects no cgroup plugin.
CgroupPlugin=autodetect
EOF
fi
if [ ! -f "$ETC/db.pass" ]; then
    (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$ETC/db.pass")
fi
DB_PASS=$(cat "$ETC/db.pass")
if [ ! -f "$ETC/slurmdbd.conf" ]; then
    # slurmdbd refuses a slurmdbd.conf that others can read (it holds the DB password).
    (umask 077 && cat >"$ETC/slurmdbd.conf" <<EOF
# Generated by scripts/slurm/up.sh; delete to regenerate.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
# Private MariaDB on a loopback port (started by up.sh from $DATADIR).
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    )
    log "wrote $ETC/slurmdbd.conf"
fi
chmod 0600 "$ETC/slurmdbd.conf"
DB_PORT=$(sed -n 's/^StoragePort=//p' "$ETC/slurmdbd.conf")
CLUSTER=$(sed -n 's/^ClusterName=//p' "$ETC/slurm.conf")

# ---------------------------------------------------------------------------------------------
# Starting and waiting
start_daemon() { # name command...
    local name=$1 pid
    shift
    if pid=$(running_pid "$name"); then
        log "$name already running (pid $pid)"
        return 0
    fi
    # setsid: the daemon gets its own session, so it outlives the shell or job that ran up.sh and
    # no signal sent to that job's process group reaches it. It runs in the foreground mode
    # (no fork), so $! is the daemon's own PID (setsid execs it directly: a background job of a
    # script is no process-group leader).
    (cd / && exec setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1) &
    echo "$!" >"$PIDS/$name.pid"
    log "started $name (pid $!)"
}
wait_until() { # timeout daemon what command...
    local timeout=$1 name=$2 what=$3 deadline
    shift 3
    deadline=$(($(date +%s) + timeout))
    until "$@" >/dev/null 2>&1; do
        if [ -f "$PIDS/$name.pid" ] && ! pid_alive "$(cat "$PIDS/$name.pid")"; then
            fail "$name exited while waiting for $what" "$name"
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${timeout} s waiting for $what" "$name"
        sleep 0.2
    done
}
node_ready() { # every line of sinfo (one per partition) shows a usable, responding node
    local states
    states=$(sinfo -h -N -o '%T') || return 1
    [ -n "$states" ] && ! echo "$states" | grep -qvE '^(idle|mixed|allocated|completing)$'
}

# munged. A munged we did not start (socket already answering) is used as it is, never stopped.
rm -f "$PIDS/munged.external"
if ! running_pid munged >/dev/null && munge_ok 2>/dev/null; then
    log "munged already running (not started by up.sh): using it"
    touch "$PIDS/munged.external"
    rm -f "$PIDS/munged.pid"
else
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    wait_until "$WAIT_S" munged "munged to answer" munge_ok
fi

# MariaDB: a private server (--no-defaults: ignore /etc/mysql) in STATE_DIR, reachable by TCP on
# 127.0.0.1:$DB_PORT (slurmdbd connects by TCP) and by a socket in STATE_DIR (for setup here).
if [ ! -d "$DATADIR/mysql" ]; then
    log "initialising MariaDB datadir $DATADIR"
    rm -rf "$DATADIR.tmp"
    mariadb-install-db --no-defaults --user=root --datadir="$DATADIR.tmp" --skip-test-db \
        --auth-root-authentication-method=socket >"$LOG/mariadb-install-db.log" 2>&1 \
        || fail "mariadb-install-db failed" mariadb-install-db
    mv "$DATADIR.tmp" "$DATADIR" # only a complete datadir gets the final name
fi
# --user=root: mariadbd refuses to run as root unless told so. --skip-name-resolve: no DNS; the
# slurm user is therefore granted on 127.0.0.1 (TCP) as well as localhost (socket).
# innodb_lock_wait_timeout=900 is what slurmdbd asks for; it also asks for a bigger buffer pool
# (a harmless warning in slurmdbd.log) - 128M is plenty for one node's accounting.
start_daemon mariadbd mariadbd --no-defaults --user=root --datadir="$DATADIR" \
    --socket="$DB_SOCKET" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadbd.log" \
    --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900
wait_until "$WAIT_S" mariadbd "MariaDB to answer on $DB_SOCKET" \
    mariadb-admin --no-defaults --socket="$DB_SOCKET" -uroot ping
mariadb --no-defaults --socket="$DB_SOCKET" -uroot >"$LOG/mariadb-setup.log" 2>&1 <<EOF || fail "creating the slurm database user failed" mariadb-setup
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF

# slurmdbd, then the cluster's record in accounting (slurmctld registers against it).
start_daemon slurmdbd slurmdbd -D
wait_until "$WAIT_S" slurmdbd "slurmdbd to answer (sacctmgr)" sacctmgr -n list cluster
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >>"$LOG/sacctmgr.log" 2>&1 \
        || fail "sacctmgr add cluster $CLUSTER failed" sacctmgr
    log "registered cluster $CLUSTER in accounting"
fi

start_daemon slurmctld slurmctld -D
wait_until "$WAIT_S" slurmctld "slurmctld to answer (scontrol ping)" scontrol ping
start_daemon slurmd slurmd -D
wait_until "$WAIT_S" slurmd "the node to be idle in sinfo" node_ready
wait_until "$WAIT_S" slurmctld "sacct to work" sacct -n -X -S now-1minutes -o JobID

log "cluster up in $(since "$t_start") s: $(sinfo -h -o '%P=%T' | tr '\n' ' ')(state dir $STATE_DIR)"
write_env
