#!/usr/bin/env bash
# Requeue onto a disjoint node set with the node-local level (requeued_with_local_level in
# multilevel_lib.sh): the 2-node job on node1+node2 is preempted by a job of the high partition
# that takes both nodes and requeues onto node3+node4. The local checkpoints of the stopping
# step are still on node1 and node2, as new as the shared root's flush, but no node of the new
# allocation holds any: the restart says so, resumes from the shared root at the stopping step
# and finishes with the digest of an uninterrupted run.
source "$(dirname "$0")/multilevel_lib.sh"

requeued_with_local_level disjoint node1,node2 "node[3-4]"
job=$JOB
stop=$STOP_STEP
out=$WORK/disjoint.out
local_dir=$(local_dir_of disjoint "$job")
# The first run's local level is complete where it was written (node k-1's own container on
# nodek, its partner copy on the other node), but out of the new allocation's reach.
for k in 1 2; do
  own=$local_dir/node$((k - 1))/epoch0-global_step$stop.h5
  partner=$local_dir/partner/node$((2 - k))/epoch0-global_step$stop.h5
  in_node "node$k" test -f "$own" -a -f "$partner" || fail "node$k lacks $own or $partner"
done
expect_line "$out" "load_latest: no complete local checkpoint on the nodes of this allocation: using the shared root"
expect_no_line "$out" "load_latest: restored local checkpoint"
expect_equal "resumed" "resumed from shared checkpoint global_step $stop" "$(grep '^resumed from [a-z]* checkpoint' "$out")"
echo PASS
