// Reading tensor data with checksum verification, for load and verify. A rank that needs
// only part of a stored piece reads the checksum chunks of the piece that its part touches
// (at most one extra chunk at each end for row-wise and flat resharding), verifies them
// and copies its elements out; a rank whose block is exactly a stored piece reads straight
// into its memory and hashes it there.
#pragma once

#include <cstdint>
#include <string>

#include "ckptio/shard.hpp"
#include "h5/container_reader.hpp"
#include "h5/index_codec.hpp"

namespace ckptio::detail {

// Reads `want` (a block of `tensor`, inside its shape) into `out` (row-major of want.count)
// and verifies every stored chunk it reads. The stored pieces must cover every element of
// `want` (checked before anything is read, see piece_coverage: a duplicated piece cannot
// hide a hole); overlapping pieces are each read and verified, so no overlap can disagree
// without failing a checksum. Throws IntegrityError naming the file, tensor and piece on a
// checksum mismatch, FormatError when the pieces leave a hole in `want`.
void read_block_verified(h5::ContainerReader& reader, const std::string& file, const h5::IndexTensor& tensor,
                         std::uint64_t chunk_bytes, const Block& want, char* out);

// Reads the whole stored piece `piece` of `tensor`, window by window, and verifies all its
// checksums. Throws IntegrityError on a mismatch. Returns the bytes read.
std::uint64_t verify_stored_piece(h5::ContainerReader& reader, const std::string& file, const h5::IndexTensor& tensor,
                                  std::size_t piece, std::uint64_t chunk_bytes);

}  // namespace ckptio::detail
