// The safetensors header: parsing with every validation rule of the reference
// implementation (plus duplicate keys), and serialization in the reference writer's exact
// byte layout. Pure functions, no I/O and no MPI, so they can be fuzzed alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ckptio/dtype.hpp"
#include "ckptio/shard.hpp"

namespace ckptio::detail {

// The reference implementation refuses headers larger than this.
inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::uint64_t begin = 0;  // offsets into the data section (after 8 + header bytes)
  std::uint64_t end = 0;
  std::uint64_t bytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;  // __metadata__, empty when absent
  bool has_metadata = false;
  std::vector<SafetensorsTensor> tensors;  // in offset order
  std::uint64_t header_bytes = 0;          // N, the JSON length (with padding)
  std::uint64_t data_start() const { return 8 + header_bytes; }
  // Index into tensors by name, or nullptr.
  const SafetensorsTensor* find(std::string_view name) const;
};

// Reads the little-endian u64 at `p`.
std::uint64_t read_le64(const unsigned char* p) noexcept;

// Parses and validates a header. `file` names the file in error messages. `prefix` holds the
// first `prefix_size` bytes of the file (at least 8 + N of them when the file is that long;
// the data section need not be present) and `file_size` is the size of the whole file.
// Throws FormatError naming the file (and the tensor) for every violation.
SafetensorsHeader parse_safetensors_header(const std::string& file, const unsigned char* prefix,
                                           std::size_t prefix_size, std::uint64_t file_size);

// Tensors to be written: name, dtype and shape; offsets are assigned by the serializer.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
};

// The reference writer's order: dtype descending in the reference's Dtype enum
// (BOOL < U8 < I8 < F8_E5M2 < F8_E4M3 < I16 < U16 < F16 < BF16 < I32 < U32 < F32 < F64 <
// I64 < U64), then name ascending.
int reference_dtype_rank(DType dtype) noexcept;
void sort_reference_order(std::vector<SafetensorsEntry>& entries);

// A serialized header: the 8-byte length followed by the padded JSON, and the tensors in
// file order with their offsets.
struct SerializedHeader {
  std::string bytes;
  std::vector<SafetensorsTensor> tensors;
  std::uint64_t data_bytes = 0;  // size of the data section
};

// Serializes a header exactly as the reference writer does: tensors sorted by
// sort_reference_order, contiguous offsets from 0, `__metadata__` first (when not empty;
// keys in ascending order), compact JSON, spaces up to a multiple of 8. Throws UsageError
// for duplicate or invalid (non-UTF-8) names.
SerializedHeader serialize_safetensors_header(std::vector<SafetensorsEntry> entries,
                                              const std::map<std::string, std::string>& metadata);

}  // namespace ckptio::detail
