#!/usr/bin/env bash
# A damaged local checkpoint: after a rank on node2 is SIGKILLed right after the local save
# of step 7, one byte of node2's own container of step 7 is flipped. The restart's
# verification rejects that copy, node2's pieces come from the partner copy on node1, and the
# run resumes from the local checkpoint of step 7 with the digest of an uninterrupted run.
source "$(dirname "$0")/multilevel_lib.sh"

expected=$(reference_digest 4 --steps 12)
submit_steps flipped 2 -N 2 --ntasks-per-node=2 -w node1,node2 -- "${LEVEL_FLAGS[@]}"
job=$JOB
victim=$(local_dir_of flipped "$job")/node1/epoch0-global_step7.h5
kill_rank_after_save flipped node2 7
between_steps flipped 1 flip_middle_byte node2 "$victim"
wait_ended "$job" 120
out=$WORK/flipped.out
check_finished flipped "$job" "$expected"
expect_line "$out" "load_latest: skipping local copy ${victim//./\\.}: "
expect_line "$out" "load_latest: restored local checkpoint global_step 7 from 2 node\\(s\\); partner copies used: node 1 \\(host node2\\) from node 0 \\(host node1\\) "
expect_equal "resumed" "resumed from local checkpoint global_step 7" "$(grep '^resumed from [a-z]* checkpoint' "$out")"
echo PASS
