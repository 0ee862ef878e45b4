#!/usr/bin/env bash
# The preemption exit path without a Slurm controller: a signal to one rank stops both ranks at
# the same step; they save it and exit with 75. (a) Outside Slurm, with --preempt-signal USR2:
# no requeue. (b) With a SLURM_JOB_ID but an scontrol that cannot reach any controller (as in
# a container): the failing squeue and requeue is logged, the exit status is still 75, and the
# checkpoint resumes to the digest of an uninterrupted run.
source "$(dirname "$0")/e2e_lib.sh"

# Not a Slurm job, whatever the environment of the test run.
unset SLURM_JOB_ID SLURM_RESTART_COUNT
flags=(--steps 40 --ckpt-every 10 --hidden 37)
run_trainer 2 uninterrupted --ckpt-dir "$WORK/uninterrupted" "${flags[@]}" --no-preemption-guard
expected=$(digest_of uninterrupted)

# rank_pids <root>: the trainer processes working on <root> (the ranks, not mpiexec).
rank_pids() {
  local pid
  for pid in $(pgrep -x train_toy || true); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--ckpt-dir $1 "; then echo "$pid"; fi
  done
}

# stop_one_rank <name> <signal> <trainer flags...>: starts the trainer on $WORK/<name> (with
# the mpiexec options in MPI_ARGS), sends <signal> to its last rank once step 10 is committed,
# and waits for the exit status; sets STOP_STEP.
MPI_ARGS=()
stop_one_rank() {
  local name=$1 signal=$2
  shift 2
  echo "+ mpiexec -n 2 ${MPI_ARGS[*]} train_toy --ckpt-dir $WORK/$name ${flags[*]} --step-sleep-ms 100 $* &"
  timeout "$RUN_LIMIT_S" "$MPIEXEC" -n 2 --oversubscribe "${MPI_ARGS[@]}" "$TRAINER" --ckpt-dir "$WORK/$name" \
    "${flags[@]}" --step-sleep-ms 100 "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  BACKGROUND_PIDS+=("$pid")
  first_committed() { grep -qs 'global_step10\.h5' "$WORK/$name/latest" || ! kill -0 "$pid" 2>/dev/null; }
  wait_until 60 first_committed
  local ranks
  mapfile -t ranks < <(rank_pids "$WORK/$name")
  expect_equal "$name: rank processes" 2 "${#ranks[@]}"
  echo "+ kill -$signal ${ranks[-1]}"
  kill "-$signal" "${ranks[-1]}"
  local status=0
  wait "$pid" || status=$?
  expect_equal "$name: exit status" 75 "$status"
  local log=$WORK/$name.log
  expect_line "$name" "preemption: SIG$signal received on rank"
  STOP_STEP=$(sed -n 's/.*agreed stop at step \([0-9]*\) .*/\1/p' "$log")
  [[ -n $STOP_STEP ]] || fail "$name: no agreed stop"
  expect_line "$name" "^saved .*global_step$STOP_STEP\\.h5 at global_step $STOP_STEP "
  expect_equal "$name: latest" "epoch0-global_step$STOP_STEP.h5" "$(head -n 1 "$WORK/$name/latest")"
}

# (a) Outside Slurm, USR2 chosen as the requeue signal.
stop_one_rank nonslurm USR2 --preempt-signal USR2
expect_line nonslurm 'not requeueing: not under Slurm \(no SLURM_JOB_ID\); exit status 75'
expect_no_line nonslurm 'requeued job'

# (b) A Slurm job id for the ranks only (mpiexec itself would look for the allocation), but
# squeue and scontrol have no usable configuration (an empty slurm.conf): they fail at once.
: >"$WORK/empty-slurm.conf"
MPI_ARGS=(-x SLURM_JOB_ID=999999 -x "SLURM_CONF=$WORK/empty-slurm.conf")
stop_one_rank noscontrol USR1
expect_line noscontrol 'requeueing job 999999; exit status 75'
expect_line noscontrol "\\[error\\] preemption: requeue of job 999999 failed: .*; the checkpoint of step $STOP_STEP is in place"
run_trainer 2 resumed --ckpt-dir "$WORK/noscontrol" "${flags[@]}" --resume
expect_line resumed "^resumed from .*global_step$STOP_STEP\\.h5 at global_step $STOP_STEP\$"
expect_equal "final digest after the stop and resume" "$expected" "$(digest_of resumed)"

# (c) Periodic checkpoints written in the background (--async-save): an uninterrupted run ends
# with the same digest, and a stop waits for the save in flight before its own save.
run_trainer 2 async_uninterrupted --ckpt-dir "$WORK/async_uninterrupted" "${flags[@]}" --async-save \
  --no-preemption-guard
expect_equal "final digest with --async-save" "$expected" "$(digest_of async_uninterrupted)"
expect_line async_uninterrupted 'saving .*global_step10\.h5 at global_step 10 .* in the background'
MPI_ARGS=()
stop_one_rank async USR2 --preempt-signal USR2 --async-save
run_trainer 2 async_resumed --ckpt-dir "$WORK/async" "${flags[@]}" --resume --async-save
expect_equal "final digest after an --async-save stop and resume" "$expected" "$(digest_of async_resumed)"
