# shellcheck shell=bash disable=SC2034  # LEVEL_FLAGS is read by the test scripts
# Helpers of the multilevel tests (sourced): those of multinode_lib.sh, plus a job that runs
# the trainer as several job steps in one allocation (multilevel_steps.sh) so that the test
# can kill a rank, wipe or damage a node's local folder between two steps. The trainer's
# node-local folder is /local/ckptio-<name>-<job>: /local is each node's own tmpfs. The
# local folders of the test are removed from every node at exit.
source "$(dirname "${BASH_SOURCE[0]}")/multinode_lib.sh"
STEPS_SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/multilevel_steps.sh

# Every step saves (locally), every 5th save is also flushed to the shared root. Steps of
# 500 ms: a rank killed right after rank 0 reports a save dies long before the next save.
LEVEL_FLAGS=(--steps 12 --ckpt-every 1 --flush-every 5 --step-sleep-ms 500 --no-preemption-guard)
LEVEL_NAMES=()

remove_local_folders() {
  local node name
  [[ -f $CKPTIO_VCLUSTER_DIR/nodes ]] || return 0
  while read -r node; do
    for name in "${LEVEL_NAMES[@]}"; do
      in_node "$node" sh -c "rm -rf /local/ckptio-$name-*" </dev/null 2>/dev/null || true
    done
  done <"$CKPTIO_VCLUSTER_DIR/nodes"
}
on_exit_removing_local_folders() {
  local status=$?
  set +e
  remove_local_folders
  (exit "$status") # on_exit reads the test's status from $?
  on_exit
}
trap on_exit_removing_local_folders EXIT

# local_dir_of <name> <job>: the run's node-local folder (the same path on every node).
local_dir_of() { echo "/local/ckptio-$1-$2"; }

# submit_steps <name> <runs> <sbatch options...> -- <trainer flags...>: submits the trainer as
# <runs> job steps of one job (no requeue), shared root $WORK/<name>, output $WORK/<name>.out,
# node-local folder local_dir_of <name> <job> (submit, with multilevel_steps.sh as the batch
# script); sets JOB.
submit_steps() {
  local name=$1 runs=$2
  shift 2
  mkdir -p "$WORK/$name.markers"
  LEVEL_NAMES+=("$name")
  local BATCH_SCRIPT=("$STEPS_SCRIPT" "$runs" "$WORK/$name.markers")
  submit "$name" --no-requeue "$@" --local-dir "$(local_dir_of "$name" %j)"
}

# kill_rank_after_save <name> <node> <step>: SIGKILLs one rank of the run on <node> as soon as
# rank 0 reports the save of <step>.
kill_rank_after_save() {
  local name=$1 node=$2 step=$3 victim="" deadline=$((SECONDS + 90)) pids
  until [[ -n $victim ]]; do
    ((SECONDS < deadline)) || fail "no rank of $name on $node after 90 s"
    pids=$(rank_pids_on "$name" "$node")
    victim=${pids%%$'\n'*}
    sleep 0.1
  done
  until grep -q "^saved .* at global_step $step " "$WORK/$name.out"; do
    ((SECONDS < deadline)) || fail "$name did not save step $step"
    sleep 0.05
  done
  kill -9 "$victim"
  echo "  SIGKILLed rank pid $victim on $node after the save of step $step"
}

# between_steps <name> <k> <command...>: once job step <k> has ended, runs the command, then
# lets step k+1 start.
between_steps() {
  local name=$1 k=$2
  shift 2
  wait_until 60 test -f "$WORK/$name.markers/step$k.ended"
  "$@"
  touch "$WORK/$name.markers/step$k.go"
}

# in_node <node> <command...>: runs the command in the node's namespaces (its /local).
in_node() { "$VCLUSTER" exec "$CKPTIO_VCLUSTER_DIR" "$1" -- "${@:2}"; }

# wipe_local <node> <folder>: the node's local folder is gone, as on a replaced node.
wipe_local() {
  echo "  wiping $2 on $1 ($(in_node "$1" find "$2" -type f | wc -l) files)"
  in_node "$1" rm -rf "$2"
}

# flip_middle_byte <node> <file>: inverts the lowest bit of the byte in the middle of the file.
flip_middle_byte() {
  echo "  flipping a byte of $2 on $1"
  # shellcheck disable=SC2016  # expanded by the inner bash
  in_node "$1" bash -c 'set -e; size=$(stat -c %s "$1"); at=$((size / 2))
    byte=$(od -An -tu1 -j "$at" -N 1 "$1" | tr -d " ")
    printf "\\$(printf %03o $((byte ^ 1)))" | dd of="$1" bs=1 seek="$at" conv=notrunc status=none' _ "$2"
}

# show_restores <name>: what the restarts logged about the levels.
show_restores() { sed -n 's/^\[ckptio\] \[rank [0-9]*\] \[[a-z]*\] \(load_latest: .*\)/  \1/p' "$WORK/$1.out"; }

# check_finished <name> <job> <reference digest>: the job completed, its last step finished
# with the digest of the uninterrupted run, and its first step was killed.
check_finished() {
  local out=$WORK/$1.out
  show_restores "$1"
  expect_equal "job state" COMPLETED "$(job_field "$2" JobState)"
  expect_line "$out" '^=== job [0-9]+ step 1: mpirun exited with [1-9]'
  expect_equal "final digest" "$3" "$(digest_in "$out")"
}

# requeued_with_local_level <name> <taken> <second nodes>: the trainer as a 2-node job on
# node1+node2 (2 ranks each) that saves locally every step and flushes only every 1000th save,
# preempted once it reported the local save of step 10: a job of the high partition takes the
# nodes <taken> (comma-separated) and the job requeues onto <second nodes>. The guard's save
# before the requeue is a flush, so the shared root holds exactly the stopping step. Checks
# the requeue (check_requeued_once: the digest of an uninterrupted run) and the shared root;
# sets JOB and STOP_STEP.
requeued_with_local_level() {
  local name=$1 taken=$2 second=$3 expected job
  expected=$(reference_digest 4 --steps 80)
  LEVEL_NAMES+=("$name")
  submit_nodes "$name" -p low -N 2 --ntasks-per-node=2 --exclusive -- --steps 80 --ckpt-every 1 --flush-every 1000 \
    --step-sleep-ms 100 --walltime-margin 10 --local-dir "$(local_dir_of "$name" %j)"
  job=$JOB
  wait_until 90 grep -qs "^saved $(local_dir_of "$name" "$job")/node0/epoch0-global_step10\\.h5 " "$WORK/$name.out"
  preempt_onto_other_nodes "$job" "$taken" "node[1-2]" "$second"
  show_restores "$name"
  check_requeued_once "$name" "$job" "$expected" 4
  # The only checkpoint of the shared root is the guard's flush of the stopping step.
  expect_equal "shared root" "epoch0-global_step$STOP_STEP.h5" "$(cd "$WORK/$name" && ls -- *.h5)"
  JOB=$job
}
