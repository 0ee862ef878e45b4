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
preempt_onto_other_nodes "$job" node1 "node[1-2]" "node[2-3]"
expect_equal "batch hosts of the two runs" "node1 node2" "$(batch_hosts "$WORK/preempted.out")"
check_requeued_once preempted "$job" "$expected" 4
