#!/usr/bin/env bash
# A 2-node job (2 ranks per node, mpirun) whose one-minute limit would end it before it
# finishes, submitted with --signal=B:USR1@10: before the limit it saves (on the signal, or
# earlier on the guard's own walltime probe) and requeues itself, as often as needed, and the
# last run finishes with the digest of an uninterrupted run.
source "$(dirname "$0")/multinode_lib.sh"

# About 55 s of steps: more than the first minute leaves once the lead time is kept, less
# than what the second run has left after the first one's share.
flags=(--steps 550 --ckpt-every 100 --step-sleep-ms 100 --walltime-margin 10)
expected=$(reference_digest 4 --steps 550 --ckpt-every 100)
submit_nodes timelimit -N 2 --ntasks-per-node=2 --time=1 --signal=B:USR1@10 -- "${flags[@]}"
job=$JOB
wait_ended_kicking "$job" 300
# Slurm sends the signal up to a minute before the end (its controller looks every 30 s), so
# with a one-minute limit a run may be stopped after a few seconds, and the job may take more
# than two runs. Whatever their number: each run but the last stopped on the signal or the
# walltime probe, saved, requeued itself once, and never reached the limit.
out=$WORK/timelimit.out
expect_equal "job state" COMPLETED "$(job_field "$job" JobState)"
restarts=$(job_field "$job" Restarts)
((restarts >= 1)) || fail "the job was never requeued (Restarts=$restarts)"
echo "  Restarts: $restarts"
expect_equal "runs" $((restarts + 1)) "$(count_lines "$out" '^=== job [0-9]+ run [0-9]+ ')"
expect_equal "agreed stops on the signal or the walltime" "$restarts" \
  "$(count_lines "$out" 'agreed stop at step [0-9]+ \((requeue signal|walltime),')"
# Rank 0's line before scontrol: the confirmation after it may be lost (the requeue ends the
# job's processes); Restarts counts the requeues themselves.
expect_equal "requeues" "$restarts" \
  "$(count_lines "$out" "\\[rank 0\\] \\[info\\] preemption: stopping at step [0-9]+ \\(.*; requeueing job $job; exit status 75")"
expect_equal "resumes" "$restarts" "$(count_lines "$out" '^resumed from .*global_step[0-9]+\.h5 at global_step [0-9]+$')"
expect_no_line "$out" 'DUE TO TIME LIMIT'
expect_equal "final digest" "$expected" "$(digest_in "$out")"
sed -n 's/.*preemption: \(job [0-9]* has .*\)/  \1/p; s/.*agreed stop/  agreed stop/p' "$out"
