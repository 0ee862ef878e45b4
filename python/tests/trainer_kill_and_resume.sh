#!/usr/bin/env bash
# The PyTorch trainer (examples/train_torch.py) on 2 ranks, killed with SIGKILL after a
# checkpoint was committed, then resumed: the same final digest as an uninterrupted run (the
# model, EMA, optimizer, scheduler, sampler position and each rank's RNG state restored).
source "$(dirname "$0")/../../tests/e2e/e2e_lib.sh"

flags=(--steps 30 --ckpt-every 10 --hidden 48)

# The uninterrupted run, for the digest to compare with, alongside the one that is killed (which
# sleeps through most of its steps).
start_trainer 2 uninterrupted --ckpt-dir "$WORK/uninterrupted" "${flags[@]}"
uninterrupted_pid=$STARTED_PID

start_trainer 2 interrupted --ckpt-dir "$WORK/run" "${flags[@]}" --step-sleep-ms 300 --async-save
first_checkpoint_committed_or_run_ended() {
  grep -qs 'global_step10\.h5' "$WORK/run/latest" || ! kill -0 "$STARTED_PID" 2>/dev/null
}
wait_until 90 first_checkpoint_committed_or_run_ended
kill -0 "$STARTED_PID" 2>/dev/null || fail "the run ended before it could be killed"
kill_hard "$STARTED_PID"
expect_no_line interrupted '^final digest:'
! compgen -G "$WORK/run/epoch*-global_step30.h5" >/dev/null || fail "the run finished before it was killed"

wait "$uninterrupted_pid" || fail "the uninterrupted run failed"
expected=$(digest_of uninterrupted)

run_trainer 2 resumed --ckpt-dir "$WORK/run" "${flags[@]}" --resume
expect_line resumed '^resumed from .*epoch[0-9]+-global_step(10|20)\.h5 at global_step (10|20)$'
expect_line resumed '^saved .*epoch[0-9]+-global_step30\.h5 at global_step 30'
expect_equal "final digest after kill and resume" "$expected" "$(digest_of resumed)"
