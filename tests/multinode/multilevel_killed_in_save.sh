#!/usr/bin/env bash
# Kill -9 in every phase of a local save: a 2-node job (2 ranks per node, saving locally every
# step, no flush) runs as 7 job steps in one allocation. Step k (1..6) resumes from the local
# checkpoint of step k-1, saves step k, and ranks are SIGKILLed (fault injection) inside the
# save of step k+1: in the node container's plan, write, close and commit, after the partner
# copies were exchanged (before the agreement), after the agreement (before any commit record).
# Every restart resumes from the local checkpoint of the step before the killed save, never
# from a half-written one; the last step finishes with the digest of an uninterrupted run.
# The points count the job's ranks (rank 1 is node1's second, rank 2 is node2's first); a node's
# container phases are local.node.<phase> (docs/RELIABILITY.md).
source "$(dirname "$0")/multilevel_lib.sh"

faults=(local.node.plan@1#2:kill local.node.write@0#2:kill local.node.after_writes@1#2:kill local.node.commit@1#2:kill
  local.partner@2#2:kill local.commit#2:kill)
expected=$(reference_digest 4 --steps 12)
export LEVEL_STEP_FAULTS="${faults[*]} -"
submit_steps killed 7 -N 2 --ntasks-per-node=2 -w node1,node2 -- --steps 12 --ckpt-every 1 --flush-every 1000 \
  --no-preemption-guard
job=$JOB
for ((k = 1; k <= ${#faults[@]}; k++)); do between_steps killed "$k" true; done
wait_ended "$job" 150
out=$WORK/killed.out
check_finished killed "$job" "$expected"
for ((k = 1; k <= ${#faults[@]}; k++)); do
  point=${faults[k - 1]%%[@#]*}
  expect_line "$out" "^=== job [0-9]+ step $k: mpirun exited with [1-9]"
  expect_line "$out" "fault injection: killing this process at $point\$"
done
mapfile -t resumed < <(grep '^resumed from [a-z]* checkpoint' "$out")
expect_equal "restarts" 6 "${#resumed[@]}"
for ((k = 1; k <= 6; k++)); do
  expect_equal "step $((k + 1)) resumed" "resumed from local checkpoint global_step $k" "${resumed[k - 1]}"
done
echo PASS
