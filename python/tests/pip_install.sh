#!/usr/bin/env bash
# `pip install .` offline into a venv made with --system-site-packages, building through CMake.
# To stay cheap in CI it reuses the library of this build: `cmake --install` into a scratch
# prefix, then CKPTIO_PREFIX makes setup.py configure python/ alone over it and compile only
# the extension. The installed package is then imported outside the source and build trees
# and saves and loads a checkpoint.
set -euo pipefail
if [[ $# -ne 4 ]]; then
  echo "usage: $0 <build dir> <source dir> <work dir> <python>" >&2
  exit 2
fi
BUILD=$1 SOURCE=$2 WORK=$3 PYTHON=$4
unset PYTHONPATH  # the build tree's package must not be the one imported
trap 'status=$?; rm -rf "$WORK"; exit $status' EXIT
rm -rf "$WORK"
mkdir -p "$WORK/src"

start=$SECONDS
cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
# What `pip install .` reads from a checkout, copied so that the checkout stays clean.
cp -r "$SOURCE/pyproject.toml" "$SOURCE/setup.py" "$SOURCE/README.md" "$SOURCE/python" "$WORK/src/"
rm -rf "$WORK/src/python/tests"
"$PYTHON" -m venv --system-site-packages "$WORK/venv"
echo "+ CKPTIO_PREFIX=... pip install --no-build-isolation --no-index ."
(cd "$WORK/src" && CKPTIO_PREFIX="$WORK/prefix" "$WORK/venv/bin/pip" install --no-build-isolation --no-index \
  --quiet .)
echo "  installed in $((SECONDS - start)) s"

cd "$WORK"
"$WORK/venv/bin/python" - "$WORK" <<'PY'
import pathlib, sys
import numpy as np
from mpi4py import MPI
import ckptio

work = pathlib.Path(sys.argv[1])
assert pathlib.Path(ckptio.__file__).is_relative_to(work / "venv"), ckptio.__file__
saved = np.arange(10, dtype=np.float32)
with ckptio.CheckpointIO(MPI.COMM_SELF, work / "root") as io:
    io.save(ckptio.Snapshot(model={"w": saved}, running=ckptio.RunningState(global_step=3)))
    back = np.zeros(10, np.float32)
    result = io.load_latest(ckptio.Snapshot(model={"w": back}))
assert result.running.global_step == 3 and np.array_equal(back, saved)
print(f"pip-installed ckptio {ckptio.__version__} from {pathlib.Path(ckptio.__file__).parent}: save and load OK")
PY
