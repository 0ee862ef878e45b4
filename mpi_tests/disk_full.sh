#!/usr/bin/env bash
# Disk full: a save onto a small tmpfs that cannot hold it must fail on every rank with an
# error naming ENOSPC, without hanging; the previous checkpoint stays intact and loadable,
# no .partial is left, and a save that fits works again. Needs permission to mount a tmpfs
# (root); skips (exit 77) otherwise.
#   disk_full.sh MPIEXEC CRASH_HELPER WORKDIR
set -uo pipefail
mpiexec=$1 helper=$2 work=$3
ranks=2
fail() { echo "FAIL: $*"; exit 1; }
mnt="$work/disk-full-mnt"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=6m,mode=0755 tmpfs "$mnt" 2>/dev/null; then
  echo "SKIP: cannot mount a tmpfs here (needs root)"
  exit 77
fi
trap 'umount "$mnt" 2>/dev/null; rmdir "$mnt" 2>/dev/null' EXIT
run() { timeout 120 "$mpiexec" -n "$ranks" --oversubscribe "$helper" "$@"; }
root="$mnt/root"

run save "$root" 10 2 >/dev/null 2>&1 || fail "the first save (2 MiB) failed"
out=$(run save "$root" 20 8 2>&1)
rc=$?
[ $rc -ne 124 ] || fail "the save onto a full disk hung"
[ $rc -ne 0 ] || fail "the save of 8 MiB onto a 6 MiB tmpfs succeeded"
n=$(grep -c 'ENOSPC' <<<"$out")
[ "$n" -eq "$ranks" ] || fail "expected every rank ($ranks) to report ENOSPC, got $n: $out"
grep -q "save: reserve space for $root/epoch0-global_step20.h5.partial: cannot reserve" <<<"$out" ||
  fail "the error does not say what failed: $out"
ls "$root"/*.partial >/dev/null 2>&1 && fail "a .partial was left behind"
[ "$(cat "$root/latest")" = "epoch0-global_step10.h5" ] || fail "latest changed: $(cat "$root/latest")"
run verify "$root" 10 2 || fail "the previous checkpoint did not load bit-exact"
run save "$root" 30 1 || fail "a save that fits failed after the disk-full error"
run verify "$root" 30 1 || fail "the save after the disk-full error did not load"
echo "$out" | grep -m1 ENOSPC
echo "disk full: agreed ENOSPC on every rank, previous checkpoint intact, next save fine"
