#!/usr/bin/env bash
# The CTest fixture of the multinode tests: starts (or stops) a 4-node virtual cluster
# (4: a 2-node job can be requeued onto a disjoint node set).
# Where this machine cannot make namespaces (a container without CAP_SYS_ADMIN, a kernel
# without veth or bridge support), start writes the reason to DIR/unavailable and succeeds,
# so that every test skips with that reason instead of failing.
#   cluster_fixture.sh start|stop <slurm/virtual-cluster> <DIR>
set -euo pipefail
action=$1 tool=$2 dir=$3
case $action in
  start)
    rm -rf "$dir"
    mkdir -p "$dir"
    reason=""
    if ! unshare --net --uts --mount true 2>/dev/null; then
      reason="this machine refuses new network, UTS or mount namespaces (unshare --net --uts --mount fails)"
    elif ! ip link add ckptio-probe0 type bridge 2>/dev/null; then
      reason="this machine refuses to create a bridge (ip link add type bridge fails)"
    else
      ip link del ckptio-probe0
    fi
    if [[ -n $reason ]]; then
      echo "$reason" >"$dir/unavailable"
      echo "multinode tests will be skipped: $reason"
      exit 0
    fi
    exec "$tool" start "$dir" --nodes 4
    ;;
  stop)
    [[ -f $dir/unavailable ]] && exit 0
    exec "$tool" stop "$dir"
    ;;
  *)
    echo "usage: $0 start|stop <virtual-cluster> <DIR>" >&2
    exit 2
    ;;
esac
