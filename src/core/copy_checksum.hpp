// A copy that takes the XXH3-64 of what it copies in the same pass: every 64-byte stripe is
// loaded once, stored with a non-temporal store and folded into the hash from the register.
// The copy waits on memory, so the hash's arithmetic runs in those stalls: on the machines
// measured, copy and hash together take as long as the copy alone, where copying a chunk
// and then hashing it (from the cache) took a quarter to a half longer (save_async's
// staging; docs/PERFORMANCE.md, "Background saves").
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckptio::detail {

// The machine code that copy_and_xxh3_64 can run.
enum class CopyChecksumCode {
  kPortable,  // copy_streaming, then xxh3_64 of the source
  kAvx2,      // one pass, 32-byte vectors (x86-64 with AVX2)
  kAvx512,    // one pass, 64-byte vectors (x86-64 with AVX-512F)
};

// Copies `bytes` bytes from `source` to `destination` (which must not overlap) and returns
// xxh3_64(source, bytes). Large copies (at least 256 KiB) into a destination aligned to the
// vector width run in one pass with the widest vector unit this CPU has; the others as
// kPortable. Either way the result and the bytes written are the same.
std::uint64_t copy_and_xxh3_64(void* destination, const void* source, std::size_t bytes) noexcept;

// The same with the given code, whatever the size (so that tests can check each code the CPU
// runs against the reference); inputs of at most 240 bytes, which XXH3 hashes without
// stripes, always take kPortable. Requires copy_checksum_code_runs(code) and, for the vector
// codes, a destination aligned to 64 bytes.
std::uint64_t copy_and_xxh3_64(CopyChecksumCode code, void* destination, const void* source,
                               std::size_t bytes) noexcept;

// Whether this build and this CPU (and its operating system) run `code`.
bool copy_checksum_code_runs(CopyChecksumCode code) noexcept;

}  // namespace ckptio::detail
