#!/usr/bin/env bash
# A node killed in the middle of a save: the 2-node job's rank 2 (on node2) is held inside its
# second save (fault injection `stall`, after its writes, before the commit) while node2's
# slurmd and ranks are SIGKILLed. The job fails with an error and no rank is left waiting
# (Slurm ends the job NODE_FAIL once the node is silent for SlurmdTimeout, KillWait later at most);
# `latest` still names the checkpoint of step 20, a new job resumes from it on node2+node3
# (taking over the dead job's lock) and finishes with the digest of an uninterrupted run, and
# its first save (of another step) removes the stale .partial.
source "$(dirname "$0")/multinode_lib.sh"

expected=$(reference_digest 4 --steps 80 --ckpt-every 20)
root=$WORK/killed
submit_nodes killed -N 2 --ntasks-per-node=2 -w node1,node2 --no-requeue \
  --export=ALL,CKPTIO_FAULT_INJECT=save.after_writes@2#2:stall -- "${FLAGS[@]}"
job=$JOB
stalled() { grep -q 'fault injection: stalling at save.after_writes' "$WORK/killed.out"; }
wait_until 90 stalled
mapfile -t partials < <(find "$root" -name '*.partial')
expect_equal "partial files while the save is held" 1 "${#partials[@]}"
echo "  save held on node2: ${partials[0]##*/}; latest: $(cat "$root/latest")"
"$VCLUSTER" kill-node "$CKPTIO_VCLUSTER_DIR" node2
killed_at=$SECONDS
wait_ended "$job" 120
echo "  the job ended $((SECONDS - killed_at)) s after the node was killed"
state=$(job_field "$job" JobState)
[[ $state =~ ^(FAILED|NODE_FAIL)$ ]] || fail "job state $state, expected FAILED or NODE_FAIL"
wait_until 30 no_ranks_left killed
expect_equal "latest" "epoch0-global_step20.h5" "$(cat "$root/latest")"
"$VCLUSTER" revive-node "$CKPTIO_VCLUSTER_DIR" node2
node_idle() { [[ $(sinfo -h -n node2 -o %t) == idle ]]; }
wait_until 60 node_idle

# Saves every 10 steps: its first save (step 30) is not the one the dead job left partial.
ROOT_NAME=killed submit_nodes resumed -N 2 --ntasks-per-node=2 -w node2,node3 -- --steps 80 --ckpt-every 10 --step-sleep-ms 100
resumed=$JOB
wait_ended "$resumed" 120
out=$WORK/resumed.out
expect_equal "resumed job state" COMPLETED "$(job_field "$resumed" JobState)"
expect_line "$out" "taking over the stale lock of $root: Slurm job $job on host node1 has ended \\((FAILED|NODE_FAIL)\\)"
expect_line "$out" '^resumed from .*global_step20\.h5 at global_step 20$'
expect_equal "final digest" "$expected" "$(digest_in "$out")"
# The first commit (step 30) removed the dead job's partial of step 40, before step 40 was saved.
expect_equal "first line about the dead job's partial" "removing stale ${partials[0]}" \
  "$(grep -m 1 -o -e "removing stale ${partials[0]}" -e "saved ${partials[0]%.partial}" "$out")"
expect_equal "partial files left" 0 "$(find "$root" -name '*.partial' | wc -l)"
echo PASS
