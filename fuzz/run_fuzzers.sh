#!/bin/sh
# Builds ckptio's libFuzzer targets with clang++ and runs each for a few seconds from its
# seed corpus (fuzz/corpus/<target>, copied so the repository is never written).
#   run_fuzzers.sh BUILD_DIR SECONDS TARGET...      (TARGET: torch_pickle, torch_zip, ...)
# Exits 0 when no target crashed, 1 on a crash, a sanitizer report or a build failure (the
# input that crashed is kept under BUILD_DIR/artifacts/), 77 (skipped) without clang++.
set -u
if [ $# -lt 3 ]; then
  echo "usage: $0 BUILD_DIR SECONDS TARGET..." >&2
  exit 2
fi
build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
cxx=${CKPTIO_FUZZ_CXX:-$(command -v clang++ || true)}
if [ -z "$cxx" ]; then
  echo "SKIP: clang++ not found (install clang and libclang-rt-14-dev to run the fuzz targets)"
  exit 77
fi
targets=""
for t in "$@"; do targets="$targets fuzz_$t"; done
cmake -S "$here" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE= >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; echo "FAIL: configuring the fuzz targets failed"; exit 1; }
# shellcheck disable=SC2086  # one word per target
cmake --build "$build" --target $targets -- -j2 >"$build.build.log" 2>&1 ||
  { cat "$build.build.log"; echo "FAIL: building the fuzz targets failed"; exit 1; }
status=0
for t in "$@"; do
  corpus="$build/corpus/$t"
  rm -rf "$corpus"
  mkdir -p "$corpus" "$build/artifacts"
  cp "$here/corpus/$t/"* "$corpus/" 2>/dev/null || true
  dict=""
  [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
  echo "== fuzz_$t for ${seconds} s"
  # shellcheck disable=SC2086  # $dict is empty or one word
  if ! "$build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$t-" $dict "$corpus" >"$build/$t.log" 2>&1; then
    tail -n 60 "$build/$t.log"
    echo "FAIL: fuzz_$t found a crash (input under $build/artifacts/)"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/$t.log" | sed "s/^/  /"
  fi
done
exit $status
