#!/usr/bin/env bash
# Requeue onto another node set with the node-local level: a 2-node job on node1+node2 saves
# locally every step and flushes only every 1000th save; a job of the high partition takes
# node1. The guard's save before the requeue is a flush (the shared root then holds exactly
# that step), and the job requeues onto node2+node3. node2, now the job's node 0, holds both
# nodes' containers of that step (its own, saved as node 1, and its partner copy of node 0):
# it reads the one of node 0 where it lies and sends node 1's to node3, so the run resumes
# from the local level at the stopping step and finishes with the digest of an uninterrupted
# run. (Where the new node set holds no copy, the shared root is used: multilevel_two_nodes_lost.)
source "$(dirname "$0")/multilevel_lib.sh"

expected=$(reference_digest 4 --steps 80)
LEVEL_NAMES+=(requeued)
submit_nodes requeued -p low -N 2 --ntasks-per-node=2 --exclusive -- --steps 80 --ckpt-every 1 --flush-every 1000 \
  --step-sleep-ms 100 --walltime-margin 10 --local-dir "$(local_dir_of requeued %j)"
job=$JOB
out=$WORK/requeued.out
saved_local() { grep -qs "^saved $(local_dir_of requeued "$job")/node0/epoch0-global_step10\\.h5 " "$out"; }
wait_until 90 saved_local
expect_equal "first run's nodes" "node[1-2]" "$(job_nodes "$job")"
echo "+ sbatch -p high -N 1 -w node1 --exclusive --wrap 'sleep 120'"
high=$(sbatch --parsable -p high -N 1 -w node1 --exclusive --job-name=ckptio-high --output="$WORK/high.log" --wrap 'sleep 120')
JOBS+=("$high")
wait_ended_kicking "$job" 150
scancel "$high"
expect_equal "second run's nodes" "node[2-3]" "$(job_nodes "$job")"
show_restores requeued
check_requeued_once requeued "$job" "$expected" 4
stop=$STOP_STEP
# The only checkpoint of the shared root is the guard's flush of the stopping step.
expect_equal "shared root" "epoch0-global_step$stop.h5" "$(cd "$WORK/requeued" && ls -- *.h5)"
expect_line "$out" "load_latest: restored local checkpoint global_step $stop from 2 node\\(s\\); partner copies used: node 1 \\(host node3\\) from node 0 \\(host node2\\) \\(the shared root's newest is global_step $stop\\)"
expect_equal "resumed" "resumed from local checkpoint global_step $stop" "$(grep '^resumed from [a-z]* checkpoint' "$out")"
echo PASS
