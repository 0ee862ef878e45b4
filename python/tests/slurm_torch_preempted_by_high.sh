#!/usr/bin/env bash
# The PyTorch trainer as a 4-rank job in the low partition, preempted by a job in the high
# partition (as tests/slurm/preempted_by_high.sh does with train_toy): the ranks agree on a
# step, save it through ckptio.torch.save, the job requeues itself once, resumes with
# SLURM_RESTART_COUNT=1 and ends with the digest of an uninterrupted run.
source "$(dirname "$0")/../../tests/slurm/slurm_lib.sh"

FLAGS=(--steps 60 --ckpt-every 20 --step-sleep-ms 150 --walltime-margin 10 --hidden 32)
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
