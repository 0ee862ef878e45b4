#!/usr/bin/env bash
# Crash safety with real processes: a save is killed (SIGKILL of one rank, through the
# fault-injection points) at each phase; then a fresh job must load `latest` bit-exact,
# and the next save must succeed.
#   crash_safety.sh MPIEXEC CRASH_HELPER WORKDIR
set -uo pipefail
mpiexec=$1 helper=$2 work=$3
ranks=2
run() { timeout 120 "$mpiexec" -n "$ranks" --oversubscribe "$helper" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
# All processes below pid, deepest first.
descendants() {
  local child
  for child in $(pgrep -P "$1"); do
    descendants "$child"
    echo "$child"
  done
}
# mpiexec returns as soon as it has signalled the surviving ranks; wait until they are gone
# (as they would be before a requeued job starts) so that their lock is provably stale.
wait_gone() {
  for _ in $(seq 100); do pgrep -f "$helper save $1 " >/dev/null || return 0; sleep 0.1; done
  fail "ranks of the killed job did not exit"
}

# phase : rank to kill : step `latest` must name afterwards (10 = the previous checkpoint;
#   10/20: either, when the commit on rank 0 races with the kill of another rank)
#   [: 1 = save step 5 before 10 too, so that the killed save (keep_last = 2) has one to prune]
cases="save.plan:1:10 save.plan:0:10 save.write:1:10 save.write:0:10 save.after_writes:0:10 save.after_writes:1:10
  save.commit:0:10 save.commit:1:10/20 save.latest:0:10 save.prune:0:20 save.prune:0:20:1"
# check_case <case>: one kill and what must hold after it, in a root of its own; exits (fail)
# at the first thing that is wrong.
check_case() {
  local phase victim expect older
  IFS=: read -r phase victim expect older <<<"$1"
  local root="$work/crash-$phase-$victim${older:+-older}"
  rm -rf "$root"
  if [ -n "$older" ]; then run save "$root" 5 >/dev/null 2>&1 || fail "$phase: the save of step 5 failed"; fi
  run save "$root" 10 >/dev/null 2>&1 || fail "$phase: the first save failed"
  CKPTIO_FAULT_INJECT="$phase@$victim:kill" run save "$root" 20 >/dev/null 2>&1
  local rc=$?
  wait_gone "$root"
  [ $rc -ne 0 ] || fail "$phase: the save that should have been killed succeeded"
  [ $rc -ne 124 ] || fail "$phase: the killed job hung"
  local got
  got=$(sed -n 's/^epoch0-global_step\([0-9]*\)\.h5$/\1/p' "$root/latest")
  [[ "/$expect/" == *"/$got/"* ]] || fail "$phase: latest is '$(cat "$root/latest")', expected step $expect"
  run verify "$root" "$got" || fail "$phase: latest did not load bit-exact"
  run save "$root" 30 || fail "$phase: the next save failed"
  ls "$root"/*.partial >/dev/null 2>&1 && fail "$phase: a stale .partial survived the next save"
  run verify "$root" 30 || fail "$phase: the save after the crash did not load"
  echo "ok: killed rank $victim at $phase${older:+ (with a checkpoint to prune)}; latest stayed loadable (step $got); next save fine"
  rm -rf "$root"
}

# Two cases at a time: a job here mostly waits (for Open MPI to start and stop, for fsync), not
# on the processors. Each case's output is printed in the order of the cases; the first that
# fails stops the others.
read -r -d '' -a case_list <<<"$cases"
cases_at_once=2
case_pids=()
finish_case() {
  local n=$1 status=0 later
  wait "${case_pids[n]}" || status=$?
  cat "$work/crash-case$n.out"
  rm -f "$work/crash-case$n.out"
  if [ $status -ne 0 ]; then
    for later in "${case_pids[@]:n+1}"; do
      # shellcheck disable=SC2046  # one word per process
      kill -9 $(descendants "$later") "$later" 2>/dev/null
    done
    rm -f "$work"/crash-case*.out
    exit 1
  fi
}
for n in "${!case_list[@]}"; do
  ((n < cases_at_once)) || finish_case $((n - cases_at_once))
  check_case "${case_list[n]}" >"$work/crash-case$n.out" 2>&1 &
  case_pids[n]=$!
done
for ((n = ${#case_list[@]} - cases_at_once; n < ${#case_list[@]}; n++)); do
  ((n < 0)) || finish_case "$n"
done

# A job killed while loading (rank 1 at its tensor reads) harms nothing: the next job loads.
root="$work/crash-load.read"
rm -rf "$root"
run save "$root" 10 >/dev/null 2>&1 || fail "load.read: the save failed"
CKPTIO_FAULT_INJECT="load.read@1:kill" run verify "$root" 10 >/dev/null 2>&1
rc=$?
[ $rc -ne 0 ] || fail "load.read: the load that should have been killed succeeded"
[ $rc -ne 124 ] || fail "load.read: the killed job hung"
for _ in $(seq 100); do pgrep -f "$helper verify $root " >/dev/null || break; sleep 0.1; done
run verify "$root" 10 || fail "load.read: the checkpoint did not load after a killed load"
run save "$root" 20 || fail "load.read: the next save failed"
echo "ok: killed rank 1 at load.read; the next job loaded and saved"
rm -rf "$root"
echo "crash safety: all phases passed"
