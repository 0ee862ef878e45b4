#!/usr/bin/env bash
# A 2-node job (2 ranks per node, mpirun) whose one-minute limit would end it before it
# finishes, submitted with --signal=B:USR1@10: before the limit it saves (on the signal, or
# earlier on the guard's own walltime probe), requeues itself, and the second run finishes
# with the digest of an uninterrupted run.
source "$(dirname "$0")/multinode_lib.sh"

# About 55 s of steps: more than the first minute leaves once the lead time is kept, less
# than what the second run has left after the first one's share.
flags=(--steps 550 --ckpt-every 100 --step-sleep-ms 100 --walltime-margin 10)
expected=$(reference_digest 4 --steps 550 --ckpt-every 100)
submit_nodes timelimit -N 2 --ntasks-per-node=2 --time=1 --signal=B:USR1@10 -- "${flags[@]}"
job=$JOB
wait_ended_kicking "$job" 200
check_requeued_once timelimit "$job" "$expected" 4
out=$WORK/timelimit.out
expect_line "$out" 'agreed stop at step [0-9]+ \((requeue signal|walltime),'
expect_no_line "$out" 'DUE TO TIME LIMIT'
sed -n 's/.*preemption: \(job [0-9]* has .*\)/  \1/p; s/.*agreed stop/  agreed stop/p' "$out"
