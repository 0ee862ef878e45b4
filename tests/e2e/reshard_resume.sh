#!/usr/bin/env bash
# A checkpoint saved on 4 ranks loads on 3, 2 and 1 ranks with the state it was saved with
# (same digest), and training continues from it, reproducibly.
source "$(dirname "$0")/e2e_lib.sh"

# hidden 50: layer1's row blocks are uneven on 4 ranks (13, 13, 12, 12) and on 3 (17, 17, 16);
# the ZeRO-1 flat ranges of layer2's moments differ for every world size.
root=$WORK/root
run_trainer 4 saved_on_4 --ckpt-dir "$root" --steps 20 --ckpt-every 10 --hidden 50
saved_digest=$(digest_of saved_on_4)
checkpoints=$(ls "$root")

# --steps equal to the checkpoint's global_step: load, train nothing, print the loaded state's digest.
for ranks in 3 2 1; do
  run_trainer "$ranks" "loaded_on_$ranks" --ckpt-dir "$root" --steps 20 --hidden 50 --resume
  expect_line "loaded_on_$ranks" '^resumed from .*epoch[0-9]+-global_step20\.h5 at global_step 20$'
  expect_line "loaded_on_$ranks" "saved by 4 ranks, this run has $ranks"
  expect_equal "digest loaded on $ranks ranks" "$saved_digest" "$(digest_of "loaded_on_$ranks")"
done
expect_equal "checkpoints after loading only" "$checkpoints" "$(ls "$root")"

# Continue on 3 ranks, twice from the same checkpoint: the per-rank state derived for the new
# world size must make the continuation reproducible.
cp -r "$root" "$WORK/copy"
run_trainer 3 continued --ckpt-dir "$root" --steps 30 --ckpt-every 10 --hidden 50 --resume
run_trainer 3 continued_again --ckpt-dir "$WORK/copy" --steps 30 --ckpt-every 10 --hidden 50 --resume
expect_line continued '^saved .*epoch[0-9]+-global_step30\.h5 at global_step 30'
continued_digest=$(digest_of continued)
[[ $continued_digest != "$saved_digest" ]] || fail "training from the checkpoint did not change the state"
expect_equal "digest of the continued run, repeated" "$continued_digest" "$(digest_of continued_again)"
