#!/usr/bin/env bash
# Builds the container-index fuzz target with clang (libFuzzer + ASan + UBSan; only the
# MPI- and HDF5-free sources it needs) and runs it for a while on the seed corpus.
#   fuzz/run_index_json_fuzz.sh BUILD_DIR [SECONDS]
# Exit 77 (skipped) when clang's libFuzzer is not available.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$1/fuzz-index-json
seconds=${2:-20}
mkdir -p "$out/corpus"
cxx=${CKPTIO_FUZZ_CXX:-clang++}
command -v "$cxx" >/dev/null || { echo "SKIP: $cxx not found"; exit 77; }
echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' >"$out/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer "$out/probe.cpp" -o "$out/probe" 2>/dev/null; then
  echo "SKIP: $cxx cannot link libFuzzer (-fsanitize=fuzzer)"
  exit 77
fi
sources=(fuzz/index_json_fuzz.cpp src/h5/index_codec.cpp src/core/checksum.cpp src/core/piece_checksum.cpp
  src/core/piece_math.cpp src/core/state_dict.cpp src/core/dtype.cpp src/core/error.cpp src/core/shard.cpp)
(cd "$repo" && "$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I include -I src -I "$1/generated/include" "${sources[@]}" -o "$out/index_json_fuzz")
cp "$repo"/fuzz/index_json_corpus/* "$out/corpus/"
# -rss_limit_mb: a length field must never make the decoder allocate without bound.
"$out/index_json_fuzz" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=512 -timeout=10 \
  -print_final_stats=1 "$out/corpus" 2>&1 | tail -n 25
