#!/usr/bin/env bash
# `scancel -b -s USR1` mid-run: the job saves, requeues itself, restarts with
# SLURM_RESTART_COUNT=1, resumes from that checkpoint and finishes with the digest of an
# uninterrupted run.
source "$(dirname "$0")/slurm_lib.sh"

expected=$(reference_digest 2 "${FLAGS[@]}")
submit usr1 -n 2 -- "${FLAGS[@]}"
job=$JOB
wait_committed usr1 20 "$job"
echo "+ scancel -b -s USR1 $job"
scancel -b -s USR1 "$job"
wait_ended "$job" 120
check_requeued_once usr1 "$job" "$expected" 2
expect_line "$WORK/usr1.out" '^=== batch shell: USR1 received, forwarding it to mpirun'
