#!/usr/bin/env bash
# A real one-node Slurm on this machine, for the workflow's Slurm test (and CI), without systemd.
#
#   tests/tools/one_node_slurm.sh install   # Debian packages slurm-wlm and munge (needs root)
#   tests/tools/one_node_slurm.sh start     # munged, slurmctld, slurmd; waits until the node is idle
#   tests/tools/one_node_slurm.sh stop      # stops the three daemons (always safe to call)
#   tests/tools/one_node_slurm.sh env       # prints `export SLURM_CONF=...` for the clients
#
# State, logs and pids live under $EDGEASR_SLURM_DIR (default /tmp/edgeasr-slurm); the config goes where
# every client finds it (/etc/slurm/slurm.conf, or $EDGEASR_SLURM_CONF with SLURM_CONF set to it). No slurmdbd: status checks use
# squeue (MinJobAge keeps finished jobs visible to it). RealMemory is pinned below what `slurmd -C`
# reports, or the node drains.
set -euo pipefail
DIR=${EDGEASR_SLURM_DIR:-/tmp/edgeasr-slurm}
# Where every Slurm client looks by default (srun inside a job does not see SLURM_CONF): written only if
# absent or written by this script before.
CONF=${EDGEASR_SLURM_CONF:-/etc/slurm/slurm.conf}
MARK="# one-node Slurm of edgeasr's tests (tests/tools/one_node_slurm.sh)"
MUNGE_SOCKET=$DIR/munge/munge.socket

install() {
  if command -v slurmctld >/dev/null && command -v munged >/dev/null; then return; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
  mkdir -p "$DIR"/{state,spool,log,munge} "$(dirname "$CONF")"
  if [ -s "$CONF" ] && ! head -n 1 "$CONF" | grep -qF "$MARK"; then
    echo "$CONF exists and is not ours: set EDGEASR_SLURM_CONF to another path" >&2
    return 1
  fi
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$(( ${mem:-4096} * 9 / 10 ))
  cat > "$CONF" <<CONF
$MARK
ClusterName=edgeasr
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=600
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  install
  stop >/dev/null 2>&1 || true
  write_conf
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    (command -v mungekey >/dev/null && mungekey --create --force) || \
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chmod 0400 /etc/munge/munge.key
  fi
  munged --force --socket="$MUNGE_SOCKET" --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munge.seed"
  export SLURM_CONF=$CONF
  slurmctld -f "$CONF"
  slurmd -f "$CONF"
  for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
      echo "one-node Slurm up: $(sinfo -h -o '%N %c CPUs %m MB %T')"
      return 0
    fi
    sleep 1
  done
  echo "Slurm did not come up; logs in $DIR/log" >&2
  sinfo -N -l >&2 || true
  tail -n 20 "$DIR"/log/*.log >&2 || true
  return 1
}

stop() {
  local f pid
  for f in slurmd slurmctld munged; do
    if [ -f "$DIR/$f.pid" ]; then
      pid=$(cat "$DIR/$f.pid" 2>/dev/null || true)
      if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
      rm -f "$DIR/$f.pid"
    fi
  done
  # daemons that lost their pid file
  pkill -f "slurmd -f $CONF" 2>/dev/null || true
  pkill -f "slurmctld -f $CONF" 2>/dev/null || true
  pkill -f "munged --force --socket=$MUNGE_SOCKET" 2>/dev/null || true
  # our config goes too: with a config naming a controller that is gone, every `scontrol` call (the Slurm
  # executor plugin makes one whenever Snakemake starts) waits about 9 s for it
  if [ -f "$CONF" ] && head -n 1 "$CONF" | grep -qF "$MARK"; then rm -f "$CONF"; fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
