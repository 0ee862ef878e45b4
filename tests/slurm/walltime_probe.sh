#!/usr/bin/env bash
# A one-minute job without any --signal: only the guard's own walltime probe (squeue %L at
# start, lead time = saves x 2 + --walltime-margin + two steps) can save it. With a 35 s
# margin it stops about 25 s in, saves, requeues itself, and the second run finishes. (The
# template's own --signal=B:USR1@120 is replaced by SIGURG, which nobody listens to.)
source "$(dirname "$0")/slurm_lib.sh"

flags=(--steps 300 --ckpt-every 100 --step-sleep-ms 100 --walltime-margin 35)
expected=$(reference_digest 2 "${flags[@]}")
submit walltime -n 2 --time=1 --signal=B:URG@1 -- "${flags[@]}"
job=$JOB
wait_ended "$job" 150
out=$WORK/walltime.out
expect_line "$out" 'preemption: job [0-9]+ has [0-9]+ s of walltime left; stopping when less than'
expect_line "$out" 'preemption: [0-9.]+ s of walltime left at step [0-9]+, less than the lead time'
expect_line "$out" 'agreed stop at step [0-9]+ \(walltime, seen by step [0-9]+\)$'
expect_no_line "$out" 'batch shell: USR1 received'
check_requeued_once walltime "$job" "$expected" 2
