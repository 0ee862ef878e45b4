#!/usr/bin/env bash
# A 4-rank job in the low partition is preempted by a job in the high partition (PreemptMode
# REQUEUE, GraceTime 20 s, the user's --signal sent at preemption): it saves, requeues itself
# once, restarts after the high job with SLURM_RESTART_COUNT=1 and finishes with the digest
# of an uninterrupted run. The trainer is the first argument (slurm_lib.sh): train_toy, or the
# PyTorch trainer for slurm.torch_preempted_by_high.
source "$(dirname "$0")/slurm_lib.sh"

expected=$(reference_digest 4 "${FLAGS[@]}")
submit preempted -p low -n 4 -- "${FLAGS[@]}"
job=$JOB
wait_committed preempted 20 "$job"
echo "+ sbatch -p high -n 4 --wrap 'sleep 3'"
high=$(sbatch --parsable -p high -n 4 --job-name=ckptio-high --output="$WORK/high.log" --wrap 'sleep 3')
JOBS+=("$high")
wait_ended "$job" 200
wait_ended "$high" 30
expect_equal "high job state" COMPLETED "$(job_field "$high" JobState)"
check_requeued_once preempted "$job" "$expected" 4
