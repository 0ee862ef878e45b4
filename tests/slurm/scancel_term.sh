#!/usr/bin/env bash
# `scancel` (SIGTERM) mid-run: the job saves the agreed step and ends without requeueing
# itself; the checkpoint it left resumes (outside Slurm) to the digest of an uninterrupted run.
# mpirun, which gets the SIGTERM too, stops relaying the ranks' output, so the checkpoint
# root, not the log, shows what the ranks did.
source "$(dirname "$0")/slurm_lib.sh"

expected=$(reference_digest 2 "${FLAGS[@]}")
submit term -n 2 -- "${FLAGS[@]}"
job=$JOB
wait_committed term 20 "$job"
echo "+ scancel $job"
scancel "$job"
wait_ended "$job" 60
out=$WORK/term.out
expect_equal "job state" CANCELLED "$(job_field "$job" JobState)"
# The state says CANCELLED at once; the ranks save and exit within KillWait.
wait_until 30 no_ranks_left term
# Nothing of the job outlives it: batch shell, mpirun and ranks are gone within KillWait.
job_processes_gone() { ! pgrep -f -- "--ckpt-dir $WORK/term " >/dev/null; }
wait_until 30 job_processes_gone
# The ranks agreed on a step after 20, saved it and made it `latest`.
stop=$(sed -n 's/^epoch[0-9]*-global_step\([0-9]*\)\.h5$/\1/p' "$WORK/term/latest")
[[ -n $stop ]] && ((stop > 20 && stop < 80 && stop % 20 != 0)) ||
  fail "latest names '$(cat "$WORK/term/latest")', not the checkpoint of the step the ranks stopped at"
echo "  stopped and saved at step $stop"
expect_no_line "$out" 'requeued job'
# A cancelled job stays cancelled: give the scheduler the time a requeue would take.
sleep 13
expect_equal "job state after 13 s" CANCELLED "$(job_field "$job" JobState)"
expect_equal "Restarts" 0 "$(job_field "$job" Restarts)"
expect_equal "runs" 1 "$(grep -Ec '^=== job [0-9]+ run [0-9]+ ' "$out")"
timeout 120 "$MPIEXEC" -n 2 --oversubscribe "$TRAINER" --ckpt-dir "$WORK/term" --resume "${FLAGS[@]}" \
  </dev/null >"$WORK/resumed.log" 2>&1 || fail "resuming the cancelled job's checkpoint failed"
expect_line "$WORK/resumed.log" "^resumed from .*global_step$stop\\.h5 at global_step $stop\$"
expect_equal "final digest after cancel and resume" "$expected" "$(digest_in "$WORK/resumed.log")"
