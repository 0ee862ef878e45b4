// The byte tables that ranks exchange to fill the container index (index_codec.hpp): each
// writer's checksums of the pieces it wrote, and each rank's blob record. Fixed-width
// native-endian u64 fields; they never leave the job (the index stores them as JSON).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/piece_checksum.hpp"
#include "h5/index_codec.hpp"

namespace ckptio::detail::h5 {

// Appends the checksums of piece `piece` of tensor `tensor` (indexes into
// ContainerIndex::tensors and its pieces) to this rank's table.
void append_piece_checksums(std::string& table, std::size_t tensor, std::size_t piece, const PieceChecksums& sums);

// Writes every rank's checksums into the places of `text` (encode_index with places) that
// the index's placeholders hold, leaving its length as it is. FormatError when a table
// names a piece the index does not have, or another number of chunks than it has.
void fill_piece_checksums(std::string& text, const ChecksumPlaces& places, const std::vector<std::string>& tables);

// A blob record as 16 bytes, and back (FormatError unless exactly 16 bytes).
std::string encode_blob_record(const BlobRecord& record);
BlobRecord decode_blob_record(const std::string& bytes);

}  // namespace ckptio::detail::h5
