#!/bin/bash
# The batch script of the multilevel tests: runs the trainer as <runs> job steps, one after
# another, in the same allocation (each an mpirun, whose daemons are started through srun),
# every step with --resume. Between two steps it lets the test act on the nodes (kill, wipe,
# damage local files): it creates MARKERS/step<k>.ended and waits for MARKERS/step<k>.go.
#
# With LEVEL_STEP_FAULTS set (space-separated, one word per step, `-` for none), step k runs
# with CKPTIO_FAULT_INJECT set to its k-th word.
#
#   sbatch multilevel_steps.sh <runs> <markers dir> <trainer> <trainer flags...>
runs=$1 markers=$2
shift 2
read -r -a faults <<<"${LEVEL_STEP_FAULTS:-}"
for ((run = 1; run <= runs; run++)); do
  fault=${faults[run - 1]:--}
  [[ $fault == - ]] && fault=""
  echo "=== job ${SLURM_JOB_ID} step ${run} on ${SLURM_JOB_NODELIST} at $(date -u +%FT%TZ)${fault:+ with CKPTIO_FAULT_INJECT=$fault}"
  CKPTIO_FAULT_INJECT=$fault mpirun -n "${SLURM_NTASKS}" "$@" --resume
  echo "=== job ${SLURM_JOB_ID} step ${run}: mpirun exited with $?"
  ((run == runs)) && break
  touch "$markers/step$run.ended"
  for ((wait = 0; wait < 900; wait++)); do
    [[ -f $markers/step$run.go ]] && continue 2
    sleep 0.1
  done
  echo "=== job ${SLURM_JOB_ID}: no go for step $((run + 1)) after 90 s"
  exit 1
done
