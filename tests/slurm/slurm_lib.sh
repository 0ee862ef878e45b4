# shellcheck shell=bash disable=SC2034  # FLAGS and STOP_STEP are read by the test scripts
# Helpers for the Slurm end-to-end tests (sourced): the example trainer submitted with
# slurm/train_mpirun.sbatch to the local cluster that the `slurm.cluster_start` fixture
# started (SLURM_CONF points at it), signalled, preempted and requeued.
#
# Every test script is called as: <script> <train_toy> <mpiexec> <slurm dir of the repo> <work dir>
set -euo pipefail

if [[ $# -ne 4 ]]; then
  echo "usage: $0 <train_toy executable> <mpiexec> <repository slurm/ folder> <work dir>" >&2
  exit 2
fi
TRAINER=$1
MPIEXEC=$2
SLURM_DIR=$3
WORK=$4
[[ -n ${SLURM_CONF:-} && -f $SLURM_CONF ]] || {
  echo "SLURM_CONF does not name a slurm.conf: the slurm.cluster_start fixture must run first" >&2
  exit 1
}
export SLURM_CONF
# The trainer's flags of every test: 100 ms steps; a checkpoint every 20 steps.
FLAGS=(--steps 80 --ckpt-every 20 --step-sleep-ms 100 --walltime-margin 10)
JOBS=()

on_exit() {
  local status=$?
  local job
  for job in "${JOBS[@]}"; do scancel "$job" 2>/dev/null || true; done
  if [[ $status -ne 0 ]]; then
    local log
    for log in "$WORK"/*.log "$WORK"/*.out; do
      [[ -f $log ]] || continue
      echo "---- $(basename "$log")"
      cat "$log"
    done
    for job in "${JOBS[@]}"; do scontrol show job "$job" 2>/dev/null || true; done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap on_exit EXIT

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# reference_digest <ranks> <flags...>: the final digest of an uninterrupted run, without Slurm.
reference_digest() {
  local ranks=$1
  shift
  local log=$WORK/reference.log
  timeout 120 "$MPIEXEC" -n "$ranks" --oversubscribe "$TRAINER" --ckpt-dir "$WORK/reference" --no-preemption-guard \
    "$@" </dev/null >"$log" 2>&1 || fail "the uninterrupted reference run failed"
  digest_in "$log"
}

# digest_in <file>: the one "final digest: <hex>" of a log.
digest_in() {
  local digests
  digests=$(sed -n 's/^final digest: \([0-9a-f]\{16\}\)$/\1/p' "$1")
  [[ $(wc -w <<<"$digests") -eq 1 ]] || fail "$(basename "$1"): expected exactly one 'final digest:' line, found: $digests"
  echo "$digests"
}

# The batch script that submit runs, with its arguments before the trainer's: the mpirun
# template, unless a caller declares its own (local) BATCH_SCRIPT around the call.
BATCH_SCRIPT=("$SLURM_DIR/train_mpirun.sbatch")

# submit <name> <sbatch options...> -- <trainer flags...>: submits the trainer with
# BATCH_SCRIPT, output in $WORK/<name>.out, checkpoint root $WORK/<name> (or $WORK/$ROOT_NAME
# when ROOT_NAME is set); sets JOB.
submit() {
  local name=$1
  shift
  local sbatch_args=()
  while [[ $1 != -- ]]; do
    sbatch_args+=("$1")
    shift
  done
  shift
  local script_words=("$(basename "${BATCH_SCRIPT[0]}")" "${BATCH_SCRIPT[@]:1}")
  echo "+ sbatch ${sbatch_args[*]} ${script_words[*]} train_toy $*"
  JOB=$(sbatch --parsable --job-name="ckptio-$name" --output="$WORK/$name.out" "${sbatch_args[@]}" \
    "${BATCH_SCRIPT[@]}" "$TRAINER" --ckpt-dir "$WORK/${ROOT_NAME:-$name}" "$@")
  JOB=${JOB%%;*}
  JOBS+=("$JOB")
  echo "  job $JOB"
}

# job_field <job> <field>: a field of `scontrol show job` (JobState, Restarts, ...).
job_field() {
  scontrol show job "$1" -o 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# wait_until <seconds> <command...>: polls until the command succeeds; fails on timeout.
wait_until() {
  local limit=$1
  shift
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || fail "still false after $limit s: $*"
    sleep 0.2
  done
}

committed() { grep -qs "global_step$2\.h5" "$WORK/$1/latest"; }
job_in_state() { [[ $(job_field "$1" JobState) == "$2" ]]; }
job_ended() { [[ $(job_field "$1" JobState) =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)$ ]]; }

# wait_committed <name> <step> <job>: the run's checkpoint of <step> is `latest`.
wait_committed() {
  local start=$SECONDS
  wait_until 90 committed "$1" "$2"
  echo "  $1: checkpoint of step $2 committed after $((SECONDS - start)) s of waiting"
}

# wait_ended <job> <seconds>: the job reached a final state; prints it.
wait_ended() {
  local start=$SECONDS
  wait_until "$2" job_ended "$1"
  echo "  job $1 ended $(job_field "$1" JobState) after $((SECONDS - start)) s, Restarts=$(job_field "$1" Restarts)"
}

# rank_pids <name>: the pids of the trainer's ranks working in $WORK/<name> (not mpirun's).
rank_pids() {
  local pid
  for pid in $(pgrep -x train_toy || true); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--ckpt-dir $WORK/$1 "; then echo "$pid"; fi
  done
}
no_ranks_left() { [[ -z $(rank_pids "$1") ]]; }

count_lines() { grep -Ec -- "$2" "$1" || true; }

expect_line() { grep -Eq -- "$2" "$1" || fail "$(basename "$1"): no line matches '$2'"; }
expect_no_line() { ! grep -Eq -- "$2" "$1" || fail "$(basename "$1"): unexpected line matching '$2'"; }

expect_equal() {
  [[ $2 == "$3" ]] || fail "$1: expected '$2', got '$3'"
  echo "  $1: $3"
}

# check_requeued_once <name> <job> <reference digest> <ranks>: the job was stopped once at an
# agreed step G, one step after the signal was seen, saved G, requeued itself, ran again with
# SLURM_RESTART_COUNT=1 from G, finished with the reference digest and ended COMPLETED.
check_requeued_once() {
  local name=$1 job=$2 expected=$3
  local out=$WORK/$name.out
  expect_equal "job state" COMPLETED "$(job_field "$job" JobState)"
  expect_equal "Restarts" 1 "$(job_field "$job" Restarts)"
  expect_equal "runs" 2 "$(count_lines "$out" '^=== job [0-9]+ run [0-9]+ ')"
  expect_line "$out" '^=== job [0-9]+ run 2 \(SLURM_RESTART_COUNT=1\)'
  expect_line "$out" 'preemption: Slurm job [0-9]+, SLURM_RESTART_COUNT=1;'
  expect_equal "agreed stops" 1 "$(count_lines "$out" 'agreed stop at step')"
  local stop seen
  stop=$(sed -n 's/.*agreed stop at step \([0-9]*\) .*/\1/p' "$out")
  seen=$(sed -n 's/.*agreed stop at step [0-9]* (.*, seen by step \([0-9]*\))$/\1/p' "$out")
  # No completed step is lost beyond the one-step agreement delay.
  expect_equal "agreed one step after the signal was seen" "$((seen + 1))" "$stop"
  expect_line "$out" "^saved .*global_step$stop\\.h5 at global_step $stop "
  # Rank 0 says it requeues before it calls scontrol (Restarts=1 above proves the requeue); the
  # confirmation after scontrol may be lost: the requeue itself ends the job's processes.
  expect_line "$out" "\\[rank 0\\] \\[info\\] preemption: stopping at step $stop \\(.*; requeueing job $job; exit status 75"
  expect_line "$out" "^resumed from .*global_step$stop\\.h5 at global_step $stop\$"
  expect_equal "final digest" "$expected" "$(digest_in "$out")"
  STOP_STEP=$stop
}
