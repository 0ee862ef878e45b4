#!/usr/bin/env bash
# Two nodes lost with one partner copy: a 3-node job (a ring node1 -> node2 -> node3 -> node1)
# whose rank on node2 is SIGKILLed right after the local save of step 7; node2's and node3's
# local folders are wiped. Node index 1's pieces (own copy on node2, partner copy on node3) are
# on no node: the local level is incomplete, the restart says so and falls back to the newest
# flush (step 5), and finishes with the digest of an uninterrupted run.
source "$(dirname "$0")/multilevel_lib.sh"

expected=$(reference_digest 3 --steps 12)
submit_steps lost 2 -N 3 --ntasks-per-node=1 -w node1,node2,node3 -- "${LEVEL_FLAGS[@]}"
job=$JOB
local_dir=$(local_dir_of lost "$job")
kill_rank_after_save lost node2 7
wipe_two() { wipe_local node2 "$local_dir" && wipe_local node3 "$local_dir"; }
between_steps lost 1 wipe_two
wait_ended "$job" 120
out=$WORK/lost.out
check_finished lost "$job" "$expected"
for step in 7 6; do
  expect_line "$out" "load_latest: local checkpoint global_step $step is incomplete: the pieces of node 1 \\(host node2\\) are on no node of this allocation \\(own copy and partner copies lost\\)"
done
expect_line "$out" "load_latest: no complete local checkpoint on the nodes of this allocation: using the shared root"
expect_equal "resumed" "resumed from shared checkpoint global_step 5" "$(grep '^resumed from [a-z]* checkpoint' "$out")"
echo PASS
