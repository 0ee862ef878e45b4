// ckptio: export of a checkpoint group to safetensors (Hugging Face's single-file or sharded
// layout), for inference.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ckptio/dtype.hpp"
#include "ckptio/tensor_info.hpp"

namespace ckptio {

struct ExportOptions {
  // Converts the floating-point tensors (F64, F32, F16, BF16) to this dtype (F64, F32, F16
  // or BF16; round to nearest even). F8 and integer tensors are written unchanged.
  std::optional<DType> dtype;
  // Splits the export into Hugging Face shards of at most this many bytes (a tensor larger
  // than this gets a shard of its own); 0 writes one file.
  std::uint64_t max_shard_size = 0;
  // Added to the header's __metadata__ (after "format": "pt" and the provenance keys).
  std::map<std::string, std::string> metadata;
  // Called on rank 0 with (bytes written by all ranks so far, estimated from rank 0's own
  // share, total bytes) as the export proceeds, and once at the end with done == total.
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
  // Bytes of stored data a rank reads, converts and writes as one piece of work; large
  // tensors are split into pieces of this size and spread over the ranks.
  std::uint64_t chunk_bytes = 32ull << 20;
};

struct ExportResult {
  std::vector<std::filesystem::path> files;    // the .safetensors files, in shard order
  std::optional<std::filesystem::path> index;  // <stem>.safetensors.index.json when sharded
  std::size_t tensors = 0;
  std::uint64_t tensor_bytes = 0;  // sum of the tensors' bytes (metadata.total_size)
};

// Collective over comm. Exports `group` ("model", "optimizer" or "ema"; empty: "ema" when
// the checkpoint has it, else "model") of `checkpoint` (a container file, or a checkpoint
// root resolved through `latest`) to `out`. The ranks split the work and write their parts
// of each file through MPI-IO at offsets computed from the one header, so the bytes do not
// depend on the number of ranks. Each file is written as `<file>.partial` and renamed into
// place once every rank has written; the header's __metadata__ holds "format": "pt",
// "ckptio.source", "ckptio.group", "epoch" and "global_step". Throws the same ckptio::Error
// on every rank.
ExportResult export_safetensors(MPI_Comm comm, const std::filesystem::path& checkpoint, const std::string& group,
                                const std::filesystem::path& out, const ExportOptions& options = {});

struct SafetensorsInfo {
  std::filesystem::path path;                   // as given
  std::vector<std::filesystem::path> files;     // the .safetensors files
  std::optional<std::filesystem::path> index;   // the index of a sharded export
  std::map<std::string, std::string> metadata;  // __metadata__ of the first file
  std::vector<TensorInfo> tensors;              // format Safetensors, with `file`; sorted by name
  std::uint64_t tensor_bytes = 0;
  std::uint64_t file_bytes = 0;  // all files together
};

// Reads and validates the headers (never the data) of a .safetensors file, an index file,
// or a folder holding either. Not collective. Throws FormatError / IoError.
SafetensorsInfo inspect_safetensors(const std::filesystem::path& path);

}  // namespace ckptio
