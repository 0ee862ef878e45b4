#!/usr/bin/env bash
# The root lock across nodes (rules in docs/SLURM.md, "The root lock across nodes"):
#  - a second job on another node is refused with LockedError naming the holder's host and job;
#  - a lock left by a job that Slurm says has ended (its ranks SIGKILLed on node1+node2) is
#    taken over by a job on node3;
#  - outside Slurm, the lock of a holder on another host is never taken over (node3 cannot
#    prove that a process of node2 is gone), while node2 itself takes over its dead pid's lock.
source "$(dirname "$0")/multinode_lib.sh"

root=$WORK/locked
lock=$root/.ckptio.lock
submit_nodes locked -N 2 --ntasks-per-node=2 -w node1,node2 -- --steps 1000 --ckpt-every 20 --step-sleep-ms 100
holder=$JOB
wait_committed locked 20 "$holder"
grep -q '"host":"node1"' "$lock" || fail "the lock does not name node1: $(cat "$lock")"

# helper_on <name> <salloc options...>: the test helper saves 1 MiB into the root as a job of its own.
helper_on() {
  local name=$1
  shift
  run_helper "$name" "$@" -- save "$root" --mib 1
}

if helper_on second -N 1 -n 1 -w node3; then fail "a second job on node3 was let into the locked root"; fi
expect_line "$WORK/second.log" "on node3: .*checkpoint root $root is in use by another job \\(pid [0-9]+ on host node1, Slurm job $holder, since .*; Slurm job $holder is RUNNING\\."

echo "+ scancel -s KILL $holder   (the ranks die without releasing the lock)"
scancel -s KILL "$holder"
wait_ended "$holder" 60
[[ -f $lock ]] || fail "the killed job's lock is gone"
helper_on takeover -N 1 -n 1 -w node3 || fail "the lock of an ended job was not taken over"
expect_line "$WORK/takeover.log" "taking over the stale lock of $root: Slurm job $holder on host node1 has ended \\((FAILED|CANCELLED)\\)"
[[ ! -e $lock ]] || fail "the helper left its lock behind: $(cat "$lock")"

# Outside Slurm: a lock of node2 whose pid does not exist.
plain=$WORK/plain
mkdir -p "$plain"
dead_pid=$(($(cat /proc/sys/kernel/pid_max) - 1))
echo "{\"host\":\"node2\",\"pid\":$dead_pid,\"slurm_job_id\":\"\",\"slurm_cluster\":\"\",\"since\":\"2026-01-01T00:00:00Z\"}" >"$plain/.ckptio.lock"
node_helper() {
  local node=$1 name=$2 status=0
  echo "+ virtual-cluster exec $node -- multinode_roundtrip save $plain"
  env -u SLURM_JOB_ID timeout 60 "$VCLUSTER" exec "$CKPTIO_VCLUSTER_DIR" "$node" -- "$HELPER" save "$plain" --mib 1 \
    >"$WORK/$name.log" 2>&1 || status=$?
  sed 's/^/  /' "$WORK/$name.log"
  return "$status"
}
if node_helper node3 from_node3; then fail "node3 took over a lock of node2 without proof that its holder is gone"; fi
expect_line "$WORK/from_node3.log" "in use by another job \\(pid $dead_pid on host node2, since .*; a holder on another host without a Slurm job cannot be proven gone\\."
node_helper node2 from_node2 || fail "node2 did not take over the lock of its own dead process"
expect_line "$WORK/from_node2.log" "taking over the stale lock of $plain: process $dead_pid on this host is gone"
echo PASS
