# shellcheck shell=bash disable=SC2034  # VCLUSTER and HELPER are read by the test scripts
# Helpers for the multinode tests (sourced): those of the Slurm tests (tests/slurm/slurm_lib.sh:
# submit, wait, digests, the checks of a requeued run) pointed at the virtual cluster that the
# `multinode.cluster_start` fixture started in $CKPTIO_VCLUSTER_DIR, plus what only exists
# across nodes: running in a node, the ranks of one node, killing a node.
#
# Every test script is called as: <script> <train_toy> <mpiexec> <slurm dir of the repo> <work dir>
set -euo pipefail

: "${CKPTIO_VCLUSTER_DIR:?the multinode tests run under CTest, which sets CKPTIO_VCLUSTER_DIR}"
if [[ -f $CKPTIO_VCLUSTER_DIR/unavailable ]]; then
  echo "SKIP: $(cat "$CKPTIO_VCLUSTER_DIR/unavailable")"
  exit 77
fi
[[ -f $CKPTIO_VCLUSTER_DIR/env.sh ]] || {
  echo "no virtual cluster in $CKPTIO_VCLUSTER_DIR: the multinode.cluster_start fixture must run first" >&2
  exit 1
}
# shellcheck source=/dev/null
source "$CKPTIO_VCLUSTER_DIR/env.sh"
# shellcheck source=../slurm/slurm_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../slurm/slurm_lib.sh"
VCLUSTER=$SLURM_DIR/virtual-cluster
HELPER=${CKPTIO_MULTINODE_HELPER:-}
# The work folder is on the real disk: the shared file system of every node.

# submit_nodes <name> <sbatch options...> -- <trainer flags...>: submit, whose mpirun template
# starts mpirun's daemons on the other nodes of the allocation through srun.
# Not `srun --mpi=pmix`: across these namespaces it crashed about one launch in 30 inside
# MPI_Init (docs/SLURM.md, "What did not work"), and a test must not fail by chance.
submit_nodes() { submit "$@"; }

# run_helper <name> <salloc options...> -- <helper arguments...>: the test helper started by
# mpirun in a fresh allocation; output in $WORK/<name>.log (also printed); its exit status.
run_helper() {
  local name=$1
  shift
  local salloc_args=()
  while [[ $1 != -- ]]; do
    salloc_args+=("$1")
    shift
  done
  shift
  echo "+ salloc ${salloc_args[*]} mpirun multinode_roundtrip $*"
  local status=0
  timeout 120 salloc -Q --job-name="ckptio-$name" "${salloc_args[@]}" "$MPIEXEC" "$HELPER" "$@" \
    >"$WORK/$name.log" 2>&1 || status=$?
  sed 's/^/  /' "$WORK/$name.log"
  return "$status"
}

# field <name> <key>: a `key: value` line of the helper's output in $WORK/<name>.log.
field() { sed -n "s/^$2: //p" "$WORK/$1.log"; }

# node_of_pid <pid>: the hostname (node) that process runs in.
node_of_pid() { nsenter -t "$1" --uts hostname 2>/dev/null; }

# rank_pids_on <name> <node>: the trainer's ranks of run <name> that run in <node>.
rank_pids_on() {
  local pid
  for pid in $(rank_pids "$1"); do
    [[ $(node_of_pid "$pid") == "$2" ]] && echo "$pid"
  done
  return 0
}

# job_nodes <job>: the job's NodeList as Slurm reports it.
job_nodes() { job_field "$1" NodeList; }

# start_now_when_pending <job>: a requeued job waits for its BeginTime (cred_expire + 1 s);
# nothing else is waited for, so the test does not depend on that delay.
start_now_when_pending() {
  if [[ $(job_field "$1" JobState) == PENDING && $(job_field "$1" Reason) == BeginTime ]]; then
    scontrol update JobId="$1" StartTime=now >/dev/null 2>&1 || true
  fi
  return 1
}

# ended_kicking <job>: the job ended; a requeued job waiting for its BeginTime is started now.
ended_kicking() {
  job_ended "$1" && return 0
  start_now_when_pending "$1"
}

# wait_ended_kicking <job> <seconds>: wait_ended, without waiting out the BeginTime of a requeue.
wait_ended_kicking() {
  local start=$SECONDS
  wait_until "$2" ended_kicking "$1"
  echo "  job $1 ended $(job_field "$1" JobState) after $((SECONDS - start)) s, Restarts=$(job_field "$1" Restarts), NodeList=$(job_nodes "$1")"
}

# preempt_onto_other_nodes <job> <taken> <first nodes> <second nodes>: a job of the high partition
# takes the nodes <taken> (comma-separated) from the running job <job> of the low partition,
# which saves, requeues itself and runs again on the nodes left. Checks the NodeList of the two
# runs (as Slurm writes it: node[2-3]), waits until the job ended, then ends the high job (only
# the low job needed it to wait this long).
preempt_onto_other_nodes() {
  local job=$1 taken=$2 first=$3 second=$4 count high
  count=$(tr ',' '\n' <<<"$taken" | wc -l)
  expect_equal "first run's nodes" "$first" "$(job_nodes "$job")"
  echo "+ sbatch -p high -N $count -w $taken --exclusive --wrap 'sleep 120'"
  high=$(sbatch --parsable -p high -N "$count" -w "$taken" --exclusive --job-name=ckptio-high \
    --output="$WORK/high.log" --wrap 'sleep 120')
  JOBS+=("$high")
  wait_ended_kicking "$job" 150
  scancel "$high"
  expect_equal "second run's nodes" "$second" "$(job_nodes "$job")"
}

# batch_hosts <out>: the batch host of each run, as the template prints it, space-separated.
batch_hosts() { sed -n 's/^=== job [0-9]* run [0-9]* (.*) on \([^ ]*\) at .*/\1/p' "$1" | tr '\n' ' ' | sed 's/ $//'; }
