#!/usr/bin/env bash
# Bring up a one-node Slurm cluster on this machine (Debian's slurm-wlm + munge), for the Slurm tests and to try
# `wam-pipe submit` locally. Needs root (apt-get, daemons, /etc/slurm). Idempotent: exits 0 at once when `sinfo`
# already shows an idle node. Every step is bounded in time; exit 1 with one line when the cluster cannot come up.
#
#   scripts/slurm_one_node.sh            # install if missing, write /etc/slurm/slurm.conf, start munged/slurmctld/slurmd
#   scripts/slurm_one_node.sh --stop     # stop the three daemons this script started
#
# The node is this host (`hostname -s`, address 127.0.0.1) with the CPUs `nproc` reports and no GPUs; one partition
# `debug` (default, no time limit). State and logs live under $WAM_SLURM_DIR (default /tmp/wam-pipe-slurm).
set -uo pipefail

STATE=${WAM_SLURM_DIR:-/tmp/wam-pipe-slurm}
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)

say() { echo "slurm_one_node: $*" >&2; }
fail() { say "$*"; exit 1; }

stop() {
  for name in slurmd slurmctld munged; do
    pidfile="$STATE/$name.pid"
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
  done
  return 0
}

if [ "${1:-}" = "--stop" ]; then stop; exit 0; fi

idle() { timeout 10 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

if command -v sinfo >/dev/null && idle; then say "already up: $(sinfo -h -o '%N %T %c')"; exit 0; fi

[ "$(id -u)" = 0 ] || fail "needs root (apt-get, daemons, $CONF); run it as root or start Slurm yourself"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >/dev/null || fail "apt-get update failed (no package mirror reachable?)"
  timeout 600 apt-get install -y -qq slurm-wlm munge >/dev/null || fail "apt-get install slurm-wlm munge failed"
fi

mkdir -p "$STATE"/{ctld,slurmd,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge
CPUS=$(nproc)

# Written only when missing or written by this script before: a real cluster's slurm.conf is never replaced.
if [ -f "$CONF" ] && ! grep -q "wam-pipe one-node" "$CONF"; then
  fail "$CONF exists and was not written by this script; not replacing it"
fi
cat > "$CONF.tmp" <<EOF
# wam-pipe one-node test cluster (scripts/slurm_one_node.sh)
ClusterName=wampipe
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=300
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
mv "$CONF.tmp" "$CONF"

# munge: a key (the package normally creates one), then the daemon, as root (--force: root-owned key/dirs).
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; chmod 400 /etc/munge/munge.key; }
if ! timeout 5 munge -n >/dev/null 2>&1; then
  munged --force --pid-file="$STATE/munged.pid" >/dev/null 2>&1 || fail "munged did not start"
  for _ in $(seq 20); do timeout 5 munge -n >/dev/null 2>&1 && break; sleep 0.5; done
  timeout 5 munge -n >/dev/null 2>&1 || fail "munge does not answer (munged running?)"
fi

# Stale daemons from an earlier start with another config: stop them first.
for name in slurmd slurmctld; do
  [ -f "$STATE/$name.pid" ] && kill "$(cat "$STATE/$name.pid")" 2>/dev/null && sleep 1
done
slurmctld -c >/dev/null 2>&1 || fail "slurmctld did not start (see $STATE/log/slurmctld.log)"
slurmd >/dev/null 2>&1 || fail "slurmd did not start (see $STATE/log/slurmd.log)"

for _ in $(seq 60); do
  if idle; then say "up: $(sinfo -h -o '%N %T %c CPUs')"; exit 0; fi
  timeout 5 scontrol update nodename="$HOST" state=resume >/dev/null 2>&1
  sleep 1
done
fail "no idle node after 60 s (see $STATE/log/slurmctld.log and slurmd.log)"
