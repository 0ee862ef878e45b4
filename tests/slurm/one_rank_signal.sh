#!/usr/bin/env bash
# USR1 delivered to one rank's process only (not through mpirun): all four ranks stop at the
# same step, the checkpoint of that step is saved once, the job requeues itself once and
# finishes with the digest of an uninterrupted run.
source "$(dirname "$0")/slurm_lib.sh"

expected=$(reference_digest 4 "${FLAGS[@]}")
submit onerank -n 4 --export=ALL,CKPTIO_LOG_ALL_RANKS=1 -- "${FLAGS[@]}"
job=$JOB
wait_committed onerank 20 "$job"
# The ranks: train_toy processes working on this test's checkpoint root (mpirun is not one).
mapfile -t ranks < <(rank_pids onerank)
expect_equal "rank processes" 4 "${#ranks[@]}"
target=${ranks[-1]}
echo "+ kill -USR1 $target   (one of ${ranks[*]})"
kill -USR1 "$target"
wait_ended "$job" 120
out=$WORK/onerank.out
expect_equal "ranks that received SIGUSR1" 1 "$(count_lines "$out" 'SIGUSR1 received on rank')"
expect_no_line "$out" 'batch shell: USR1 received'
# Every rank logs its agreed stop (CKPTIO_LOG_ALL_RANKS=1): four lines, one step.
expect_equal "ranks that agreed to stop" 4 "$(count_lines "$out" 'agreed stop at step')"
expect_equal "distinct stopping steps" 1 \
  "$(sed -n 's/.*agreed stop at step \([0-9]*\) .*/\1/p' "$out" | sort -u | wc -l)"
sed -i '/\[rank [123]\] \[info\] preemption: agreed stop/d' "$out"
check_requeued_once onerank "$job" "$expected" 4
expect_equal "saves of the stopping step" 1 "$(count_lines "$out" "^saved .*global_step$STOP_STEP\\.h5 ")"
