#!/usr/bin/env bash
# Started without --resume on a root that already holds checkpoints, the trainer refuses with
# exit code 2 and a message naming --resume, and leaves the checkpoints alone. An existing but
# empty folder is accepted.
source "$(dirname "$0")/e2e_lib.sh"

root=$WORK/root
run_trainer 2 first --ckpt-dir "$root" --steps 2 --ckpt-every 1 --hidden 16
before=$(cd "$root" && md5sum -- * | sort)

status=0
run_trainer 2 second --ckpt-dir "$root" --steps 2 --ckpt-every 1 --hidden 16 || status=$?
expect_equal "exit code without --resume on a non-empty root" 2 "$status"
expect_line second "refusing to start: .*root already holds 2 checkpoint\(s\).*--resume"
expect_no_line second '^final digest:'
expect_equal "checkpoints after the refusal" "$before" "$(cd "$root" && md5sum -- * | sort)"

mkdir "$WORK/empty"
run_trainer 2 empty_root --ckpt-dir "$WORK/empty" --steps 1 --hidden 16
digest_of empty_root >/dev/null
