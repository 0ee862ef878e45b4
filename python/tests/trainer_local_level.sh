#!/usr/bin/env bash
# The PyTorch trainer (examples/train_torch.py) with a node-local level: 2 ranks as 2
# simulated nodes (CKPTIO_TEST_RANKS_PER_NODE=1), a local save every 2 steps and every 3rd
# save flushed to the shared root. A rank killed in the 5th save (step 10), then node 1's
# local storage wiped: the rerun resumes from the local level's step 8 (newer than the flush
# of step 6), node 1's pieces from the partner copy on node 0, with the digest of an
# uninterrupted run.
source "$(dirname "$0")/../../tests/e2e/e2e_lib.sh"

export CKPTIO_TEST_RANKS_PER_NODE=1
flags=(--steps 12 --ckpt-every 2 --flush-every 3 --hidden 48)

run_trainer 2 uninterrupted --ckpt-dir "$WORK/uninterrupted" --local-dir "$WORK/uninterrupted-local" "${flags[@]}" ||
  fail "the uninterrupted run failed"
expected=$(digest_of uninterrupted)

status=0
CKPTIO_FAULT_INJECT="local.node.write@1#5:kill" run_trainer 2 killed --ckpt-dir "$WORK/run" --local-dir "$WORK/local" \
  "${flags[@]}" || status=$?
[[ $status -ne 0 && $status -ne 124 ]] || fail "the run was not killed (exit $status)"
expect_line killed 'fault injection: killing this process at local.node.write$'
expect_no_line killed '^final digest:'
[[ -f $WORK/run/epoch0-global_step6.h5 && ! -e $WORK/run/epoch0-global_step8.h5 ]] ||
  fail "the shared root should hold the flush of step 6 and not step 8: $(ls "$WORK/run")"
# ckptio.list_local_checkpoints sees step 8 committed: each node's own copy and its partner copy.
step8=$("${PYTHON:-python3}" -c '
import sys, ckptio
for e in ckptio.list_local_checkpoints(sys.argv[1]):
    if e["global_step"] == 8:
        print(e["node"], "partner" if e["partner_copy"] else "own", e["holder"], e["committed"], e["nodes"])
' "$WORK/local") || fail "ckptio.list_local_checkpoints failed"
expect_equal "step 8 in the local level" "0 own simulated-node0 True 2
0 partner simulated-node1 True 2
1 own simulated-node1 True 2
1 partner simulated-node0 True 2" "$step8"
rm -rf "$WORK/local/simulated-node1/node1"  # node 1 "replaced": its own copies are gone

run_trainer 2 resumed --ckpt-dir "$WORK/run" --local-dir "$WORK/local" "${flags[@]}" --resume ||
  fail "the rerun failed"
expect_line resumed '^resumed from local checkpoint global_step 8$'
expect_line resumed '^saved .*epoch[0-9]+-global_step12\.h5 at global_step 12'
expect_equal "final digest after kill, node replacement and resume" "$expected" "$(digest_of resumed)"
