#!/usr/bin/env bash
# `ckptio ls ROOT --local-dir DIR` lists both levels: the shared root's checkpoints, then every
# copy of the node-local level (node, own or partner copy, the node folder holding it,
# committed or not) and, per step, whether every node's pieces have a committed copy.
source "$(dirname "$0")/e2e_lib.sh"
[[ -n $TOOL ]] || fail "usage: $0 <train_toy> <mpiexec> <work dir> <ckptio tool>"

# 2 simulated nodes of 2 ranks; steps 1-5 saved locally, step 3 also to the shared root.
export CKPTIO_TEST_RANKS_PER_NODE=2
run_trainer 4 train --ckpt-dir "$WORK/shared" --local-dir "$WORK/local" --steps 5 --ckpt-every 1 --flush-every 3 \
  --hidden 37 || fail "the training run failed"

# Node 1's step-5 pieces lose both commit records (own and partner copy); a save in progress
# left a .partial copy; a foreign file lies beside the containers.
rm "$WORK/local/simulated-node1/node1/epoch0-global_step5.h5.level"
rm "$WORK/local/simulated-node0/partner/node1/epoch0-global_step5.h5.level"
touch "$WORK/local/simulated-node0/node0/epoch0-global_step6.h5.partial" "$WORK/local/simulated-node0/node0/notes.txt"

"$TOOL" ls "$WORK/shared" --local-dir "$WORK/local" >"$WORK/ls.log" 2>&1 || fail "ckptio ls failed"
cat "$WORK/ls.log"
# The cells without sizes and times: NAME GLOBAL_STEP NODE COPY HELD_IN STATE.
local_rows=$(awk '/^local level in /{table=1; next} table && NF==0 {exit} table {print $1, $2, $3, $4, $5, $6}' \
  "$WORK/ls.log")
expect_equal "local level rows" "NAME GLOBAL_STEP NODE COPY HELD_IN STATE
epoch0-global_step4.h5 4 0 own simulated-node0 committed
epoch0-global_step4.h5 4 0 partner simulated-node1 committed
epoch0-global_step4.h5 4 1 own simulated-node1 committed
epoch0-global_step4.h5 4 1 partner simulated-node0 committed
epoch0-global_step5.h5 5 0 own simulated-node0 committed
epoch0-global_step5.h5 5 0 partner simulated-node1 committed
epoch0-global_step5.h5 5 1 own simulated-node1 uncommitted
epoch0-global_step5.h5 5 1 partner simulated-node0 uncommitted" "$local_rows"
expect_equal "per-step summary" "global_step 4: complete: a committed copy of each of 2 node(s) (job nojob)
global_step 5: incomplete: no committed copy of the pieces of node(s) 1 (job nojob)" \
  "$(grep '^global_step ' "$WORK/ls.log")"
expect_line ls '^\*  epoch0-global_step3\.h5 +0 +3 '
expect_line ls '^1 checkpoint in .*/shared; \* marks latest$'
expect_line ls "^local level in $WORK/local\$"

# A restart agrees: step 5 cannot be restored from the local level, step 4 can.
run_trainer 4 resumed --ckpt-dir "$WORK/shared" --local-dir "$WORK/local" --steps 5 --ckpt-every 1 \
  --flush-every 3 --hidden 37 --resume || fail "the rerun failed"
expect_line resumed '^resumed from local checkpoint global_step 4$'

# A local folder without checkpoints, and one that does not exist.
mkdir "$WORK/empty"
"$TOOL" ls "$WORK/shared" --local-dir "$WORK/empty" >"$WORK/empty.log" 2>&1 || fail "ckptio ls of an empty local folder failed"
expect_line empty "^no local checkpoints in $WORK/empty\$"
status=0
"$TOOL" ls "$WORK/shared" --local-dir "$WORK/missing" >"$WORK/missing.log" 2>&1 || status=$?
expect_equal "exit code for a missing local folder" 3 "$status"
expect_line missing 'missing'
