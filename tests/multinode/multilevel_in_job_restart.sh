#!/usr/bin/env bash
# In-job restart from the node-local level: a 2-node job (2 ranks per node) saves locally
# every step and flushes every 5th save to the shared root; a rank on node2 is SIGKILLed
# right after the save of step 7. The job step is started again in the same allocation and
# resumes from the local checkpoint of step 7 (each node its own copy), not from the flush of
# step 5, and finishes with the digest of an uninterrupted run.
source "$(dirname "$0")/multilevel_lib.sh"

expected=$(reference_digest 4 --steps 12)
submit_steps injob 2 -N 2 --ntasks-per-node=2 -w node1,node2 -- "${LEVEL_FLAGS[@]}"
job=$JOB
kill_rank_after_save injob node2 7
between_steps injob 1 true
wait_ended "$job" 120
out=$WORK/injob.out
check_finished injob "$job" "$expected"
expect_line "$out" "^saved $WORK/injob/epoch0-global_step5\\.h5 at global_step 5 "
expect_line "$out" "^saved $(local_dir_of injob "$job")/node0/epoch0-global_step7\\.h5 at global_step 7 "
expect_line "$out" "load_latest: restored local checkpoint global_step 7 from 2 node\\(s\\), each its own copy \\(the shared root's newest is global_step 5\\)"
expect_equal "resumed" "resumed from local checkpoint global_step 7" "$(grep '^resumed from [a-z]* checkpoint' "$out")"
echo PASS
