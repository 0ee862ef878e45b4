// The container index: JSON stored in /_ckptio/index that lists every tensor, the pieces
// the saving ranks wrote (with their writer and XXH3-64 checksum), and the checksums of
// the running state and per-rank blobs. See docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ckptio/dtype.hpp"
#include "ckptio/shard.hpp"

namespace ckptio::detail::h5 {

struct IndexPiece {
  Block block;
  int writer = 0;
  std::uint64_t xxh3 = 0;             // the whole piece
  std::vector<std::uint64_t> chunks;  // per checksum chunk; empty: one chunk (xxh3)
  bool operator==(const IndexPiece&) const = default;
};

struct IndexTensor {
  std::string group;
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::vector<IndexPiece> pieces;
  // Format version 2: the tensor has no dataset; its bytes (row-major) lie at this offset of
  // the group's packed dataset (/_ckptio/packed/<group>).
  std::optional<std::uint64_t> packed_offset;
  bool operator==(const IndexTensor&) const = default;
};

struct BlobRecord {
  std::uint64_t bytes = 0;
  std::uint64_t xxh3 = 0;
  bool operator==(const BlobRecord&) const = default;
};

struct ContainerIndex {
  int world_size = 0;
  // Bytes per checksum chunk ("checksum_chunk_bytes"); 0 in files written before chunk
  // checksums existed, where every piece has only its whole-piece checksum.
  std::uint64_t chunk_bytes = 0;
  std::vector<IndexTensor> tensors;
  BlobRecord running_state;
  std::vector<BlobRecord> rank_blobs;  // one per saving rank
  // A node-local checkpoint ("node_part"): the pieces of node `node` of `nodes` only, so
  // its tensors need not be covered. nodes == 0: an ordinary, complete container.
  int node = 0;
  int nodes = 0;
  bool operator==(const ContainerIndex&) const = default;
};

// Format version 2 when a tensor is packed, else 1 (the version the root attribute states).
int index_format_version(const ContainerIndex& index);
// Compact JSON, keys sorted: the bytes nlohmann::json::dump() gives for the same document
// (encode_index_as_document, kept as the reference), written directly.
std::string encode_index(const ContainerIndex& index);
// Where encode_index put each piece's checksums: the offsets in the text of the 16 hex
// digits of its whole-piece xxh3 and of its first chunk checksum (the others follow every
// 19 characters). A save encodes the index while its pieces are still being written, with
// every checksum 0, and fills them in once known (index_tables.hpp: fill_piece_checksums).
struct ChecksumPlaces {
  struct Piece {
    std::size_t xxh3 = 0;
    std::size_t first_chunk = 0;
    std::size_t chunks = 0;
  };
  std::vector<std::size_t> first_piece;  // per tensor, its first entry in `pieces`; one more at the end
  std::vector<Piece> pieces;             // every tensor's pieces, in index order
};
std::string encode_index(const ContainerIndex& index, ChecksumPlaces& places);
std::string encode_index_as_document(const ContainerIndex& index);
// Validates everything it reads (groups, names, dtypes, shapes, pieces inside the shape,
// checksums as 16 hex digits, one chunk checksum per chunk, one blob per rank); throws
// FormatError naming `file`. Whether packed tensors lie inside their packed dataset is
// checked by the reader, which knows its size. Never allocates more than the input's size suggests.
// Reads the canonical text (what encode_index writes) directly, and any other text through a
// JSON document (decode_index_as_document), which also words every error.
ContainerIndex decode_index(const std::string& json_text, const std::string& file);
ContainerIndex decode_index_as_document(const std::string& json_text, const std::string& file);
// The fast reader decode_index tries first: the index when `json_text` is in canonical form
// and valid (then equal to what decode_index_as_document gives), else nullopt, never an error.
std::optional<ContainerIndex> decode_canonical_index(std::string_view json_text);

// The bytes of data the index declares: every tensor's elements x dtype size, the running
// state and the rank blobs (saturating at 2^64 - 1).
std::uint64_t declared_data_bytes(const ContainerIndex& index);

}  // namespace ckptio::detail::h5
