#!/usr/bin/env bash
# Requeue onto an overlapping node set with the node-local level (requeued_with_local_level in
# multilevel_lib.sh): the 2-node job on node1+node2 is preempted by a job of the high partition
# that takes node1 and requeues onto node2+node3. node2, now the job's node 0, holds both nodes'
# containers of the stopping step (its own, saved as node 1, and its partner copy of node 0): it
# reads the one of node 0 where it lies and sends node 1's to node3, so the run resumes from the
# local level at the stopping step and finishes with the digest of an uninterrupted run.
# (A requeue onto nodes that hold no copy: multilevel_requeued_disjoint.)
source "$(dirname "$0")/multilevel_lib.sh"

requeued_with_local_level overlapping node1 "node[2-3]"
stop=$STOP_STEP
out=$WORK/overlapping.out
expect_line "$out" "load_latest: restored local checkpoint global_step $stop from 2 node\\(s\\); partner copies used: node 1 \\(host node3\\) from node 0 \\(host node2\\) \\(the shared root's newest is global_step $stop\\)"
expect_equal "resumed" "resumed from local checkpoint global_step $stop" "$(grep '^resumed from [a-z]* checkpoint' "$out")"
echo PASS
