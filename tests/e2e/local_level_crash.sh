#!/usr/bin/env bash
# Crash safety of the node-local level (docs/MULTILEVEL.md) with real processes: train_toy on
# 4 ranks as 2 simulated nodes of 2 ranks (CKPTIO_TEST_RANKS_PER_NODE), saving every step
# locally and every 3rd to the shared root, is SIGKILLed in one rank (through the fault
# points of the build's fault injection) in every phase of a local save and of its partner
# copy. The rerun must resume from the previous checkpoint of either level, never from the
# half-written one, and end with the digest of an uninterrupted run.
source "$(dirname "$0")/e2e_lib.sh"

export CKPTIO_TEST_RANKS_PER_NODE=2
RANKS=4
# Steps 3 and 6 are flushes to the shared root; every step is a local save.
flags=(--steps 8 --ckpt-every 1 --flush-every 3 --hidden 37)

run_trainer "$RANKS" uninterrupted --ckpt-dir "$WORK/uninterrupted/shared" --local-dir "$WORK/uninterrupted/local" \
  "${flags[@]}" || fail "the uninterrupted run failed"
expected=$(digest_of uninterrupted)

# <point>@<rank>#<n> (the n-th time that rank reaches the point: the save of step n) and the
# global_step the rerun must resume from (0: none, a fresh start); `async`: the runs save with
# --async-save, so the local save of step n runs on the background engine while step n+1 trains. Ranks 0 and 2 lead nodes 0
# and 1 (they hold the partner copies and write the records); 1 and 3 do not. Where the killed
# rank had already written records, or the other node's leader may have written its records
# before the launcher stopped it, the new step is complete too and either is right ("4|5").
cases=(
  "local.node.write@1#1 0"             # the very first save: nothing to resume from
  "local.node.plan@1#5 4"
  "local.node.create@3#5 4"
  "local.node.write@1#5 4"
  "local.node.metadata@2#5 4"
  "local.node.after_writes@3#5 4"
  "local.node.commit@0#5 4"            # every rank ready, the container not renamed yet
  "local.node.latest@2#5 4"            # node 1's container in place, no record anywhere
  "local.partner.send@0#5 4"
  "local.partner.chunk@0#5 4"          # node 0 mid-copy: its first chunk sent and node 1's received
  "local.partner.chunk@2#5 4"          # the same on node 1
  "local.partner.receive@2#5 4"        # node 0's copy written on node 1, not renamed
  "local.partner@3#5 4"                # every copy done, not yet agreed
  "local.commit#5 4"                   # agreed, both leaders killed before any record
  "local.commit@2#5 4|5"
  "local.records@0#5 4|5"              # node 0's own record written, not node 1's copy of it
  "local.prune@2#5 4|5"
  "local.node.write@3#6 5"             # the local save of a flush step
  "save.write@1#2 6"                   # the flush of step 6, after its local save committed
  "local.node.write@1#5 4 async"
  "local.partner.chunk@2#5 4 async"
  "local.commit@2#5 4|5 async"
)

# check_case <index> <case>: one kill and the rerun after it, in a folder and logs of its own;
# exits (fail) at the first thing that is wrong.
check_case() {
  local n=$1 fault expect mode
  read -r fault expect mode <<<"$2"
  local point=${fault%%[@#]*}
  local dir=$WORK/${fault//[@#]/-}${mode:+-$mode}
  local killed=killed$n resumed=resumed$n
  local mode_flags=()
  [[ $mode == async ]] && mode_flags=(--async-save)
  echo "== kill at $fault${mode:+ ($mode)}"
  local status=0
  CKPTIO_FAULT_INJECT="$fault:kill" run_trainer "$RANKS" "$killed" --ckpt-dir "$dir/shared" --local-dir "$dir/local" \
    "${flags[@]}" "${mode_flags[@]}" || status=$?
  [[ $status -ne 0 ]] || fail "$fault: the run that should have been killed ended normally"
  [[ $status -ne 124 ]] || fail "$fault: the killed run hung"
  expect_line "$killed" "fault injection: killing this process at $point\$"
  expect_no_line "$killed" '^final digest:'

  run_trainer "$RANKS" "$resumed" --ckpt-dir "$dir/shared" --local-dir "$dir/local" "${flags[@]}" "${mode_flags[@]}" \
    --resume || fail "$fault: the rerun failed"
  if [[ $expect == 0 ]]; then
    expect_line "$resumed" '^no checkpoint in .*: starting fresh$'
  else
    local got
    got=$(sed -n 's/^resumed from \(local\|shared\) checkpoint global_step \([0-9]*\)$/\1 \2/p' "$WORK/$resumed.log")
    [[ -n $got ]] || fail "$fault: the rerun printed no 'resumed from <level> checkpoint global_step <G>' line"
    [[ "|$expect|" == *"|${got#* }|"* ]] || fail "$fault: resumed from $got, expected global_step $expect"
    echo "  resumed from $got"
  fi
  expect_equal "$fault: final digest" "$expected" "$(digest_of "$resumed")"
  local leftovers
  leftovers=$(find "$dir/local" -name '*.partial')
  [[ -z $leftovers ]] || fail "$fault: half-written copies survived the rerun: $leftovers"
  rm -rf "$dir" "$WORK/$killed.log" "$WORK/$resumed.log"
}

# Two cases at a time: a run of the trainer mostly waits (for Open MPI to start and stop, for
# fsync), not on the processors. Each case's output is printed in the order of the cases.
CASES_AT_ONCE=2
case_pids=()
finish_case() {
  local n=$1 status=0 later
  wait "${case_pids[n]}" || status=$?
  cat "$WORK/case$n.out"
  if [[ $status -ne 0 ]]; then
    for later in "${case_pids[@]:n+1}"; do
      # shellcheck disable=SC2046  # one word per process
      kill -9 $(descendants "$later") "$later" 2>/dev/null || true
    done
    fail "the kill at ${cases[n]} failed (its output above)"
  fi
  rm -f "$WORK/case$n.out"
}
for n in "${!cases[@]}"; do
  ((n < CASES_AT_ONCE)) || finish_case $((n - CASES_AT_ONCE))
  check_case "$n" "${cases[n]}" >"$WORK/case$n.out" 2>&1 &
  case_pids[n]=$!
done
for ((n = ${#cases[@]} - CASES_AT_ONCE; n < ${#cases[@]}; n++)); do
  ((n < 0)) || finish_case "$n"
done
echo "local level crash safety: ${#cases[@]} kills, every rerun resumed from a complete checkpoint"
