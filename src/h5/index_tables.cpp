#include "h5/index_tables.hpp"

#include <cstdint>
#include <cstring>

#include "ckptio/error.hpp"

namespace ckptio::detail::h5 {

namespace {

// Per piece: tensor, piece, whole-piece xxh3, chunk count, then the chunk checksums.
constexpr std::size_t kHeadBytes = 4 * sizeof(std::uint64_t);

}  // namespace

void append_piece_checksums(std::string& table, std::size_t tensor, std::size_t piece, const PieceChecksums& sums) {
  const std::uint64_t head[4] = {tensor, piece, sums.whole, sums.chunks.size()};
  table.append(reinterpret_cast<const char*>(head), sizeof head);
  if (!sums.chunks.empty())
    table.append(reinterpret_cast<const char*>(sums.chunks.data()), sums.chunks.size() * sizeof(std::uint64_t));
}

void apply_piece_checksums(ContainerIndex& index, const std::vector<std::string>& tables) {
  for (const auto& bytes : tables) {
    for (std::size_t off = 0; off < bytes.size();) {
      std::uint64_t head[4];
      if (bytes.size() - off < kHeadBytes) throw FormatError("piece checksum table: cut short");
      std::memcpy(head, bytes.data() + off, sizeof head);
      off += kHeadBytes;
      if (head[0] >= index.tensors.size() || head[1] >= index.tensors[head[0]].pieces.size() ||
          head[3] > (bytes.size() - off) / sizeof(std::uint64_t))
        throw FormatError("piece checksum table: entry out of range");
      auto& piece = index.tensors[head[0]].pieces[head[1]];
      piece.xxh3 = head[2];
      piece.chunks.resize(head[3]);
      if (head[3]) std::memcpy(piece.chunks.data(), bytes.data() + off, head[3] * sizeof(std::uint64_t));
      off += head[3] * sizeof(std::uint64_t);
    }
  }
}

std::string encode_blob_record(const BlobRecord& record) {
  const std::uint64_t fields[2] = {record.bytes, record.xxh3};
  return std::string(reinterpret_cast<const char*>(fields), sizeof fields);
}

BlobRecord decode_blob_record(const std::string& bytes) {
  std::uint64_t fields[2];
  if (bytes.size() != sizeof fields) throw FormatError("blob record: expected 16 bytes");
  std::memcpy(fields, bytes.data(), sizeof fields);
  return {fields[0], fields[1]};
}

}  // namespace ckptio::detail::h5
