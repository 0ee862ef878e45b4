#!/usr/bin/env bash
# Collective MPI-IO hints across nodes (cb_nodes, romio_cb_write) are passed through to the
# container file (the library logs the values MPI-IO keeps for them) and change nothing but
# speed: the checkpoint saved with them on 2 nodes x 2 ranks loads bit-exact on 3 nodes.
source "$(dirname "$0")/multinode_lib.sh"

root=$WORK/root
run_helper save -N 2 --ntasks-per-node=2 -w node1,node2 -- save "$root" --mib 12 --hint cb_nodes=2 --hint romio_cb_write=enable ||
  fail "the save failed"
expect_line "$WORK/save.log" "MPI-IO hints in effect for .*: cb_nodes=[0-9]+ romio_cb_write=.*"
expect_equal "save: hosts" "node1 node1 node2 node2" "$(field save hosts)"
run_helper load -N 3 --ntasks-per-node=1 -- load "$root" --mib 12 || fail "the load failed"
expect_equal "load: bit-exact" yes "$(field load bit-exact)"
echo PASS
