#!/usr/bin/env bash
# The PyTorch trainer with its optimizer state sharded by ZeroRedundancyOptimizer: saved on 4
# ranks (each rank writes only the state it owns), resumed on 2 and on 3 ranks, where each
# rank loads the state of the parameters it owns now. Right after loading, model, EMA and the
# whole optimizer state have the digest they had when saved, and training goes on. The last
# checkpoint's EMA, exported to safetensors, loads through ckptio.load_checkpoint into a fresh
# module that gives the same outputs as the EMA loaded from the checkpoint.
source "$(dirname "$0")/../../tests/e2e/e2e_lib.sh"

run_trainer 4 saved_on_4 --ckpt-dir "$WORK/four" --steps 10 --ckpt-every 10 --zero --hidden 48
saved=$(sed -n 's/^state digest at global_step 10: \([0-9a-f]\{16\}\)$/\1/p' "$WORK/saved_on_4.log")
[[ -n $saved ]] || fail "the 4-rank run printed no digest for global_step 10"

for ranks in 2 3; do
  mkdir -p "$WORK/on_$ranks"
  cp "$WORK/four/epoch0-global_step10.h5" "$WORK/on_$ranks/"
  echo epoch0-global_step10.h5 >"$WORK/on_$ranks/latest"
  run_trainer "$ranks" "resumed_on_$ranks" --ckpt-dir "$WORK/on_$ranks" --steps 14 --ckpt-every 10 --zero --hidden 48 --resume \
    --export-ema "$WORK/on_$ranks/ema.safetensors"
  expect_line "resumed_on_$ranks" '^resumed from .*epoch0-global_step10\.h5 at global_step 10$'
  expect_equal "digest loaded on $ranks ranks" "$saved" \
    "$(sed -n 's/^loaded digest: \([0-9a-f]\{16\}\)$/\1/p' "$WORK/resumed_on_$ranks.log")"
  expect_line "resumed_on_$ranks" '^saved .*epoch0-global_step14\.h5 at global_step 14'
  digest_of "resumed_on_$ranks" >/dev/null
done

echo "+ the exported EMA in a fresh module"
"$PYTHON" - "$WORK/on_3" "$(dirname "$0")/../../examples" <<'PY' >"$WORK/ema_check.log" 2>&1 || fail "EMA export check failed"
import sys
sys.path.insert(0, sys.argv[2])
import torch
from mpi4py import MPI
import ckptio
from ckptio import torch as ckpt
from train_torch import Net, synthetic_data

root = sys.argv[1]
reference, fresh = Net(48), Net(48)
torch.nn.init.zeros_(fresh.net[0].weight)
with ckptio.CheckpointIO(MPI.COMM_SELF, root) as io:
    assert ckpt.load(io, ema=reference)["global_step"] == 14
missing, unexpected = ckptio.load_checkpoint(MPI.COMM_SELF, fresh.state_dict(), f"{root}/ema.safetensors")
assert not missing and not unexpected, (missing, unexpected)
inputs, _ = synthetic_data()
reference.eval(), fresh.eval()
assert torch.equal(reference(inputs[:32]), fresh(inputs[:32])), "different outputs"
print("EMA export: same outputs")
PY
cat "$WORK/ema_check.log"
