#!/usr/bin/env bash
# One checkpoint, written by 2 nodes x 2 ranks into one container on the shared folder, loads
# bit-exact on 3 nodes x 1 rank and on 1 node x 4 ranks; the replicated tensor is read from the
# file once in all (the sum of LoadResult::bytes_read over the ranks of every node is the
# checkpoint's unique bytes) and reaches the other ranks, across nodes, over MPI.
source "$(dirname "$0")/multinode_lib.sh"

root=$WORK/root
# The nodes are named: of the cluster's 4, Slurm may otherwise pick others (a node the job
# before has not yet given back), and the host lists below are exact.
run_helper save -N 2 --ntasks-per-node=2 -w node1,node2 -- save "$root" --mib 12 || fail "the save failed"
expect_equal "save: hosts" "node1 node1 node2 node2" "$(field save hosts)"

run_helper load_3x1 -N 3 --ntasks-per-node=1 -w node1,node2,node3 -- load "$root" --mib 12 || fail "the 3x1 load failed"
expect_equal "3x1: hosts" "node1 node2 node3" "$(field load_3x1 hosts)"
expect_equal "3x1: bit-exact" yes "$(field load_3x1 bit-exact)"
expect_equal "3x1: bytes read over all nodes (replicated pieces once)" "$(field load_3x1 'unique bytes')" \
  "$(field load_3x1 'bytes read')"
# The replicated tensor (2 MiB) reaches the two ranks that did not read it.
expect_equal "3x1: bytes received" $((2 * 2 * 1024 * 1024)) "$(field load_3x1 'bytes received')"

run_helper load_1x4 -N 1 -n 4 -w node3 -- load "$root" --mib 12 || fail "the 1x4 load failed"
expect_equal "1x4: hosts" "node3 node3 node3 node3" "$(field load_1x4 hosts)"
expect_equal "1x4: bit-exact" yes "$(field load_1x4 bit-exact)"
expect_equal "1x4: bytes read" "$(field load_1x4 'unique bytes')" "$(field load_1x4 'bytes read')"
expect_equal "1x4: bytes received" $((3 * 2 * 1024 * 1024)) "$(field load_1x4 'bytes received')"
echo "PASS"
