# Helpers shared by the end-to-end tests (sourced, not run): arguments, running the example
# trainer under mpiexec with a time limit, reading its output, and cleaning up.
#
# Every test script is called as: <script> <train_toy> <mpiexec> <work dir> [<ckptio tool>]
# The work dir is created empty and removed when the script exits; on failure the logs of
# every run are printed first.
set -euo pipefail

if [[ $# -lt 3 || $# -gt 4 ]]; then
  echo "usage: $0 <train_toy executable> <mpiexec> <work dir> [<ckptio tool>]" >&2
  exit 2
fi
TRAINER=$1
MPIEXEC=$2
WORK=$3
TOOL=${4:-}
# A single trainer run never needs longer; a hung run fails the test instead of blocking it.
RUN_LIMIT_S=${RUN_LIMIT_S:-90}

BACKGROUND_PIDS=()

# All processes below pid, deepest first.
descendants() {
  local child
  for child in $(pgrep -P "$1" || true); do
    descendants "$child"
    echo "$child"
  done
}

on_exit() {
  local status=$?
  local pid
  for pid in "${BACKGROUND_PIDS[@]}"; do
    kill -9 $(descendants "$pid") "$pid" 2>/dev/null || true
  done
  if [[ $status -ne 0 ]]; then
    local log
    for log in "$WORK"/*.log; do
      [[ -f $log ]] || continue
      echo "---- $(basename "$log")"
      cat "$log"
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap on_exit EXIT

rm -rf "$WORK"
mkdir -p "$WORK"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# run_trainer <ranks> <log name> <trainer flags...>: runs the trainer to its end, output in
# $WORK/<log name>.log; returns the trainer's exit status.
run_trainer() {
  local ranks=$1
  local log=$WORK/$2.log
  shift 2
  echo "+ mpiexec -n $ranks train_toy $*"
  local start=$SECONDS
  local status=0
  timeout "$RUN_LIMIT_S" "$MPIEXEC" -n "$ranks" --oversubscribe "$TRAINER" "$@" >"$log" 2>&1 || status=$?
  echo "  exit $status after $((SECONDS - start)) s"
  return "$status"
}

# start_trainer <ranks> <log name> <trainer flags...>: like run_trainer, in the background;
# sets STARTED_PID to the launcher's process id.
start_trainer() {
  local ranks=$1
  local log=$WORK/$2.log
  shift 2
  echo "+ mpiexec -n $ranks train_toy $* &"
  timeout "$RUN_LIMIT_S" "$MPIEXEC" -n "$ranks" --oversubscribe "$TRAINER" "$@" >"$log" 2>&1 &
  STARTED_PID=$!
  BACKGROUND_PIDS+=("$STARTED_PID")
}

# wait_until <seconds> <command...>: polls until the command succeeds; fails the test on timeout.
wait_until() {
  local limit=$1
  shift
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || fail "still false after $limit s: $*"
    sleep 0.05
  done
}

# kill_hard <pid>: SIGKILL to the ranks (listed first, as when a node dies), mpiexec and the
# launcher; returns once they have left the process table. A killed process stays there as a
# zombie until its new parent reaps it, and kill(pid, 0) still finds it, so until then a lock
# it held does not look stale yet; a job restarted after a real failure never sees that window.
kill_hard() {
  local pid=$1
  local processes
  processes=$(descendants "$pid")
  echo "+ kill -9 $(echo $processes) $pid"
  kill -9 $processes "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local start=$SECONDS
  wait_until 60 processes_gone $processes
  echo "  killed processes reaped after $((SECONDS - start)) s"
}

# processes_gone <pid...>: none of the processes exists any more, not even as a zombie.
processes_gone() {
  local pid
  for pid in "$@"; do
    [[ ! -e /proc/$pid ]] || return 1
  done
}

# digest_of <log name>: the 16-hex-digit digest of the run's single "final digest:" line.
digest_of() {
  local log=$WORK/$1.log
  local digests
  digests=$(sed -n 's/^final digest: \([0-9a-f]\{16\}\)$/\1/p' "$log")
  [[ $(wc -w <<<"$digests") -eq 1 ]] || fail "$1: expected exactly one 'final digest: <16 hex digits>' line"
  echo "$digests"
}

# expect_line <log name> <extended regex>: the log has a line matching the regex.
expect_line() {
  grep -Eq -- "$2" "$WORK/$1.log" || fail "$1: no line matches '$2'"
}

# expect_no_line <log name> <extended regex>
expect_no_line() {
  ! grep -Eq -- "$2" "$WORK/$1.log" || fail "$1: unexpected line matching '$2'"
}

# expect_equal <what> <expected> <actual>
expect_equal() {
  [[ $2 == "$3" ]] || fail "$1: expected '$2', got '$3'"
  echo "  $1: ${3//$'\n'/ | }"
}
