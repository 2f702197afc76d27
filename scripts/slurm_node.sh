#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to test the SLURM profile for real (root only):
#   bash scripts/slurm_node.sh up      install slurm-wlm + munge (Debian) if missing, write
#                                      /etc/slurm/slurm.conf (node "localhost", partition "debug"),
#                                      start munged, slurmctld and slurmd, wait until the node is idle
#   bash scripts/slurm_node.sh down    stop the three daemons this script started, remove its slurm.conf
# Logs, spool and pid files go to $SLURM_NODE_DIR (default /tmp/induction-heads-slurm); slurmctld's
# log, $SLURM_NODE_DIR/slurmctld.log, starts empty at each `up`. The config must sit at
# /etc/slurm/slurm.conf (a job step does not keep SLURM_CONF), so `up` refuses to replace a
# slurm.conf it did not write, and refuses to start while another slurmctld is running.
# Exit status 77: SLURM could not be installed (apt-get failed).
set -euo pipefail

DIR=${SLURM_NODE_DIR:-/tmp/induction-heads-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by induction-heads scripts/slurm_node.sh"

die() { echo "slurm_node: $*" >&2; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {  # stop the daemon whose pid is in $1: TERM, then KILL after 10 s
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null && return 0
  echo "slurm_node: installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >/dev/null 2>&1 || true
  if ! timeout 600 apt-get install -y -qq --no-install-recommends slurm-wlm munge >"$DIR/apt.log" 2>&1; then
    echo "slurm_node: cannot install: apt-get install slurm-wlm munge failed ($(tail -1 "$DIR/apt.log"))" >&2
    exit 77  # the SLURM test skips on this code: no SLURM to test with
  fi
}

write_conf() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not replacing it"
  fi
  local cpus mem
  cpus=$(nproc)
  # MemTotal minus 512 MB for the daemons and the submitting Snakemake, in MB.
  mem=$(awk '/^MemTotal:/ {print int($2 / 1024) - 512}' /proc/meminfo)
  mkdir -p /etc/slurm
  cat >"$CONF" <<EOF
$MARK: a one-node test cluster on localhost
ClusterName=localhost
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
# No accounting database: finished jobs must stay visible to squeue for the executor's status checks.
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldDebug=info
SlurmdDebug=info
StateSaveLocation=$DIR/slurmctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
    return 0  # a munged is already answering
  fi
  install -d -o munge -g munge -m 755 /run/munge  # the socket directory must be world-readable
  install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || timeout 30 mungekey --create --force >/dev/null
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  timeout 30 runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid \
    || die "munged did not start (see /var/log/munge/munged.log)"
  cp /run/munge/munged.pid "$DIR/munged.pid"
  timeout 5 munge -n | timeout 5 unmunge >/dev/null || die "munge does not answer"
}

wait_for_node() {
  for _ in $(seq 60); do
    if [ "$(timeout 5 sinfo -h -n localhost -o %T 2>/dev/null)" = "idle" ]; then return 0; fi
    sleep 0.5
  done
  timeout 5 sinfo -N -l >&2 || true
  tail -20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
  die "the node did not become idle within 30 s"
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (installs Debian packages, writes $CONF, runs daemons as root)"
  mkdir -p "$DIR"
  if pid_alive "$DIR/slurmctld.pid"; then die "a slurmctld from this script is running: run 'down' first"; fi
  if command -v scontrol >/dev/null && [ -f "$CONF" ] && timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
    die "another slurmctld answers on this machine; not starting a second one"
  fi
  install_packages
  write_conf
  rm -rf "$DIR/slurmctld" "$DIR/slurmd" && mkdir -p "$DIR/slurmctld" "$DIR/slurmd"
  : >"$DIR/slurmctld.log" && : >"$DIR/slurmd.log"
  start_munge
  timeout 30 slurmctld -c -i || die "slurmctld did not start (see $DIR/slurmctld.log)"
  timeout 30 slurmd -N localhost || die "slurmd did not start (see $DIR/slurmd.log)"
  wait_for_node
  echo "slurm_node: up ($(timeout 5 sinfo -h -o '%P %D node(s), %c CPUs, %m MB')); log $DIR/slurmctld.log"
}

down() {
  if pid_alive "$DIR/slurmctld.pid"; then
    timeout 10 scancel --full --user "$(id -un)" >/dev/null 2>&1 || true
  fi
  stop_pidfile "$DIR/slurmd.pid"
  stop_pidfile "$DIR/slurmctld.pid"
  stop_pidfile "$DIR/munged.pid"
  # Without a controller, every SLURM client call (the SLURM executor plugin runs `scontrol show
  # config` when Snakemake starts) waits ~9 s for it; with no slurm.conf it fails at once.
  if [ -f "$CONF" ] && grep -qF "$MARK" "$CONF"; then rm -f "$CONF"; fi
  echo "slurm_node: down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: bash scripts/slurm_node.sh up|down" ;;
esac
