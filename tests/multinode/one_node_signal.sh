#!/usr/bin/env bash
# USR1 delivered to the two ranks on node2 only (not through mpirun): all four ranks, on two
# nodes, stop at the same step, the checkpoint of that step is saved once, the job requeues
# itself once and finishes with the digest of an uninterrupted run.
source "$(dirname "$0")/multinode_lib.sh"

expected=$(reference_digest 4 --steps 80 --ckpt-every 20)
submit_nodes onenode -N 2 --ntasks-per-node=2 -w node1,node2 --export=ALL,CKPTIO_LOG_ALL_RANKS=1 -- "${FLAGS[@]}"
job=$JOB
wait_committed onenode 20 "$job"
mapfile -t on_node2 < <(rank_pids_on onenode node2)
mapfile -t on_node1 < <(rank_pids_on onenode node1)
expect_equal "ranks on node1" 2 "${#on_node1[@]}"
expect_equal "ranks on node2" 2 "${#on_node2[@]}"
echo "+ kill -USR1 ${on_node2[*]}   (the ranks of node2)"
kill -USR1 "${on_node2[@]}"
wait_ended_kicking "$job" 120
out=$WORK/onenode.out
expect_equal "ranks that received SIGUSR1" 2 "$(count_lines "$out" 'SIGUSR1 received on rank')"
expect_equal "ranks of node2 that received it" 2 "$(count_lines "$out" 'SIGUSR1 received on rank [23]')"
expect_no_line "$out" 'batch shell: USR1 received'
# Every rank logs its agreed stop (CKPTIO_LOG_ALL_RANKS=1): four lines, one step.
expect_equal "ranks that agreed to stop" 4 "$(count_lines "$out" 'agreed stop at step')"
expect_equal "distinct stopping steps" 1 \
  "$(sed -n 's/.*agreed stop at step \([0-9]*\) .*/\1/p' "$out" | sort -u | wc -l)"
sed -i '/\[rank [123]\] \[info\] preemption: agreed stop/d' "$out"
check_requeued_once onenode "$job" "$expected" 4
expect_equal "saves of the stopping step" 1 "$(count_lines "$out" "^saved .*global_step$STOP_STEP\\.h5 ")"
