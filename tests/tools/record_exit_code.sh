#!/bin/sh
# Runs a command as one MPI rank and records its exit status in DIR/rank<N>.exit_code, so
# that a test can check the exit code of every rank rather than only what mpiexec reports.
# Usage: mpiexec -n 2 record_exit_code.sh DIR COMMAND [ARGS...]
dir=$1
shift
"$@"
code=$?
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${PMI_RANK:-unknown}}}
echo "$code" > "$dir/rank$rank.exit_code"
exit "$code"
