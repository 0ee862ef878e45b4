#!/usr/bin/env bash
# A replaced node: after a rank on node2 is SIGKILLed right after the local save of step 7,
# node2's local folder is wiped (new hardware, empty storage). The job step started again on
# the same nodes restores node2's pieces from the partner copy on node1 (sent over MPI), so
# it resumes from the local checkpoint of step 7 and finishes with the digest of an
# uninterrupted run.
source "$(dirname "$0")/multilevel_lib.sh"

expected=$(reference_digest 4 --steps 12)
submit_steps replaced 2 -N 2 --ntasks-per-node=2 -w node1,node2 -- "${LEVEL_FLAGS[@]}"
job=$JOB
local_dir=$(local_dir_of replaced "$job")
kill_rank_after_save replaced node2 7
between_steps replaced 1 wipe_local node2 "$local_dir"
wait_ended "$job" 120
out=$WORK/replaced.out
check_finished replaced "$job" "$expected"
expect_line "$out" "load_latest: restored local checkpoint global_step 7 from 2 node\\(s\\); partner copies used: node 1 \\(host node2\\) from node 0 \\(host node1\\) "
expect_equal "resumed" "resumed from local checkpoint global_step 7" "$(grep '^resumed from [a-z]* checkpoint' "$out")"
# node2 has its container back, and saved its later steps beside it.
in_node node2 test -f "$local_dir/node1/epoch0-global_step12.h5" || fail "node2 has no local checkpoint of step 12"
echo PASS
