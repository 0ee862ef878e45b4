#!/usr/bin/env bash
# The example trainer as a 2-node job (2 ranks per node, ranks started by mpirun) in
# the low partition, preempted by a job of the high partition that takes node1: it saves,
# requeues itself once, resumes on another node set (node2+node3) and finishes with the digest
# of an uninterrupted run on one host.
source "$(dirname "$0")/multinode_lib.sh"

expected=$(reference_digest 4 --steps 80 --ckpt-every 20)
submit_nodes preempted -p low -N 2 --ntasks-per-node=2 --exclusive -- "${FLAGS[@]}"
job=$JOB
wait_committed preempted 20 "$job"
expect_equal "first run's nodes" "node[1-2]" "$(job_nodes "$job")"
echo "+ sbatch -p high -N 1 -w node1 --exclusive --wrap 'sleep 120'"
high=$(sbatch --parsable -p high -N 1 -w node1 --exclusive --job-name=ckptio-high --output="$WORK/high.log" --wrap 'sleep 120')
JOBS+=("$high")
wait_ended_kicking "$job" 150
# Only the low job needed the high one to wait this long.
scancel "$high"
expect_equal "second run's nodes" "node[2-3]" "$(job_nodes "$job")"
expect_equal "batch hosts of the two runs" "node1 node2" "$(batch_hosts "$WORK/preempted.out")"
check_requeued_once preempted "$job" "$expected" 4
