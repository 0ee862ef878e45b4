#!/usr/bin/env bash
# A 2-rank run killed with SIGKILL after a checkpoint was written, then resumed on 2 ranks,
# must end with the same final digest as an uninterrupted run of the same total steps.
source "$(dirname "$0")/e2e_lib.sh"

# hidden 37 on 2 ranks: layer1's row blocks are uneven (19 and 18 rows).
flags=(--steps 30 --ckpt-every 10 --hidden 37)

run_trainer 2 uninterrupted --ckpt-dir "$WORK/uninterrupted" "${flags[@]}"
expected=$(digest_of uninterrupted)

# Slow steps, so that the kill lands between the first and the second checkpoint.
start_trainer 2 interrupted --ckpt-dir "$WORK/run" "${flags[@]}" --step-sleep-ms 150
# A checkpoint counts once `latest` names it (the last step of its commit).
first_checkpoint_committed_or_run_ended() {
  grep -qs 'global_step10\.h5' "$WORK/run/latest" || ! kill -0 "$STARTED_PID" 2>/dev/null
}
wait_until 60 first_checkpoint_committed_or_run_ended
kill -0 "$STARTED_PID" 2>/dev/null || fail "the run ended before it could be killed"
kill_hard "$STARTED_PID"
expect_no_line interrupted '^final digest:'
! compgen -G "$WORK/run/epoch*-global_step30.h5" >/dev/null || fail "the run finished before it was killed"
if [[ -e $WORK/run/.ckptio.lock ]]; then
  echo "  the killed run left its lock file behind; the resumed run has to take it over"
fi

run_trainer 2 resumed --ckpt-dir "$WORK/run" "${flags[@]}" --resume
expect_line resumed '^resumed from .*epoch[0-9]+-global_step(10|20)\.h5 at global_step (10|20)$'
expect_line resumed '^saved .*epoch[0-9]+-global_step30\.h5 at global_step 30'
expect_equal "final digest after kill and resume" "$expected" "$(digest_of resumed)"
