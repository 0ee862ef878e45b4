# shellcheck shell=bash disable=SC2154  # cluster_tool and dir are set by the sourcing script
# What slurm/local-cluster (one host) and slurm/virtual-cluster (several nodes made of Linux
# namespaces on one host) share: munge, the common part of slurm.conf, the partitions,
# starting and stopping the daemons. Source it after setting:
#   cluster_tool  the script's name, for messages
#   dir           the cluster's scratch folder (state, spool, logs, slurm.conf)

say() { printf '%s: %s\n' "$cluster_tool" "$*"; }
die() {
  printf '%s: error: %s\n' "$cluster_tool" "$*" >&2
  exit 1
}

# cluster_install_packages PACKAGE...: apt-get installs those that are missing (no prompt).
cluster_install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed$' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && { say "$* are installed"; return; }
  local as_root=()
  [[ $(id -u) == 0 ]] || as_root=(sudo)
  "${as_root[@]}" apt-get update </dev/null
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
}

# cluster_require_programs PROGRAM...: dies naming the first one that is missing.
cluster_require_programs() {
  local p
  for p in "$@"; do
    command -v "$p" >/dev/null || [[ -x /usr/sbin/$p ]] || die "$p not found: run '$cluster_tool install'"
  done
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

# port_in_use PORT: something listens on PORT of 127.0.0.1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

# Starts munged unless one answers; remembers in $dir that this cluster started it.
start_munge() {
  if munge_works; then
    say "munged is already running"
    return
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  if command -v runuser >/dev/null; then
    runuser -u munge -- /usr/sbin/munged
  else
    su -s /bin/sh munge -c /usr/sbin/munged
  fi
  local i
  for ((i = 0; i < 50; i++)); do
    munge_works && { touch "$dir/munged.started-here"; say "munged started"; return; }
    sleep 0.1
  done
  die "munged does not answer (munge -n | unmunge fails)"
}

stop_munge_if_started_here() {
  [[ -f $dir/munged.started-here ]] || return 0
  local munge_pid
  munge_pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
  if [[ -n $munge_pid ]]; then kill "$munge_pid" 2>/dev/null || true; fi
  rm -f "$dir/munged.started-here"
  say "munged stopped"
}

# write_common_config: the settings both clusters share (root daemons without systemd,
# no cgroup-based tracking, a quick scheduler, requeue and partition-priority preemption
# with the user's signal sent at preemption), printed for the caller's slurm.conf.
write_common_config() {
  cat <<CONF
ClusterName=ckptio
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job may start again cred_expire + 1 s after it ended (the default is 121 s).
AuthInfo=cred_expire=10
StateSaveLocation=$dir/state
SlurmctldPidFile=$dir/slurmctld.pid
SlurmctldLogFile=$dir/log/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
InactiveLimit=0
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
SlurmdParameters=config_overrides
CONF
}

# write_partitions NODES: `low` (the default; preemptable, GraceTime 20 s) and `high`
# (PriorityTier 10, preempts low) over NODES.
write_partitions() {
  cat <<CONF
PartitionName=low Nodes=$1 Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=20
PartitionName=high Nodes=$1 MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
CONF
}

# write_cgroup_config: slurmd 22.05 always loads a cgroup plugin; without systemd, a
# cgroup-v2-only host needs the v1 plugin.
write_cgroup_config() {
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    echo "CgroupPlugin=cgroup/v1" >"$dir/cgroup.conf"
  else
    echo "CgroupPlugin=autodetect" >"$dir/cgroup.conf"
  fi
}

# wait_pid_file PIDFILE NAME LOG: waits up to 5 s for a daemon's pid file to name a live process.
wait_pid_file() {
  local i
  for ((i = 0; i < 50; i++)); do
    pid_alive "$1" && return 0
    sleep 0.1
  done
  die "$2 did not start; see $3"
}

# wait_nodes_idle NODE...: waits until every named node is idle (resuming down or drained ones).
wait_nodes_idle() {
  local i node state all
  for ((i = 0; i < 300; i++)); do
    all=1
    for node in "$@"; do
      state=$(sinfo -h -n "$node" -o %t 2>/dev/null | head -n 1 || true)
      [[ $state == idle ]] && continue
      all=0
      if [[ $state == down* || $state == drain* ]]; then
        scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
      fi
    done
    ((all)) && return 0
    sleep 0.2
  done
  die "not every node of '$*' is idle after 60 s: $(sinfo -h -o '%n %t' 2>/dev/null | tr '\n' ' '); see $dir/log"
}

# stop_daemons PIDFILE...: asks slurmctld to shut everything down, then kills what is left.
stop_daemons() {
  export SLURM_CONF=$dir/slurm.conf
  local f i any=0
  for f in "$@"; do pid_alive "$f" && any=1; done
  ((any)) && [[ -f $SLURM_CONF ]] && { scontrol shutdown >/dev/null 2>&1 || true; }
  for f in "$@"; do
    for ((i = 0; i < 100; i++)); do
      pid_alive "$f" || break
      sleep 0.1
    done
    if pid_alive "$f"; then
      kill -9 "$(cat "$f")" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}
